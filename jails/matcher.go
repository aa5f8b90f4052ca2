package jails

import (
	"math/bits"
	"slices"
	"sync/atomic"

	"smtpban/internal/logline"
)

// Matcher matches log lines against a set of jails. It is safe for
// concurrent use: it holds no per-line state and its counters are atomic.
type Matcher struct {
	all       *group            // every jail: source "" (replay)
	bySource  map[string]*group // jails reading each source
	prefilter bool

	// No count of lines: callers know it, and an atomic add per line
	// cost replay 3%. These change only on lines that match something.
	matched, hits, badHost, ignored, successes atomic.Uint64
}

// MatcherStats are the Matcher's counters since it was made.
type MatcherStats struct {
	Matched uint64 // lines that gave at least one hit
	Hits    uint64 // hits (a line can hit several jails)
	BadHost uint64 // lines a failregex matched whose host was not an address, and that gave no hit
	Ignored uint64 // lines whose hits an ignoreregex suppressed, and that gave no hit
	// Successes are success hits (successregex), counted apart: Matched
	// and Hits are about failures only.
	Successes uint64
}

// group is the jails of one source, with one automaton over all the
// literals their patterns require.
type group struct {
	jails []mjail
	nlit  int
	// always: some failregex or successregex has no literal, so a line
	// the prefilter finds nothing in must still be tried.
	always bool
	wm     *wuManber  // when every literal is long enough to skip on
	ac     *automaton // otherwise
	// litJails[id] has bit i set if jails[i] has a failregex or
	// successregex that literal id lets run, and anyJails the jails that
	// have one with no literal: a line visits only the jails its literals
	// name, not all of them. nil with more than 64 jails.
	litJails []uint64
	anyJails uint64
	// programs maps a line's program to the jails reading it.
	programs programIndex
}

type mjail struct {
	jail    *Jail
	fail    []mpattern
	ignore  []mpattern
	success []mpattern
}

// mpattern is a pattern with the ids (in its group's automaton) of the
// literals one of which a line must contain; no ids: always run.
type mpattern struct {
	p   *Pattern
	ids []int32
	// mask has bit id set for each of ids when they are all below 64 (the
	// common case): the prefilter's verdict is then one AND.
	mask uint64
	// slot indexes the per-line memo when the group has the same
	// expression more than once (shipped jails share successregexes):
	// it then runs once per line. -1: not shared.
	slot int
}

// memoSlots bounds how many shared expressions a group memoizes.
const memoSlots = 4

type memo struct {
	done uint8 // bit i: slot i holds a result
	c    [memoSlots]capture
	res  [memoSlots]matchResult
}

// match runs p on line, once per line for a shared expression.
func (p *mpattern) match(line string, mm *memo) (capture, matchResult) {
	if p.slot < 0 {
		return p.p.match(line)
	}
	if mm.done&(1<<p.slot) == 0 {
		mm.c[p.slot], mm.res[p.slot] = p.p.match(line)
		mm.done |= 1 << p.slot
	}
	return mm.c[p.slot], mm.res[p.slot]
}

// NewMatcher builds a matcher over js. It takes jails as given, enabled or
// not: choosing which to run is the caller's business.
func NewMatcher(js []*Jail) *Matcher {
	return newMatcher(js, true)
}

func newMatcher(js []*Jail, prefilter bool) *Matcher {
	m := &Matcher{
		all:       newGroup(js),
		bySource:  make(map[string]*group),
		prefilter: prefilter,
	}
	var sources []string
	for _, j := range js {
		for _, s := range j.Sources {
			if !slices.Contains(sources, s) {
				sources = append(sources, s)
			}
		}
	}
	for _, s := range sources {
		var sel []*Jail
		for _, j := range js {
			if slices.Contains(j.Sources, s) {
				sel = append(sel, j)
			}
		}
		m.bySource[s] = newGroup(sel)
	}
	return m
}

func newGroup(js []*Jail) *group {
	g := &group{}
	var lits []string
	index := make(map[string]int32)
	compile := func(ps []*Pattern) []mpattern {
		out := make([]mpattern, 0, len(ps))
		for _, p := range ps {
			mp := mpattern{p: p, slot: -1}
			for _, l := range p.literals {
				id, ok := index[l]
				if !ok {
					id = int32(len(lits))
					index[l] = id
					lits = append(lits, l)
				}
				mp.ids = append(mp.ids, id)
			}
			mp.mask = idMask(mp.ids)
			out = append(out, mp)
		}
		return out
	}
	for _, j := range js {
		mj := mjail{jail: j, fail: compile(j.Failregex), ignore: compile(j.Ignoreregex), success: compile(j.Successregex)}
		for _, ps := range [][]mpattern{mj.fail, mj.success} {
			for _, p := range ps {
				g.always = g.always || len(p.ids) == 0
			}
		}
		g.jails = append(g.jails, mj)
	}
	shareSlots(g.jails)
	g.nlit = len(lits)
	if len(g.jails) <= 64 {
		g.litJails = make([]uint64, len(lits))
		for i, mj := range g.jails {
			for _, ps := range [][]mpattern{mj.fail, mj.success} {
				for _, p := range ps {
					if len(p.ids) == 0 {
						g.anyJails |= 1 << i
					}
					for _, id := range p.ids {
						g.litJails[id] |= 1 << i
					}
				}
			}
		}
	}
	if g.wm = newWuManber(lits); g.wm == nil {
		g.ac = newAutomaton(lits)
	}
	return g
}

// shareSlots gives the failregexes and successregexes whose expression
// occurs more than once in jails a memo slot.
func shareSlots(jails []mjail) {
	uses := make(map[string]int)
	for _, mj := range jails {
		for _, ps := range [][]mpattern{mj.fail, mj.success} {
			for _, mp := range ps {
				uses[mp.p.expr]++
			}
		}
	}
	slots := make(map[string]int)
	for _, mj := range jails {
		for _, ps := range [][]mpattern{mj.fail, mj.success} {
			for i := range ps {
				e := ps[i].p.expr
				if uses[e] < 2 {
					continue
				}
				slot, ok := slots[e]
				if !ok {
					if len(slots) == memoSlots {
						continue
					}
					slot = len(slots)
					slots[e] = slot
				}
				ps[i].slot = slot
			}
		}
	}
}

// seenWords is how many literals the on-stack bitset holds (64 each);
// groups with more literals get a heap bitset.
const seenWords = 8

// Match appends to dst a hit for every jail reading source (every jail if
// source is "") and l's program that l's message fails. Patterns run on the
// message alone, anchored at its start. Within a jail the first failregex
// that matches decides, and a matching ignoreregex suppresses the jail's
// hit. A line no failregex of a jail matches may match one of its
// successregexes: that gives a hit with Success set. Hits share l's memory.
func (m *Matcher) Match(source string, l *logline.Line, dst []Hit) []Hit {
	g := m.all
	if source != "" {
		g = m.bySource[source]
	}
	if g == nil || len(g.jails) == 0 {
		return dst
	}
	readers := g.programs.mask(l.Program, g.jails)
	if readers == 0 && len(g.jails) <= 64 {
		return dst // most lines of a mail log: qmgr, cleanup, smtp...
	}
	line := l.Message
	var small [seenWords]uint64
	var seen []uint64
	if m.prefilter && g.nlit > 0 {
		if need := (g.nlit + 63) / 64; need > seenWords {
			seen = make([]uint64, need)
		} else {
			seen = small[:need]
		}
		if g.wm != nil {
			g.wm.scan(line, seen)
		} else {
			g.ac.scan(line, seen)
		}
		if !g.always && none(seen) {
			// Most lines: no literal, so no pattern can match.
			return dst
		}
	}
	n0 := len(dst)
	var bad, ignored bool
	var failures, successes int
	var mm memo
	hit := func(j *Jail, c capture, success bool, pattern int) {
		dst = append(dst, Hit{Jail: j, Addr: c.addr, User: c.user, Time: l.Time(), Line: l.Raw, Count: c.count, Pass: c.pass, Success: success, Pattern: pattern})
	}
	visit := readers
	if seen != nil && g.litJails != nil {
		lit := g.anyJails
		for w, word := range seen {
			for ; word != 0; word &= word - 1 {
				lit |= g.litJails[w*64+bits.TrailingZeros64(word)]
			}
		}
		visit &= lit
	}
	for i := range g.jails {
		if i < 64 && visit&(1<<i) == 0 {
			continue // not its program, or none of its literals
		}
		if i >= 64 && !MatchesAny(g.jails[i].jail.Programs, l.Program) {
			continue
		}
		mj := &g.jails[i]
		res := noMatch
		for k := range mj.fail {
			fp := &mj.fail[k]
			if !applies(fp, seen) {
				continue
			}
			var c capture
			c, res = fp.match(line, &mm)
			if res == noMatch {
				continue
			}
			if res == badHost {
				bad = true
				break
			}
			if ignoredBy(mj.ignore, line, seen) {
				ignored = true
				break
			}
			hit(mj.jail, c, false, k)
			failures++
			break
		}
		if res != noMatch {
			continue
		}
		for k := range mj.success {
			sp := &mj.success[k]
			if !applies(sp, seen) {
				continue
			}
			c, sres := sp.match(line, &mm)
			if sres == noMatch {
				continue
			}
			if sres == matched {
				hit(mj.jail, c, true, k)
				successes++
			}
			break
		}
	}
	if successes > 0 {
		m.successes.Add(uint64(successes))
	}
	switch {
	case failures > 0:
		m.matched.Add(1)
		m.hits.Add(uint64(failures))
	case len(dst) > n0:
	case bad:
		m.badHost.Add(1)
	case ignored:
		m.ignored.Add(1)
	}
	return dst
}

// idMask is the bitset of ids, or 0 if some id is 64 or more.
func idMask(ids []int32) uint64 {
	var m uint64
	for _, id := range ids {
		if id >= 64 {
			return 0
		}
		m |= 1 << id
	}
	return m
}

func none(seen []uint64) bool {
	for _, w := range seen {
		if w != 0 {
			return false
		}
	}
	return true
}

// applies says whether the prefilter lets p run: seen is nil when the
// prefilter is off.
func applies(p *mpattern, seen []uint64) bool {
	if seen == nil || len(p.ids) == 0 {
		return true
	}
	if p.mask != 0 {
		return seen[0]&p.mask != 0
	}
	for _, id := range p.ids {
		if seen[id>>6]&(1<<(id&63)) != 0 {
			return true
		}
	}
	return false
}

func ignoredBy(ps []mpattern, line string, seen []uint64) bool {
	for i := range ps {
		if p := &ps[i]; applies(p, seen) && p.p.matchString(line) {
			return true
		}
	}
	return false
}

// Stats returns the matcher's counters.
func (m *Matcher) Stats() MatcherStats {
	return MatcherStats{
		Matched: m.matched.Load(),
		Hits:    m.hits.Load(),
		BadHost: m.badHost.Load(),
		Ignored: m.ignored.Load(),

		Successes: m.successes.Load(),
	}
}
