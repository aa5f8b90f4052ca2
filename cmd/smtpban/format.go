package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// clock formats times relative to now ("in 42m", "3h ago") or, with
// -utc, as absolute UTC.
type clock struct {
	now time.Time
	utc bool
}

const absLayout = "2006-01-02 15:04:05 UTC"

func abs(t time.Time) string { return t.UTC().Format(absLayout) }

func (c clock) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if c.utc {
		return abs(t)
	}
	return relative(t, c.now)
}

// relative says "in 42m" for the future and "3h ago" for the past.
func relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d >= time.Second:
		return "in " + human(d)
	case d <= -time.Second:
		return human(-d) + " ago"
	}
	return "now"
}

// human rounds d to its two largest units: 42s, 42m, 3h5m, 2d3h, 3w2d.
// It rounds to the nearest rather than down, so a 2d ban a moment old
// still shows as 2d.
func human(d time.Duration) string {
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	switch {
	case d < time.Minute:
		d = d.Round(time.Second)
	case d < day:
		d = d.Round(time.Minute)
	case d < week:
		d = d.Round(time.Hour)
	default:
		d = d.Round(day)
	}
	two := func(n1 time.Duration, u1 string, n2 time.Duration, u2 string) string {
		if n2 == 0 {
			return fmt.Sprintf("%d%s", n1, u1)
		}
		return fmt.Sprintf("%d%s%d%s", n1, u1, n2, u2)
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < day:
		return two(d/time.Hour, "h", d%time.Hour/time.Minute, "m")
	case d < week:
		return two(d/day, "d", d%day/time.Hour, "h")
	}
	return two(d/week, "w", d%week/day, "d")
}

// until says when a ban or allow entry ends, absolute and relative.
func (c clock) until(t time.Time) string {
	if c.utc {
		return abs(t)
	}
	return abs(t) + " (" + relative(t, c.now) + ")"
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// row writes one tab-separated row.
func row(w io.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// shorten keeps a log line from swamping the table; -json has it whole.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
