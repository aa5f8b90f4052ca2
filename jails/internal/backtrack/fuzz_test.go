package backtrack

import (
	"errors"
	"regexp"
	"testing"
)

// FuzzMatch compares Match and MatchString with package regexp on any
// expression this package compiles and any input.
func FuzzMatch(f *testing.F) {
	lines := corpusLines(f)
	for i, expr := range append(shippedExprs(f), trickyExprs...) {
		f.Add(expr, lines[i%len(lines)])
		f.Add(expr, expr)
	}
	f.Fuzz(func(t *testing.T, expr, s string) {
		if len(expr) > 300 || len(s) > 2000 {
			return
		}
		std, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		re, err := Compile(expr)
		if errors.Is(err, ErrUnsupported) {
			return
		}
		if err != nil {
			t.Fatalf("Compile(%q): %v, but regexp compiles it", expr, err)
		}
		if re.NumSubexp() != std.NumSubexp() {
			t.Fatalf("%q: %d subexpressions, regexp %d", expr, re.NumSubexp(), std.NumSubexp())
		}
		if d, _ := differ(std, re, s); d != "" {
			t.Fatalf("%q: %s", expr, d)
		}
	})
}
