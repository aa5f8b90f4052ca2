package backtrack

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"smtpban/internal/jailstest"
)

// expandHost is jails.expandHost, copied: jails imports this package, so
// its tests cannot import jails. jails/pattern_test.go checks the real
// expansion against package regexp on the test lines too.
func expandHost(expr string) string {
	const (
		hostIPv4 = `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`
		hostIPv6 = `(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?`
		hostName = `[0-9A-Za-z_](?:[0-9A-Za-z_.-]*[0-9A-Za-z_])?`
		hostAddr = hostIPv4 + `|` + hostIPv6 + `|` + hostName
	)
	var b strings.Builder
	for n := 0; ; n++ {
		i := strings.Index(expr, "<HOST>")
		if i < 0 {
			b.WriteString(expr)
			return b.String()
		}
		name := "smtpban_host" + strconv.Itoa(n)
		fmt.Fprintf(&b, `%s(?:\[(?P<%sb>%s)\]|(?P<%s>%s))`, expr[:i], name, hostAddr, name, hostAddr)
		expr = expr[i+len("<HOST>"):]
	}
}

// shippedExprs returns every failregex, successregex and ignoreregex of
// configs/jails.d, <HOST> expanded, as jails compiles them.
func shippedExprs(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, s := range shippedNamed(tb) {
		out = append(out, s.expr)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// shipped is an expression of configs/jails.d and where it comes from.
type shipped struct {
	name string // jail/attribute/index
	expr string // <HOST> expanded
}

// shippedNamed returns the shipped expressions with their names, in the
// order of the files.
func shippedNamed(tb testing.TB) []shipped {
	tb.Helper()
	jails, err := jailstest.Read(filepath.Join("..", "..", "..", "configs", "jails.d"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []shipped
	for _, j := range jails {
		for _, attr := range []struct {
			name  string
			exprs []string
		}{{"failregex", j.Failregex}, {"successregex", j.Successregex}, {"ignoreregex", j.Ignoreregex}} {
			for i, e := range attr.exprs {
				// Anchored at the message's start, as jails compiles them.
				out = append(out, shipped{fmt.Sprintf("%s/%s/%d", j.Name, attr.name, i), "^(?:" + expandHost(e) + ")"})
			}
		}
	}
	if len(out) < 15 {
		tb.Fatalf("only %d shipped expressions", len(out))
	}
	return out
}

// corpusLines returns every line of configs/testdata/*.log.
func corpusLines(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "configs", "testdata", "*.log"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus: %v", err)
	}
	var lines []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		if err := sc.Err(); err != nil {
			tb.Fatal(err)
		}
	}
	if len(lines) < 50 {
		tb.Fatalf("only %d corpus lines", len(lines))
	}
	return lines
}

// trickyExprs are handwritten expressions for the corners of regexp's
// semantics.
var trickyExprs = []string{
	`a`, `abc`, `a|ab`, `ab|a`, `(a|ab)(c|bcd)(d*)`, `(a+)(b+)?`,
	`(?:(a)|b)+`, `(?:(a)|(b))*c`, `((a)|(b))+`, `(a(b)?)+`, `(a?)(b?)`, `(a)?(b)?c`,
	`x(?:(y)?z)?`, `(?:(?:(a)?b)?c)?d`, `(?:|a)b`, `(?:a|)b`, `(|a)b`,
	`a*?b`, `a+?`, `a??b`, `(a{1,3}?)(a*)`, `(ab){2,3}`, `(ab){2,}c`, `(ab){0,2}?c`,
	`(a|b){3}`, `[ab]{2,4}?b`, `x{0}y`, `(x){0}y`, `(?:ab){0,0}c`, `a{2}`, `[^a]{1,3}`,
	`^abc`, `abc$`, `^$`, `^`, `$`, `(?m)^b$`, `(?m)^`, `(?m)$`, `(?m:^a)|b$`, `\Aa`, `a\z`,
	`\bfoo\b`, `\Bo\B`, `\b`, `\B`, `(?:\bx|y\b)+`,
	`(?i)abc`, `(?i)k`, `(?i)s+`, `(?i)ſ`, `(?i)[a-z]+`, `(?i)straße`, `(?i:A)b`, `(?i)Σ`,
	`é`, `[é]`, `[^é]`, `[^a]`, `.`, `.+`, `(?s).+`, `(?s:.)`, `[\x{80}-\x{10FFFF}]+`, `\x{FFFD}`,
	`[\x{FFFD}]+`, `[^\x00-\x7f]`, `日本`, `[日本]+語`, `\p{Greek}+`, `\PL+`, `[[:alpha:]]+`,
	`\d+\.\d+`, `\w+@\w+`, `\S+\s+\S+`, `[^\s,]+`, `[-\w]+`,
	`(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?`,
	`(?:[0-9]{1,3}\.){3}[0-9]{1,3}`, `[0-9A-Za-z_](?:[0-9A-Za-z_.-]*[0-9A-Za-z_])?`,
	`(?P<user>.*), ip=`, `user=(?P<u>[^>]*)>, .*\brip=(\d+)(?:,|$)`, `.*?(?:user=(.*), )?relay=(\S+)`,
	`(a)|b`, `(a)|(b)`, `((((a))))`, `(?:a(?:b(?:c)?)?)?d`, `[a-c]+?c`, `(.)(.)(.)`,
	`foo|foobar|fo`, `(?:foo|foobar)bar`, `(?:x|xy)(?:yz|z)`, `a.*b.*c`, `a.*?b.*?c`,
	`[^(]*\(`, `[^:]*: `, `\[(\d+)\]`, `(?:\[\d+\])?: `, `\\`, `\.`, `\Q.*\E`,
	`a{2,3}a{2,3}`, `(?:a{2}){2}`, `(aa|a)*b`, `(a|b)*?c`, `[a-z]*[0-9]`, `x*`, `(x+x+)+y`,
}

// lineAlphabet is what mutations insert: the punctuation the jail
// expressions key on, hex and decimal digits, and non-ASCII and invalid
// UTF-8.
var lineAlphabet = []string{
	"[", "]", "(", ")", ":", ".", ",", " ", "<", ">", "=", "/", "-", "_", "\n", "\t",
	"0", "1", "9", "a", "f", "A", "F", "g", "z", "::", "1.2.3.4", "::1", "[::ffff:1.2.3.4]",
	"é", "日", "\u212a", "\u017f", "\ufffd", "\xff", "\xc3", "\x80", "\xe2\x82", "\xf0\x9f\x98",
	"rip=", "user=", "ip=[", "postfix/smtpd[1]: ", "relay=", ", ", "auth failed, ",
}

// mutate returns line with a few random edits from r.
func mutate(r *rand.Rand, line string) string {
	b := []byte(line)
	for range 1 + r.IntN(4) {
		switch k := r.IntN(5); {
		case k == 0 && len(b) > 0: // delete a span
			i := r.IntN(len(b))
			j := min(len(b), i+1+r.IntN(8))
			b = append(b[:i], b[j:]...)
		case k == 1 && len(b) > 0: // overwrite a byte
			b[r.IntN(len(b))] = lineAlphabet[r.IntN(len(lineAlphabet))][0]
		case k == 2 && len(b) > 0: // duplicate a span
			i := r.IntN(len(b))
			j := min(len(b), i+1+r.IntN(16))
			b = slices.Insert(b, j, b[i:j]...)
		default: // insert
			i := r.IntN(len(b) + 1)
			b = slices.Insert(b, i, []byte(lineAlphabet[r.IntN(len(lineAlphabet))])...)
		}
	}
	return string(b)
}

// randomBytes returns n bytes biased towards the alphabet.
func randomBytes(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(r.IntN(256)))
			continue
		}
		b.WriteString(lineAlphabet[r.IntN(len(lineAlphabet))])
	}
	return b.String()
}

// differ compares Match and MatchString with package regexp on s. It
// returns "" if they agree (or Match gave up), else what differs; and
// whether Match gave up.
func differ(std *regexp.Regexp, re *Regexp, s string) (string, bool) {
	want := std.FindStringSubmatchIndex(s)
	caps := make([]int, 2*(re.NumSubexp()+1))
	matched, ok := re.Match(s, caps)
	if !ok {
		return "", true
	}
	if matched != (want != nil) || (matched && !slices.Equal(caps, want)) {
		if !matched {
			caps = nil
		}
		return fmt.Sprintf("Match(%q) = %v, regexp %v", s, caps, want), false
	}
	if got, ok := re.MatchString(s); ok && got != (want != nil) {
		return fmt.Sprintf("MatchString(%q) = %v, regexp %v", s, got, want != nil), false
	}
	return "", false
}
