package config

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Units beyond Go's: a day and a week, as fixed lengths (bans do not care
// about daylight saving).
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

// ParseDuration parses a duration the way time.ParseDuration does, with
// two more units: "d" (24h) and "w" (7d). "1d12h", "1w", "1.5d" and "90m"
// are all valid. A unit is required except for "0".
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("invalid duration %q", orig)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '.' || '0' <= s[i] && s[i] <= '9') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %q: expected a number at %q", orig, s)
		}
		j := i
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		num, unit := s[:i], s[i:j]
		if unit == "" {
			return 0, fmt.Errorf("invalid duration %q: missing unit after %s (use s, m, h, d or w)", orig, num)
		}
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q: bad number %q", orig, num)
			}
			mult := Day
			if unit == "w" {
				mult = Week
			}
			v := f * float64(mult)
			if v >= math.MaxInt64 {
				return 0, fmt.Errorf("invalid duration %q: too long", orig)
			}
			d = time.Duration(v)
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("invalid duration %q: %q is not a number of %s", orig, num, unit)
			}
		default:
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q (use s, m, h, d or w)", orig, unit)
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("invalid duration %q: too long", orig)
		}
		total += d
		s = s[j:]
	}
	if neg {
		total = -total
	}
	return total, nil
}
