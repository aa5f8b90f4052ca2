package backtrack

import (
	"regexp"
	"testing"
)

// BenchmarkShipped runs every shipped expression on the corpus lines it
// matches and on those it does not, with Match and, as the baseline in
// the same run, regexp.FindStringSubmatchIndex.
func BenchmarkShipped(b *testing.B) {
	lines := corpusLines(b)
	for _, sh := range shippedNamed(b) {
		std := regexp.MustCompile(sh.expr)
		re := MustCompile(sh.expr)
		var hit, miss []string
		for _, l := range lines {
			if std.MatchString(l) {
				hit = append(hit, l)
			} else {
				miss = append(miss, l)
			}
		}
		for _, set := range []struct {
			name  string
			lines []string
		}{{"match", hit}, {"nomatch", miss}} {
			if len(set.lines) == 0 {
				continue
			}
			b.Run(sh.name+"/"+set.name+"/backtrack", func(b *testing.B) { benchBacktrack(b, re, set.lines) })
			b.Run(sh.name+"/"+set.name+"/regexp", func(b *testing.B) { benchRegexp(b, std, set.lines) })
		}
	}
}

// BenchmarkShippedAll runs every shipped expression on every corpus
// line it matches: the work `smtpban replay` leaves to the regexes once
// the prefilter has ruled out the rest.
func BenchmarkShippedAll(b *testing.B) {
	type run struct {
		std  *regexp.Regexp
		re   *Regexp
		line string
	}
	var runs []run
	for _, sh := range shippedNamed(b) {
		std := regexp.MustCompile(sh.expr)
		re := MustCompile(sh.expr)
		for _, l := range corpusLines(b) {
			if std.MatchString(l) {
				runs = append(runs, run{std, re, l})
			}
		}
	}
	if len(runs) < 50 {
		b.Fatalf("only %d matching runs", len(runs))
	}
	b.Run("backtrack", func(b *testing.B) {
		caps := make([]int, 0, 64)
		n, matched := 0, 0
		b.ReportAllocs()
		for b.Loop() {
			r := runs[n%len(runs)]
			if ok, _ := r.re.Match(r.line, caps[:2*(r.re.NumSubexp()+1)]); ok {
				matched++
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		if matched != n {
			b.Fatalf("%d of %d runs matched", matched, n)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		n, matched := 0, 0
		b.ReportAllocs()
		for b.Loop() {
			r := runs[n%len(runs)]
			if r.std.FindStringSubmatchIndex(r.line) != nil {
				matched++
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		if matched != n {
			b.Fatalf("%d of %d runs matched", matched, n)
		}
	})
}

func benchBacktrack(b *testing.B, re *Regexp, lines []string) {
	caps := make([]int, 2*(re.NumSubexp()+1))
	n, matched, gaveUp := 0, 0, 0
	b.ReportAllocs()
	for b.Loop() {
		m, ok := re.Match(lines[n%len(lines)], caps)
		if m {
			matched++
		}
		if !ok {
			gaveUp++
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	if gaveUp > 0 {
		b.Fatalf("gave up on %d of %d lines", gaveUp, n)
	}
}

func benchRegexp(b *testing.B, std *regexp.Regexp, lines []string) {
	n, matched := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		if std.FindStringSubmatchIndex(lines[n%len(lines)]) != nil {
			matched++
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	_ = matched
}
