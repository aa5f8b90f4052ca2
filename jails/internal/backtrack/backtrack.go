// Package backtrack is a byte-oriented backtracking matcher for the
// regular expressions jails use, with the same matches and submatches as
// package regexp.
//
// It compiles the parsed expression (not regexp's simplified program)
// into nodes that each know their successor, and matches by a recursive
// walk that allocates nothing: literals compare bytes, a repeated class
// scans its span at once and backtracks from the longest, and a search
// jumps to the places a match can start. It gives up on what it does not
// handle exactly (Compile returns ErrUnsupported) and on inputs that
// would cost it more than a few steps per byte (Match says !ok), and the
// caller then uses package regexp, whose worst case is linear.
package backtrack

import (
	"errors"
	"fmt"
	"math"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// ErrUnsupported wraps the reason Compile refuses an expression.
var ErrUnsupported = errors.New("unsupported by backtrack")

// Regexp is a compiled expression. It is safe for concurrent use.
type Regexp struct {
	expr      string
	numSubexp int
	withCaps  *node // the graph for Match
	noCaps    *node // the same without capture nodes, for MatchString
	prefix    string
	skip      bool // starts may jump to bytes in withCaps.first
	anchored  bool // only position 0 can match

	// lead is the class of an unbounded repeat every match starts with
	// (`.*x`, `[^(]*\(`), or nil. If a match from pos fails, so does one
	// from anywhere in the span lead covers from pos: it would try the
	// rest of the expression from a subset of the same places.
	lead *class
}

// Compile parses expr as regexp.Compile does (syntax.Perl flags). It
// fails for expressions regexp rejects and, wrapping ErrUnsupported, for
// those this package does not handle exactly.
func Compile(expr string) (*Regexp, error) {
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	return compileTree(expr, tree, true, true)
}

// CompileParsed is Compile for expr already parsed with syntax.Perl
// flags, and builds only the matcher the caller will use: Match if
// submatches, else MatchString. The other then says !ok on every call,
// as on a line over budget. tree is only read. A caller that has parsed
// the expression anyway saves a parse and half the compile.
func CompileParsed(expr string, tree *syntax.Regexp, submatches bool) (*Regexp, error) {
	return compileTree(expr, tree, submatches, !submatches)
}

func compileTree(expr string, tree *syntax.Regexp, withCaps, noCaps bool) (*Regexp, error) {
	re := &Regexp{expr: expr, numSubexp: tree.MaxCap()}
	classes := map[string]*class{}
	var err error
	if withCaps {
		if re.withCaps, err = compileGraph(tree, true, classes); err != nil {
			return nil, fmt.Errorf("compile %q: %w", expr, err)
		}
	}
	if noCaps {
		if re.noCaps, err = compileGraph(tree, false, classes); err != nil {
			return nil, fmt.Errorf("compile %q: %w", expr, err)
		}
	}
	// The graphs differ only in capture nodes, which take no input: past
	// the leading ones, either graph starts the same way.
	start := re.noCaps
	if start == nil {
		start = re.withCaps
		for start.op == opCapture {
			start = start.next
		}
	}
	re.prefix, re.anchored = entry(start)
	if start.op == opRepeat && start.max < 0 {
		re.lead = start.class
	}
	first := &start.first
	re.skip = !first.hasContinuation() && *first != byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
	return re, nil
}

// entry returns the literal every match starts with, if any, and whether
// matches can only start at the beginning of the text.
func entry(n *node) (prefix string, anchored bool) {
	for n.op == opAssert {
		if n.assert == syntax.EmptyBeginText {
			anchored = true
		}
		n = n.next
	}
	if n.op == opLiteral {
		prefix = n.lit
	}
	return prefix, anchored
}

// MustCompile is Compile for tests and constants.
func MustCompile(expr string) *Regexp {
	re, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return re
}

// String returns the expression.
func (re *Regexp) String() string { return re.expr }

// NumSubexp returns the number of parenthesized subexpressions, as
// regexp.Regexp.NumSubexp does.
func (re *Regexp) NumSubexp() int { return re.numSubexp }

// Match finds the leftmost-first match of re in s, as
// regexp.FindStringSubmatchIndex does, and fills caps with its
// submatch positions (-1 for groups that did not take part). caps must
// have 2*(NumSubexp()+1) elements; Match allocates nothing. ok is false
// if the match would take too many steps: matched and caps mean nothing
// then, and the caller must ask package regexp.
func (re *Regexp) Match(s string, caps []int) (matched, ok bool) {
	if re.withCaps == nil {
		return false, false
	}
	if len(caps) != 2*(re.numSubexp+1) {
		panic(fmt.Sprintf("backtrack: %d capture slots, want %d", len(caps), 2*(re.numSubexp+1)))
	}
	for i := range caps {
		caps[i] = -1
	}
	m := machine{s: s, caps: caps, budget: budget(len(s)), noLog: len(s) > math.MaxInt32}
	return m.search(re, re.withCaps)
}

// MatchString reports whether s contains a match of re, as
// regexp.MatchString does; ok is as for Match.
func (re *Regexp) MatchString(s string) (matched, ok bool) {
	if re.noCaps == nil {
		return false, false
	}
	m := machine{s: s, budget: budget(len(s))}
	return m.search(re, re.noCaps)
}

// budget is how many steps a match on n bytes may take before Match gives
// up. Log lines that match take a few steps per byte; a pathological
// expression and input take exponentially many.
func budget(n int) int { return 16*n + 1024 }

// maxDepth bounds the recursion of a match, which grows with the
// iterations of a repeated group: past it Match gives up, as on the step
// budget, rather than grow the goroutine's stack without end.
const maxDepth = 4000

// machine is the state of one match.
type machine struct {
	s      string
	caps   []int // nil for MatchString
	steps  int
	budget int

	// undo logs the capture writes a failing branch must take back, so
	// that a capture need not recurse; a choice point undoes to the
	// length it started with. When it is full (or positions do not fit
	// an int32) captures recurse instead.
	undo  [24]capWrite
	nundo int
	noLog bool
}

// capWrite is a capture slot and the value a write to it replaced.
type capWrite struct{ slot, old int32 }

// undoTo takes back the capture writes logged since the log had mark
// entries.
func (m *machine) undoTo(mark int) {
	for m.nundo > mark {
		m.nundo--
		w := m.undo[m.nundo]
		m.caps[w.slot] = int(w.old)
	}
}

// search tries each position package regexp would, leftmost first.
func (m *machine) search(re *Regexp, start *node) (matched, ok bool) {
	s := m.s
	for pos := 0; pos <= len(s); {
		switch {
		case re.prefix != "":
			i := strings.Index(s[pos:], re.prefix)
			if i < 0 {
				return false, true
			}
			pos += i
		case re.skip:
			for pos < len(s) && !start.first.has(s[pos]) {
				pos++
			}
			if pos == len(s) && !start.canEnd {
				return false, true
			}
		}
		if m.caps != nil {
			m.caps[0] = pos
		}
		if m.run(start, pos, 0) {
			return true, true
		}
		m.undoTo(0)
		if m.steps > m.budget {
			return false, false
		}
		if re.anchored {
			break
		}
		if re.lead != nil {
			pos = m.span(re.lead, pos)
		}
		if pos == len(s) {
			break
		}
		if s[pos] < utf8.RuneSelf {
			pos++
		} else {
			_, w := utf8.DecodeRuneInString(s[pos:])
			pos += w
		}
	}
	if m.caps != nil {
		m.caps[0] = -1
	}
	return false, true
}

// can reports whether a match from n may start at pos.
func (m *machine) can(n *node, pos int) bool {
	if pos < len(m.s) {
		return n.first.has(m.s[pos])
	}
	return n.canEnd
}

// run matches from node n at pos to the end of the expression, depth
// recursions deep. It loops along single successors and recurses only
// where there is a choice, undoing its capture writes when the choice
// fails.
func (m *machine) run(n *node, pos, depth int) bool {
	if depth > maxDepth {
		m.steps = m.budget + 1
		return false
	}
	s := m.s
	for {
		m.steps++
		if m.steps > m.budget {
			return false
		}
		switch n.op {
		case opMatch:
			if m.caps != nil {
				m.caps[1] = pos
			}
			return true
		case opFail:
			return false
		case opLiteral:
			// Test the first byte inline: most literals that fail, fail
			// there, and one-byte literals (`.`, `:`) are common.
			if pos >= len(s) || s[pos] != n.lit[0] {
				return false
			}
			if len(n.lit) > 1 && (len(s)-pos < len(n.lit) || s[pos+1:pos+len(n.lit)] != n.lit[1:]) {
				return false
			}
			pos += len(n.lit)
		case opClass:
			w := n.class.width(s, pos)
			if w == 0 {
				return false
			}
			pos += w
		case opRepeat:
			if !n.greedy {
				return m.lazy(n, pos, depth)
			}
			var ok bool
			if ok, n, pos = m.greedy(n, pos, depth); n == nil {
				return ok
			}
			continue
		case opAlt:
			// Recurse for each alternative that can start here but the
			// last such one, which continues this loop.
			var cand *node
			mark := m.nundo
			for _, a := range n.alts {
				if !m.can(a, pos) {
					continue
				}
				if cand != nil {
					if m.run(cand, pos, depth+1) {
						return true
					}
					m.undoTo(mark)
				}
				cand = a
			}
			if cand == nil {
				return false
			}
			n = cand
			continue
		case opLoop:
			first, second := n.body, n.next
			if !n.greedy {
				first, second = second, first
			}
			if m.can(first, pos) {
				mark := m.nundo
				if m.run(first, pos, depth+1) {
					return true
				}
				m.undoTo(mark)
			}
			n = second
			continue
		case opCapture:
			if m.caps == nil {
				break
			}
			if m.nundo < len(m.undo) && !m.noLog {
				m.undo[m.nundo] = capWrite{int32(n.slot), int32(m.caps[n.slot])}
				m.nundo++
				m.caps[n.slot] = pos
				break
			}
			old := m.caps[n.slot]
			m.caps[n.slot] = pos
			if m.run(n.next, pos, depth+1) {
				return true
			}
			m.caps[n.slot] = old
			return false
		case opAssert:
			if !m.assert(n.assert, pos) {
				return false
			}
		}
		n = n.next
	}
}

// toStop returns where the longest run of c from pos ends, for a class
// with a stop byte.
func (m *machine) toStop(c *class, pos int) int {
	end := len(m.s)
	if i := strings.IndexByte(m.s[pos:], byte(c.stop)); i >= 0 {
		end = pos + i
	}
	m.steps += end - pos
	return end
}

// span returns where the longest run of c from pos ends.
func (m *machine) span(c *class, pos int) int {
	if c.stop >= 0 {
		return m.toStop(c, pos)
	}
	end, _, _ := m.scan(c, pos, len(m.s)-pos)
	return end
}

// scan matches c up to limit times from pos. It returns where the run
// ends, how many runes it has, and whether they are all ASCII.
func (m *machine) scan(c *class, pos, limit int) (end, count int, ascii bool) {
	s := m.s
	stop := len(s)
	if limit < stop-pos {
		stop = pos + limit
	}
	end = pos
	for end < stop && c.tab[s[end]] {
		end++
	}
	count, ascii = end-pos, true
	if len(c.high) > 0 {
		// Mixed with non-ASCII runes: decode.
		for count < limit && end < len(s) {
			if b := s[end]; b < utf8.RuneSelf {
				if !c.tab[b] {
					break
				}
				end++
			} else {
				r, w := utf8.DecodeRuneInString(s[end:])
				if !c.hasHigh(r) {
					break
				}
				end += w
				ascii = false
			}
			count++
		}
	}
	m.steps += end - pos
	return end, count, ascii
}

// greedy matches a repeated class: it scans the longest span, then tries
// the rest of the expression from each end position, longest first. It
// returns the node and position to go on from when only the longest span
// can lead to a match, so that run continues without recursing.
func (m *machine) greedy(n *node, pos, depth int) (bool, *node, int) {
	s := m.s
	limit := n.max
	if limit < 0 {
		limit = len(s) - pos
	}
	var end, count int
	ascii := true
	switch {
	case n.byStop:
		end = m.toStop(n.class, pos)
		count = end - pos
	case len(n.class.high) == 0:
		// ASCII only, here rather than in scan: the spans are short.
		stop := min(len(s), pos+limit)
		tab := &n.class.tab
		end = pos
		for end < stop && tab[s[end]] {
			end++
		}
		count = end - pos
		m.steps += count
	default:
		end, count, ascii = m.scan(n.class, pos, limit)
	}
	if count < n.min {
		return false, nil, 0
	}
	next := n.next
	if n.possessive {
		return false, next, end
	}
	mark := m.nundo
	for {
		if m.can(next, end) {
			if m.run(next, end, depth+1) {
				return true, nil, 0
			}
			m.undoTo(mark)
		}
		if count == n.min || m.steps > m.budget {
			return false, nil, 0
		}
		// Step back one rune. Decoding backwards within the span finds
		// the same boundaries as decoding forwards did.
		if !ascii {
			_, w := utf8.DecodeLastRuneInString(s[pos:end])
			end -= w
			count--
			continue
		}
		if n.followByte < 0 {
			// Skip the ends the rest cannot start at.
			lo := pos + n.min
			end--
			for end > lo && !next.first.has(s[end]) {
				end--
			}
			count = end - pos
			continue
		}
		// Only ends where the one byte the rest can start with stands.
		i := strings.LastIndexByte(s[pos+n.min:end], byte(n.followByte))
		if i < 0 {
			return false, nil, 0
		}
		end = pos + n.min + i
		count = end - pos
	}
}

// lazy matches a non-greedy repeated class: fewest runes first.
func (m *machine) lazy(n *node, pos, depth int) bool {
	mark := m.nundo
	for count := 0; ; count++ {
		if count >= n.min && m.can(n.next, pos) {
			if m.run(n.next, pos, depth+1) {
				return true
			}
			m.undoTo(mark)
		}
		if count == n.max || m.steps > m.budget {
			return false
		}
		w := n.class.width(m.s, pos)
		if w == 0 {
			return false
		}
		pos += w
		m.steps++
	}
}

// assert tests a zero-width assertion at pos the way regexp does. Only
// ASCII bytes can be newlines or word characters, so looking at single
// bytes is exact even next to multi-byte or invalid UTF-8.
func (m *machine) assert(op syntax.EmptyOp, pos int) bool {
	s := m.s
	switch op {
	case syntax.EmptyBeginLine:
		return pos == 0 || s[pos-1] == '\n'
	case syntax.EmptyEndLine:
		return pos == len(s) || s[pos] == '\n'
	case syntax.EmptyBeginText:
		return pos == 0
	case syntax.EmptyEndText:
		return pos == len(s)
	case syntax.EmptyWordBoundary:
		return m.wordBefore(pos) != m.wordAt(pos)
	case syntax.EmptyNoWordBoundary:
		return m.wordBefore(pos) == m.wordAt(pos)
	}
	return false
}

func (m *machine) wordBefore(pos int) bool { return pos > 0 && syntax.IsWordChar(rune(m.s[pos-1])) }
func (m *machine) wordAt(pos int) bool     { return pos < len(m.s) && syntax.IsWordChar(rune(m.s[pos])) }
