package jails

import (
	"net/netip"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		ignore     bool
		wantErr    string // substring; "" = no error
	}{
		{"ok", `from <HOST>`, false, ""},
		{"no host", `authentication failed`, false, "has no <HOST>"},
		{"bad regex names the fragment", `from (<HOST>`, false, "missing closing ): `from (<HOST>`"},
		{"bad repetition", `from <HOST> x**`, false, "invalid nested repetition operator: `**`"},
		{"lookahead", `(?!foo)<HOST>`, false, "invalid or unsupported Perl syntax: `(?!`"},
		{"ignoreregex needs no host", `monitor@example\.com`, true, ""},
		{"ignoreregex bad", `[a-`, true, "missing closing ]: `[a-`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compile := CompileFailregex
			if tt.ignore {
				compile = CompileIgnoreregex
			}
			p, err := compile(tt.expr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			case err == nil && p.String() != tt.expr:
				t.Fatalf("String() = %q, want %q", p.String(), tt.expr)
			}
		})
	}
}

func TestPatternHost(t *testing.T) {
	tests := []struct {
		name, expr, line string
		want             matchResult
		addr, user       string
	}{
		{"ipv4", `from <HOST>$`, "from 192.0.2.1", matched, "192.0.2.1", ""},
		{"ipv4 then port", `from <HOST>`, "from 192.0.2.1:25", matched, "192.0.2.1", ""},
		{"ipv6", `from <HOST>$`, "from 2001:db8::1", matched, "2001:db8::1", ""},
		{"ipv6 full", `from <HOST>$`, "from 2001:0db8:0000:0000:0000:0000:0000:0001", matched, "2001:db8::1", ""},
		{"ipv6 loopback", `from <HOST>$`, "from ::1", matched, "::1", ""},
		{"mapped", `from <HOST>$`, "from ::ffff:192.0.2.7", matched, "192.0.2.7", ""},
		{"bracketed v4", `from <HOST>$`, "from [192.0.2.1]", matched, "192.0.2.1", ""},
		{"bracketed v6 with port", `from <HOST>:\d+$`, "from [2001:db8::5]:587", matched, "2001:db8::5", ""},
		{"brackets in regex", `\S+\[<HOST>\]`, "unknown[2001:db8::9]", matched, "2001:db8::9", ""},
		{"user group", `user=(?P<user>\S+) rip=<HOST>`, "user=bob rip=192.0.2.3", matched, "192.0.2.3", "bob"},
		{"two hosts, first wins", `a=<HOST> b=<HOST>`, "a=192.0.2.1 b=192.0.2.2", matched, "192.0.2.1", ""},
		{"hostname is bad host", `\S+\[<HOST>\]`, "unknown[unknown]", badHost, "", ""},
		{"octet out of range", `from <HOST>$`, "from 256.1.1.1", badHost, "", ""},
		{"two ::", `from <HOST>$`, "from 1::2::3", badHost, "", ""},
		{"too many groups", `from <HOST>$`, "from 1:2:3:4:5:6:7:8:9", noMatch, "", ""},
		{"no match", `from <HOST>$`, "to 192.0.2.1", noMatch, "", ""},
		{"not at the start", `from <HOST>$`, "x from 192.0.2.1", noMatch, "", ""},
		{"alternation stays anchored", `x|from <HOST>$`, "y from 192.0.2.1", noMatch, "", ""},
		{"empty host", `rip=<HOST>,`, "rip=,", noMatch, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileFailregex(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			c, res := p.match(tt.line)
			if res != tt.want {
				t.Fatalf("result %d, want %d", res, tt.want)
			}
			if tt.want != matched {
				return
			}
			if c.addr != netip.MustParseAddr(tt.addr) || c.user != tt.user {
				t.Errorf("got %s %q, want %s %q", c.addr, c.user, tt.addr, tt.user)
			}
		})
	}
}

func TestRequiredLiterals(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"plain", `SASL \w+ authentication failed`, []string{" authentication failed"}},
		{"alternation", `(?:LOGIN|PLAIN) x`, []string{"LOGIN", "PLAIN"}},
		{"alternation with an empty branch", `(?:LOGIN|) x`, nil},
		{"optional part ignored", `(?:authentication failed)? ab`, []string{" ab"}},
		{"plus keeps", `(?:failed)+`, []string{"failed"}},
		{"repeat min 0", `(?:failed){0,2}`, nil},
		{"repeat min 1", `(?:failed){1,2}`, []string{"failed"}},
		{"case-insensitive letters", `(?i)failed`, nil},
		{"case-insensitive digits", `(?i)535 \d`, []string{"535 "}},
		{"too short", `ab`, nil},
		{"host adds nothing", `<HOST>`, nil},
		{"most selective part", `dovecot: (?:imap|pop3)-login: .*auth failed`, []string{"auth failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, err := syntax.Parse(expandHost(tt.expr), syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			got := requiredLiterals(re.Simplify())
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAutomatonMatchesContains(t *testing.T) {
	lits := []string{"he", "she", "his", "hers", "authentication failed", "fail", "ail", "]: ", "\xff\x00"}
	a := newAutomaton(lits)
	lines := append(allTestLines(t), "", "ushers", "hishe", "xx\xff\x00", "authentication fai", "]:")
	for _, line := range lines {
		seen := make([]uint64, 1)
		a.scan(line, seen)
		for id, l := range lits {
			got := seen[0]&(1<<id) != 0
			if want := strings.Contains(line, l); got != want {
				t.Errorf("line %q literal %q: automaton %v, strings.Contains %v", line, l, got, want)
			}
		}
	}
}

// TestFastMatcherAgrees checks that every shipped pattern, and those of
// the test jails, take the fast matcher, and that it gives what regexp
// gives on every test line, normal log line and mangled variant.
func TestFastMatcherAgrees(t *testing.T) {
	var ps, ignores []*Pattern
	for _, j := range append(shippedJails(t), mailJails(t)...) {
		ps = slices.Concat(ps, j.Failregex, j.Successregex, j.Ignoreregex)
		ignores = append(ignores, j.Ignoreregex...)
	}
	normal, _ := normalLog(300)
	// Patterns run on messages: those of the lines, and the whole lines
	// too (which they must not match at the start).
	var lines []string
	for _, text := range slices.Concat(allTestLines(t), normal) {
		lines = append(lines, text, decode(text, time.Time{}).Message)
	}
	for _, l := range slices.Clone(lines) {
		// Mangled: cut short, doubled, invalid UTF-8 and a bracket spliced in.
		lines = append(lines, l[:len(l)/2], l+" "+l, strings.ReplaceAll(l, "[", "\xff["), strings.ReplaceAll(l, ".", "]."))
	}
	matches := 0
	for _, p := range ps {
		if p.fast == nil {
			t.Errorf("%q: no fast matcher", p)
			continue
		}
		re := p.slow()
		for _, line := range lines {
			if slices.Contains(ignores, p) {
				// Run for whether it matches only.
				got, ok := p.fast.MatchString(line)
				if !ok {
					t.Errorf("%q on %q: fast matcher gave up", p, line)
				} else if want := re.MatchString(line); got != want {
					t.Errorf("%q on %q: fast MatchString %v, regexp %v", p, line, got, want)
				}
				continue
			}
			var buf [maxFastCaps]int
			got, ok := p.fastMatch(line, buf[:])
			if !ok {
				t.Errorf("%q on %q: fast matcher gave up", p, line)
				continue
			}
			if want := re.FindStringSubmatchIndex(line); !slices.Equal(got, want) {
				t.Errorf("%q on %q: fast matcher %v, regexp %v", p, line, got, want)
			}
			if got != nil {
				matches++
			}
		}
	}
	if matches < 100 {
		t.Errorf("only %d matches: the test lines do not exercise the patterns", matches)
	}
}

// TestFastMatcherFallback checks that a pattern the fast matcher refuses,
// and a line that exhausts its budget, still match through regexp.
func TestFastMatcherFallback(t *testing.T) {
	p := MustCompileFailregex(`(?:(x?)*)+ from <HOST>`)
	if p.fast != nil {
		t.Fatal("the fast matcher took a repeat that can match empty")
	}
	if _, res := p.match("xx from 192.0.2.1"); res != matched {
		t.Fatalf("refused pattern: result %d, want matched", res)
	}
	p = MustCompileFailregex(`(?:a|aa)+b from <HOST>`)
	if p.fast == nil {
		t.Fatal("no fast matcher")
	}
	line := strings.Repeat("a", 200) + "b from 192.0.2.7"
	var buf [maxFastCaps]int
	if _, ok := p.fastMatch(strings.Repeat("a", 200)+"c from 192.0.2.7", buf[:]); ok {
		t.Fatal("the budget did not run out")
	}
	c, res := p.match(line)
	if res != matched || c.addr != netip.MustParseAddr("192.0.2.7") {
		t.Fatalf("got %v %d, want 192.0.2.7 matched", c.addr, res)
	}
}

// TestIgnoreregexWithHostIsFast checks that an ignoreregex naming <HOST>
// is built for the way it is run (whether it matches), not for its
// captures: the fast matcher answers it.
func TestIgnoreregexWithHostIsFast(t *testing.T) {
	p, err := CompileIgnoreregex(`relay from <HOST> ok`)
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]bool{"relay from 192.0.2.1 ok": true, "relay from 192.0.2.1 no": false} {
		got, ok := p.fast.MatchString(line)
		if !ok || got != want {
			t.Errorf("%q: fast MatchString %v (ok %v), want %v", line, got, ok, want)
		}
		if p.matchString(line) != want {
			t.Errorf("%q: matchString != %v", line, want)
		}
	}
}
