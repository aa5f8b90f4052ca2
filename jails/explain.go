package jails

import (
	"net/netip"
	"strings"

	"smtpban/internal/logline"
)

// Pattern kinds, as the config names them.
const (
	KindFail    = "failregex"
	KindIgnore  = "ignoreregex"
	KindSuccess = "successregex"
)

// PatternResult is what one pattern of a jail made of a line.
type PatternResult struct {
	Kind    string // KindFail, KindIgnore or KindSuccess
	Index   int    // in the jail's list of that kind
	Pattern *Pattern
	Matched bool
	BadHost bool       // it matched, but what <HOST> took is not an address
	Addr    netip.Addr // unmapped; valid when Matched and !BadHost
	User    string
	Pass    string
	Count   int // from (?P<count>...); 0 when absent
}

// Verdicts of an Explanation, in the matcher's order of precedence.
const (
	VerdictNotProgram = "not its program"
	VerdictFailure    = "failure"
	VerdictBadHost    = "bad host"
	VerdictIgnored    = "ignored"
	VerdictSuccess    = "success"
	VerdictNone       = "no match"
)

// Explanation is what one jail makes of one line, pattern by pattern: for
// `smtpban test` and replay's per-pattern counts. Matcher.Match gives the
// same hits; Explain runs every pattern, without the prefilter, so it is
// for the few lines a person looks at, not for the line path.
type Explanation struct {
	Jail     *Jail
	Program  bool // the jail reads the line's program
	Patterns []PatternResult
	Verdict  string
	// Deciding is the pattern that gave the verdict (the first matching
	// failregex, ignoreregex or successregex, as the matcher takes them);
	// nil for VerdictNone and VerdictNotProgram.
	Deciding *PatternResult
}

// Explain runs every pattern of j over l's message.
func Explain(j *Jail, l *logline.Line) Explanation {
	e := Explanation{Jail: j, Program: MatchesAny(j.Programs, l.Program), Verdict: VerdictNone}
	run := func(kind string, ps []*Pattern) {
		for i, p := range ps {
			r := PatternResult{Kind: kind, Index: i, Pattern: p}
			c, res := p.match(l.Message)
			r.Matched = res != noMatch
			r.BadHost = res == badHost
			if res == matched {
				r.Addr, r.User, r.Pass, r.Count = c.addr, strings.Clone(c.user), strings.Clone(c.pass), c.count
			}
			e.Patterns = append(e.Patterns, r)
		}
	}
	run(KindFail, j.Failregex)
	run(KindIgnore, j.Ignoreregex)
	run(KindSuccess, j.Successregex)
	if !e.Program {
		e.Verdict = VerdictNotProgram
		return e
	}
	first := func(kind string) *PatternResult {
		for i := range e.Patterns {
			if r := &e.Patterns[i]; r.Kind == kind && r.Matched {
				return r
			}
		}
		return nil
	}
	// As Matcher.Match: the first failregex decides; a bad host or an
	// ignoreregex voids it and no successregex is tried after it.
	if f := first(KindFail); f != nil {
		switch {
		case f.BadHost:
			e.Verdict, e.Deciding = VerdictBadHost, f
		case first(KindIgnore) != nil:
			e.Verdict, e.Deciding = VerdictIgnored, first(KindIgnore)
		default:
			e.Verdict, e.Deciding = VerdictFailure, f
		}
		return e
	}
	if s := first(KindSuccess); s != nil && !s.BadHost {
		e.Verdict, e.Deciding = VerdictSuccess, s
	}
	return e
}

// Literals returns the prefilter's literals of j's failregexes: a line
// that holds none of them cannot be a failure of j. ok is false when some
// failregex has no literal (it may match any line).
func (j *Jail) Literals() (lits []string, ok bool) {
	for _, p := range j.Failregex {
		if len(p.literals) == 0 {
			return nil, false
		}
		lits = append(lits, p.literals...)
	}
	return lits, true
}
