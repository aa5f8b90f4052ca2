package backtrack

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"

	"smtpban/internal/logline"
)

func TestMatchTable(t *testing.T) {
	tests := []struct {
		expr, s string
		want    []int // nil: no match
	}{
		{`a|ab`, "xab", []int{1, 2}},
		{`(a|ab)(c|bcd)(d*)`, "abcd", []int{0, 4, 0, 1, 1, 4, 4, 4}},
		{`(a)*`, "aaa", []int{0, 3, 2, 3}},
		{`(?:(a)|(b))+`, "ab", []int{0, 2, 0, 1, 1, 2}},
		{`(ab){2,3}`, "abababab", []int{0, 6, 4, 6}},
		{`a*?b`, "aab", []int{0, 3}},
		{`(a+?)(a*)`, "aaa", []int{0, 3, 0, 1, 1, 3}},
		{`x(?:(y)?z)?`, "xz", []int{0, 2, -1, -1}},
		{`(?i)k`, "\u212a", []int{0, 3}},
		{`(?i)s`, "\u017f", []int{0, 2}},
		{`[^a]`, "\xffb", []int{0, 1}},
		{`[^a]`, "é", []int{0, 2}},
		{`\x{FFFD}`, "a\x80", []int{1, 2}},
		{`.`, "\n", nil},
		{`(?s).`, "\n", []int{0, 1}},
		{`\bfoo\b`, "éfoo", []int{2, 5}},
		{`\bfoo\b`, "_foo", nil},
		{`abc$`, "abc\n", nil},
		{`(?m)c$`, "abc\nd", []int{2, 3}},
		{`^`, "", []int{0, 0}},
		{`$`, "ab", []int{2, 2}},
		{`b*`, "é", []int{0, 0}},
		{`b`, "\xe2\x82b", []int{2, 3}},
		{`rip=(\d+)(?:,|$)`, "rip=1x, rip=22", []int{8, 14, 12, 14}},
		// Spans of a class with a stop byte are found in bytes: a
		// minimum above one rune must still count runes.
		{`[^:]{2,}:`, "é:", nil},
		{`[^:]{2,}:`, "xé:", []int{0, 4}},
		{`(.*)b`, "aé\nb", []int{4, 5, 4, 4}},
		{`(.+)b`, "aé\xffb\n", []int{0, 5, 0, 4}},
		{`[^(]*\(`, "é\xff(", []int{0, 4}},
		{`(.*)(.)`, "é", []int{0, 2, 0, 0, 0, 2}},
		// Failed branches take their capture writes back, whether
		// logged or, past the log's size, by recursion.
		{`(?:(a)|b)(?:(c)x|c)`, "bc", []int{0, 2, -1, -1, -1, -1}},
		{`[ab]*(?:b|(a)x)`, "aba", []int{0, 2, -1, -1}},
		{`[ab]*?(?:b|(a)x)`, "aab", []int{0, 3, -1, -1}},
		{`((?:(a)|b)*)(?:(c)x|c)`, strings.Repeat("ab", 15) + "c", []int{0, 31, 0, 30, 28, 29, -1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			re := MustCompile(tt.expr)
			caps := make([]int, 2*(re.NumSubexp()+1))
			matched, ok := re.Match(tt.s, caps)
			if !ok {
				t.Fatalf("Match(%q) ran out of budget", tt.s)
			}
			if matched != (tt.want != nil) || (matched && !slices.Equal(caps, tt.want)) {
				t.Fatalf("Match(%q) = %v %v, want %v", tt.s, matched, caps, tt.want)
			}
			if want := regexp.MustCompile(tt.expr).FindStringSubmatchIndex(tt.s); !slices.Equal(want, tt.want) {
				t.Fatalf("the table is wrong: regexp gives %v", want)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		expr        string
		unsupported bool // else: a syntax error
	}{
		{`(a*)*`, true},
		{`(a|)+`, true},
		{`(?:\b)+`, true},
		{`(a?){2,3}`, true},
		{`(`, false},
		{`a**`, false},
		{`(?!a)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := Compile(tt.expr)
			if err == nil {
				t.Fatal("compiled")
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Fatalf("error %v: unsupported %v, want %v", err, got, tt.unsupported)
			}
		})
	}
}

// TestShippedCompile makes sure every shipped expression takes the fast
// path: one that did not would silently cost the old speed.
func TestShippedCompile(t *testing.T) {
	for _, expr := range shippedExprs(t) {
		if _, err := Compile(expr); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestDifferential compares Match and MatchString with package regexp
// for the shipped and tricky expressions on the corpus, mutated corpus
// lines and random bytes.
func TestDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	lines := corpusLines(t)
	var inputs []string
	inputs = append(inputs, lines...)
	// The jails see messages: the lines as the sources decode them.
	for _, l := range lines {
		inputs = append(inputs, logline.Decode(logline.Syslog, l, time.Time{}).Message)
	}
	lines = inputs
	for range 4 {
		for _, l := range lines {
			inputs = append(inputs, mutate(r, l))
		}
	}
	for range 500 {
		inputs = append(inputs, randomBytes(r, r.IntN(64)))
	}
	inputs = append(inputs, "", "\n", "\xff", "é", "a\nb")
	for _, s := range trickyExprs {
		inputs = append(inputs, s, strings.Repeat(s, 3))
	}
	shipped := shippedExprs(t)
	exprs := append(slices.Clip(shipped), trickyExprs...)
	if testing.Short() {
		inputs = inputs[:len(inputs)/4]
	}
	gaveUp := 0
	for _, expr := range exprs {
		std := regexp.MustCompile(expr)
		re, err := Compile(expr)
		if err != nil {
			t.Errorf("Compile(%q): %v", expr, err)
			continue
		}
		failures := 0
		for _, s := range inputs {
			d, g := differ(std, re, s)
			if g && slices.Contains(shipped, expr) {
				gaveUp++
				t.Logf("gave up: %q on %q", expr, s)
			}
			if d != "" && failures < 5 {
				failures++
				t.Errorf("%q: %s", expr, d)
			}
		}
	}
	// The budget is for attacks: the shipped expressions must not exhaust
	// it on log lines, even mangled ones.
	if gaveUp > 0 {
		t.Errorf("Match gave up %d times on shipped expressions", gaveUp)
	}
}

// TestCompileParsed checks that each one-matcher build gives exactly
// what Compile's gives (ok included: the start-up hints come from the
// other graph there), and that the matcher it did not build says !ok.
func TestCompileParsed(t *testing.T) {
	inputs := append(corpusLines(t), "", "\xff", "a\nb")
	for _, s := range trickyExprs {
		inputs = append(inputs, s, strings.Repeat(s, 3))
	}
	for _, expr := range append(shippedExprs(t), trickyExprs...) {
		both, err := Compile(expr)
		tree, perr := syntax.Parse(expr, syntax.Perl)
		if perr != nil {
			t.Fatalf("parse %q: %v", expr, perr)
		}
		sub, serr := CompileParsed(expr, tree, true)
		plain, perr := CompileParsed(expr, tree, false)
		if (err == nil) != (serr == nil) || (err == nil) != (perr == nil) {
			t.Errorf("%q: Compile error %v, CompileParsed errors %v, %v", expr, err, serr, perr)
			continue
		}
		if err != nil {
			continue
		}
		for _, s := range inputs {
			want := make([]int, 2*(both.NumSubexp()+1))
			got := make([]int, len(want))
			wm, wok := both.Match(s, want)
			gm, gok := sub.Match(s, got)
			if wm != gm || wok != gok || !slices.Equal(want, got) {
				t.Errorf("%q on %q: Match %v %v %v, CompileParsed's %v %v %v", expr, s, wm, wok, want, gm, gok, got)
			}
			wm, wok = both.MatchString(s)
			if gm, gok = plain.MatchString(s); wm != gm || wok != gok {
				t.Errorf("%q on %q: MatchString %v %v, CompileParsed's %v %v", expr, s, wm, wok, gm, gok)
			}
			if _, ok := sub.MatchString(s); ok {
				t.Fatalf("%q: MatchString of a submatch-only build said ok", expr)
			}
			if _, ok := plain.Match(s, got); ok {
				t.Fatalf("%q: Match of a MatchString-only build said ok", expr)
			}
		}
	}
}

// TestRandomExprs compares Match with package regexp on generated
// expressions over a small alphabet, where corner cases are dense.
func TestRandomExprs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	n := 3000
	if testing.Short() {
		n = 300
	}
	tried := 0
	for range n {
		expr := randomExpr(r, 4)
		std, err := regexp.Compile(expr)
		if err != nil {
			continue
		}
		re, err := Compile(expr)
		if errors.Is(err, ErrUnsupported) {
			continue
		}
		if err != nil {
			t.Fatalf("Compile(%q): %v, but regexp compiles it", expr, err)
		}
		tried++
		for range 30 {
			s := randomSmall(r, r.IntN(12))
			if d, _ := differ(std, re, s); d != "" {
				t.Fatalf("%q: %s", expr, d)
			}
		}
	}
	if tried < n/2 {
		t.Fatalf("only %d of %d generated expressions compiled", tried, n)
	}
}

// randomExpr generates an expression of nesting depth at most d.
func randomExpr(r *rand.Rand, d int) string {
	atoms := []string{"a", "b", "ab", "[ab]", "[^a]", ".", "é", "(?i:a)", "\\b", "^", "$", "(?m:^)", "(?m:$)", "", "\\x{FFFD}", "c"}
	if d == 0 || r.IntN(3) == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	sub := func() string { return randomExpr(r, d-1) }
	switch r.IntN(9) {
	case 0, 1:
		return sub() + sub()
	case 2:
		return sub() + "|" + sub()
	case 3:
		return "(" + sub() + ")"
	case 4:
		return "(?:" + sub() + ")" + []string{"*", "+", "?", "*?", "+?", "??"}[r.IntN(6)]
	case 5:
		return "(" + sub() + ")" + []string{"{2}", "{0,2}", "{1,3}", "{2,}", "{1,2}?", "{0}"}[r.IntN(6)]
	case 6:
		return "[ab]" + []string{"*", "+", "?", "{0,3}", "{2,}?", "*?"}[r.IntN(6)]
	case 7:
		return "(?:" + sub() + "|" + sub() + "|" + sub() + ")"
	}
	return "((" + sub() + ")" + sub() + ")"
}

// randomSmall returns n runes over a small alphabet, invalid UTF-8 included.
func randomSmall(r *rand.Rand, n int) string {
	alpha := []string{"a", "b", "c", "A", "\n", " ", "é", "\xff", "\xc3", "\ufffd"}
	var b strings.Builder
	for range n {
		b.WriteString(alpha[r.IntN(len(alpha))])
	}
	return b.String()
}

// TestBudget checks that a pathological expression and input make Match
// give up, quickly, instead of backtracking exponentially, and that the
// same expression on ordinary input does not.
func TestBudget(t *testing.T) {
	tests := []struct{ expr, s string }{
		{`(a|aa)*b`, strings.Repeat("a", 60)},
		{`(x+x+)+y`, strings.Repeat("x", 60)},
		{`(?:[ab]+a)+c`, strings.Repeat("ab", 40)},
		{`user=(.*), (.*), (.*), (.*), end`, "user=" + strings.Repeat(", ", 500)},
		// Deep rather than long: one recursion per iteration.
		{`(?:ab)*c`, strings.Repeat("ab", 3*maxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			re := MustCompile(tt.expr)
			caps := make([]int, 2*(re.NumSubexp()+1))
			if _, ok := re.Match(tt.s, caps); ok {
				t.Fatalf("Match(%q) did not give up", tt.s)
			}
			if _, ok := re.MatchString(tt.s); ok {
				t.Fatalf("MatchString(%q) did not give up", tt.s)
			}
			// Giving up is prompt: unwinding adds a step per pending choice.
			m := machine{s: tt.s, caps: caps, budget: budget(len(tt.s))}
			if _, ok := m.search(re, re.withCaps); ok || m.steps > 2*m.budget {
				t.Fatalf("%d steps for a budget of %d (ok %v)", m.steps, m.budget, ok)
			}
			if _, ok := re.Match(tt.s[:4], caps); !ok {
				t.Fatalf("Match(%q) gave up on a short input", tt.s[:4])
			}
		})
	}
}
