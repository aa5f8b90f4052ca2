package jails

import (
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Prefilter tuning: a literal shorter than minLiteral occurs in too many
// lines to be worth it, and an alternation of more than maxAlternatives
// literals is cheaper left to the regex.
const (
	minLiteral      = 3
	maxAlternatives = 16
)

// requiredLiterals derives from a parsed regex a set of literals of which
// at least one occurs in every string the regex matches. nil means no such
// set is known (the regex must always run).
//
// It is conservative by construction: each rule only keeps a set when every
// match must contain one of its members. A concatenation needs all of its
// parts, so any part's set will do (the most selective is kept); an
// alternation needs one of its branches, so the union of the branches' sets
// will do, and nothing if any branch has none.
func requiredLiterals(re *syntax.Regexp) []string {
	set := required(re)
	if len(set) == 0 {
		return nil
	}
	return set
}

func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		if re.Flags&syntax.FoldCase != 0 && hasCase(re.Rune) {
			// Case-insensitive: the line may spell it any way.
			return nil
		}
		// A regex matches an invalid byte in the line as U+FFFD; the
		// line does not contain U+FFFD's encoding then.
		if strings.ContainsRune(s, utf8.RuneError) || len(s) < minLiteral {
			return nil
		}
		return []string{s}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
		return nil
	case syntax.OpConcat:
		var best []string
		for _, sub := range re.Sub {
			if s := required(sub); better(s, best) {
				best = s
			}
		}
		return best
	case syntax.OpAlternate:
		var union []string
		for _, sub := range re.Sub {
			s := required(sub)
			if s == nil {
				return nil
			}
			for _, lit := range s {
				if !contains(union, lit) {
					union = append(union, lit)
				}
			}
			if len(union) > maxAlternatives {
				return nil
			}
		}
		return union
	}
	return nil
}

func hasCase(rs []rune) bool {
	for _, r := range rs {
		if unicode.SimpleFold(r) != r {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// better says whether literal set a is more selective than b: its shortest
// member is longer, or as long with fewer members.
func better(a, b []string) bool {
	if len(a) == 0 {
		return false
	}
	if len(b) == 0 {
		return true
	}
	ma, mb := shortest(a), shortest(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func shortest(ss []string) int {
	m := len(ss[0])
	for _, s := range ss[1:] {
		m = min(m, len(s))
	}
	return m
}

// automaton is an Aho-Corasick automaton over bytes: one pass over a line
// finds every literal it contains. Transitions are a dense table over byte
// classes (bytes that occur in no literal share one class), which keeps it
// small enough to stay in cache.
type automaton struct {
	class  [256]uint8
	nclass int
	// delta maps s+class to the next state, states being premultiplied by
	// nclass (no multiply per byte). States with outputs are numbered last,
	// so "has an output" is one comparison: s >= firstOut.
	delta    []int32
	firstOut int32
	out      map[int32][]int32 // premultiplied state -> literal ids ending here (suffix outputs merged)
	nlit     int
}

// newAutomaton builds the automaton for lits (ids are indexes into lits).
// It returns nil for no literals.
func newAutomaton(lits []string) *automaton {
	if len(lits) == 0 {
		return nil
	}
	a := &automaton{nlit: len(lits)}
	var used [256]bool
	for _, l := range lits {
		for i := 0; i < len(l); i++ {
			used[l[i]] = true
		}
	}
	a.nclass = 1 // class 0: bytes in no literal
	for b := range 256 {
		if used[b] {
			a.class[b] = uint8(a.nclass)
			a.nclass++
		}
	}
	// Trie first, -1 for missing edges.
	goTo := [][]int32{newRow(a.nclass)}
	out := [][]int32{nil}
	for id, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			c := a.class[l[i]]
			if goTo[s][c] < 0 {
				goTo[s][c] = int32(len(goTo))
				goTo = append(goTo, newRow(a.nclass))
				out = append(out, nil)
			}
			s = goTo[s][c]
		}
		out[s] = append(out[s], int32(id))
	}
	// Breadth first: fail links, completed transitions, merged outputs.
	fail := make([]int32, len(goTo))
	queue := make([]int32, 0, len(goTo))
	for c := range a.nclass {
		if t := goTo[0][c]; t >= 0 {
			fail[t] = 0
			queue = append(queue, t)
		} else {
			goTo[0][c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		out[s] = append(out[s], out[fail[s]]...)
		for c := range a.nclass {
			t := goTo[s][c]
			if t < 0 {
				goTo[s][c] = goTo[fail[s]][c]
				continue
			}
			fail[t] = goTo[fail[s]][c]
			queue = append(queue, t)
		}
	}
	// Renumber: root first, states without output, then those with.
	order := make([]int32, 0, len(goTo))
	for s := range goTo {
		if len(out[s]) == 0 {
			order = append(order, int32(s))
		}
	}
	nQuiet := len(order)
	for s := range goTo {
		if len(out[s]) > 0 {
			order = append(order, int32(s))
		}
	}
	renum := make([]int32, len(goTo))
	for newID, old := range order {
		renum[old] = int32(newID * a.nclass)
	}
	a.firstOut = int32(nQuiet * a.nclass)
	a.delta = make([]int32, len(goTo)*a.nclass)
	a.out = make(map[int32][]int32)
	for old, row := range goTo {
		base := renum[old]
		for c, t := range row {
			a.delta[int(base)+c] = renum[t]
		}
		if len(out[old]) > 0 {
			a.out[base] = out[old]
		}
	}
	return a
}

func newRow(n int) []int32 {
	r := make([]int32, n)
	for i := range r {
		r[i] = -1
	}
	return r
}

// scan sets bit id in seen for every literal that occurs in line.
func (a *automaton) scan(line string, seen []uint64) {
	s := int32(0)
	delta, class := a.delta, &a.class
	for i := 0; i < len(line); i++ {
		s = delta[s+int32(class[line[i]])]
		if s >= a.firstOut {
			for _, id := range a.out[s] {
				seen[id>>6] |= 1 << (id & 63)
			}
		}
	}
}
