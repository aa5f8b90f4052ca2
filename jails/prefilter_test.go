package jails

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// diffJails are the mail jails plus patterns that stress the literal
// analysis: case folding, alternations, optional and repeated parts,
// a pattern with no literal at all, non-ASCII.
func diffJails(tb testing.TB) []*Jail {
	tb.Helper()
	js := withSuccess(mailJails(tb))
	return append(js,
		testJail(tb, "tricky", []string{"mail"}, []string{
			`(?i)LOGIN FAILED.* from <HOST>`,
			`(?:auth|login|sasl)(?:failure|fail)+ <HOST>`,
			`(?:bad ){2,} <HOST>`,
			`^<HOST> \S+$`,
			`é+chec (?P<user>\w*) <HOST>`,
			`x{0,3}dropped <HOST>`,
		}, []string{`(?i)TRUSTED`, `ignore(?:me|you)`}),
	)
}

// withSuccess gives the postfix-sasl and dovecot jails of js a
// successregex like the shipped ones.
func withSuccess(js []*Jail) []*Jail {
	for _, j := range js {
		switch j.Name {
		case "postfix-sasl":
			j.Successregex = []*Pattern{MustCompileFailregex(`[0-9A-Za-z]+: client=[^\[\s]*\[<HOST>\](?::\d+)?, sasl_method=[-\w]+, sasl_username=(?P<user>\S+)`)}
		case "dovecot":
			j.Successregex = []*Pattern{MustCompileFailregex(`\w+-login: (?:Info: )?Login: user=<(?P<user>[^>]*)>, .*?rip=<HOST>,`)}
		}
	}
	return js
}

// sameMatch runs line through both matchers and reports a difference.
func sameMatch(t *testing.T, on, off *Matcher, line string) {
	t.Helper()
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	b1, b2 := on.Stats(), off.Stats()
	h1 := match(on, "", line, read, nil)
	h2 := match(off, "", line, read, nil)
	a1, a2 := on.Stats(), off.Stats()
	eq := func(a, b Hit) bool {
		return a.Jail == b.Jail && a.Addr == b.Addr && a.User == b.User && a.Time.Equal(b.Time) && a.Line == b.Line &&
			a.Success == b.Success && a.Count == b.Count && a.Pass == b.Pass
	}
	if !slices.EqualFunc(h1, h2, eq) {
		t.Fatalf("line %q: prefilter hits %+v, without %+v", line, h1, h2)
	}
	if a1.BadHost-b1.BadHost != a2.BadHost-b2.BadHost || a1.Ignored-b1.Ignored != a2.Ignored-b2.Ignored || a1.Successes-b1.Successes != a2.Successes-b2.Successes {
		t.Fatalf("line %q: prefilter changed the counters", line)
	}
	for _, h := range h1 {
		if !h.Addr.IsValid() || h.Addr.Is4In6() || h.Addr.Zone() != "" {
			t.Fatalf("line %q: bad hit address %v", line, h.Addr)
		}
	}
}

// TestPrefilterDifferential proves the prefilter changes no result: on
// every test line, on mutations of them, and on lines made to hit the
// tricky patterns.
func TestPrefilterDifferential(t *testing.T) {
	js := diffJails(t)
	on, off := newMatcher(js, true), newMatcher(js, false)
	lines := append(allTestLines(t),
		"Login failed for x from 192.0.2.1",
		"LOGIN FAILED trusted from 192.0.2.1",
		"saslfailfailure 2001:db8::3",
		"bad bad bad  192.0.2.4",
		"192.0.2.5 lonely",
		"ééchec bob 192.0.2.6",
		"\xe9chec bob 192.0.2.6",
		"dropped [::ffff:192.0.2.7]",
		"authfail 192.0.2.8 ignoreyou",
		"Nov 24 16:04:30 mx1 postfix/submission/smtpd[12402]: 4Y1ZQm1Xyz: client=unknown[203.0.113.45], sasl_method=PLAIN, sasl_username=info@example.com",
		"Nov 24 16:04:31 mx1 dovecot: pop3-login: Login: user=<bob>, method=PLAIN, rip=2001:db8::9, lip=2001:db8::1, mpid=77, TLS",
	)
	r := rand.New(rand.NewPCG(5, 6))
	base := slices.Clone(lines)
	for range 20000 {
		a, b := base[r.IntN(len(base))], base[r.IntN(len(base))]
		i, k := r.IntN(len(a)+1), r.IntN(len(b)+1)
		switch r.IntN(4) {
		case 0: // splice two lines
			lines = append(lines, a[:i]+b[k:])
		case 1: // drop a byte
			if i < len(a) {
				lines = append(lines, a[:i]+a[i+1:])
			}
		case 2: // change case
			lines = append(lines, strings.ToUpper(a[:i])+a[i:])
		case 3: // insert a random byte
			lines = append(lines, a[:i]+string(rune(r.IntN(256)))+a[i:])
		}
	}
	for _, line := range lines {
		sameMatch(t, on, off, line)
	}
	if st := on.Stats(); st.Matched == 0 || st.BadHost == 0 || st.Ignored == 0 || st.Successes == 0 {
		t.Errorf("differential run exercised too little: %+v", on.Stats())
	}
}

func FuzzMatch(f *testing.F) {
	for _, line := range allTestLines(f) {
		f.Add(line)
	}
	js := diffJails(f)
	on, off := newMatcher(js, true), newMatcher(js, false)
	f.Fuzz(func(t *testing.T, line string) {
		sameMatch(t, on, off, line)
	})
}
