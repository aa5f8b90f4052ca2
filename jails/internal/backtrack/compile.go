package backtrack

import (
	"encoding/binary"
	"fmt"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// op is what a node does.
type op uint8

const (
	opMatch   op = iota // the whole expression matched
	opFail              // never matches (an empty class)
	opLiteral           // the bytes of lit
	opClass             // one rune of class
	opRepeat            // min to max runes of class, a span scanned at once
	opAlt               // alts in order, leftmost first
	opLoop              // body any number of times, then next (body cannot match empty)
	opCapture           // records the position in caps[slot]
	opAssert            // the zero-width test assert
)

// node is one step of a compiled expression. Every node knows its
// successor, so matching is a walk that needs no stack of its own.
type node struct {
	op     op
	greedy bool // opRepeat, opLoop
	assert syntax.EmptyOp
	slot   int // opCapture
	min    int // opRepeat
	max    int // opRepeat; -1: unbounded
	lit    string
	class  *class
	alts   []*node
	body   *node // opLoop
	next   *node

	// opRepeat: possessive if no position inside the span can start
	// the rest (the class and next.first are disjoint), so only the
	// longest span needs trying; followByte is the one byte next can
	// start with, or -1.
	possessive bool
	followByte int
	// byStop: the repeat is unbounded, needs at most one rune and its
	// class has a stop byte, and only its longest span or ends before an
	// ASCII byte (next.first has no other) need trying. Those ends are
	// rune boundaries whatever precedes them, so the span is found with
	// IndexByte and counted in bytes (zero bytes iff zero runes).
	byStop bool

	// Where a match from this node can go: the byte at the position it
	// starts from is in first, or the position is the end of the text and
	// canEnd. Matching uses it to skip hopeless branches and positions.
	first   byteSet
	canEnd  bool
	state   uint8 // of the first-set computation
	visited bool  // by computeFirst
}

// maxNodes bounds the nodes an expression may compile to: counted
// repeats of groups are expanded, as regexp/syntax's Simplify does.
const maxNodes = 20000

type compiler struct {
	captures bool // emit opCapture nodes
	nodes    int
	match    *node
	// classes holds the classes made so far by their ranges: the <HOST>
	// expansion repeats the same few classes dozens of times, and a
	// class is a few hundred bytes that are never written after newClass.
	classes map[string]*class
}

func (c *compiler) newNode(n node) (*node, error) {
	c.nodes++
	if c.nodes > maxNodes {
		return nil, fmt.Errorf("%w: more than %d nodes", ErrUnsupported, maxNodes)
	}
	return &n, nil
}

// compileGraph compiles re into a graph that ends in an opMatch node,
// taking classes from and adding them to classes.
func compileGraph(re *syntax.Regexp, captures bool, classes map[string]*class) (*node, error) {
	c := &compiler{captures: captures, classes: classes}
	match, err := c.newNode(node{op: opMatch})
	if err != nil {
		return nil, err
	}
	c.match = match
	start, err := c.compile(re, match)
	if err != nil {
		return nil, err
	}
	computeFirst(start)
	return start, nil
}

// compile returns the entry of re's nodes, which continue with next.
// It works backwards so that every node is made with its successor.
func (c *compiler) compile(re *syntax.Regexp, next *node) (*node, error) {
	switch re.Op {
	case syntax.OpNoMatch:
		return c.newNode(node{op: opFail})
	case syntax.OpEmptyMatch:
		return next, nil
	case syntax.OpLiteral:
		return c.literal(re.Rune, re.Flags&syntax.FoldCase != 0, next)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return c.newNode(node{op: opClass, class: c.runeClass(re), next: next})
	case syntax.OpBeginLine:
		return c.newNode(node{op: opAssert, assert: syntax.EmptyBeginLine, next: next})
	case syntax.OpEndLine:
		return c.newNode(node{op: opAssert, assert: syntax.EmptyEndLine, next: next})
	case syntax.OpBeginText:
		return c.newNode(node{op: opAssert, assert: syntax.EmptyBeginText, next: next})
	case syntax.OpEndText:
		return c.newNode(node{op: opAssert, assert: syntax.EmptyEndText, next: next})
	case syntax.OpWordBoundary:
		return c.newNode(node{op: opAssert, assert: syntax.EmptyWordBoundary, next: next})
	case syntax.OpNoWordBoundary:
		return c.newNode(node{op: opAssert, assert: syntax.EmptyNoWordBoundary, next: next})
	case syntax.OpCapture:
		return c.capture(re, next)
	case syntax.OpConcat:
		var err error
		for i := len(re.Sub) - 1; i >= 0 && err == nil; i-- {
			next, err = c.compile(re.Sub[i], next)
		}
		return next, err
	case syntax.OpAlternate:
		alts := make([]*node, len(re.Sub))
		for i, sub := range re.Sub {
			a, err := c.compile(sub, next)
			if err != nil {
				return nil, err
			}
			alts[i] = a
		}
		return c.newNode(node{op: opAlt, alts: alts, next: next})
	case syntax.OpQuest:
		return c.repeat(re.Sub[0], 0, 1, re.Flags&syntax.NonGreedy == 0, next)
	case syntax.OpStar:
		return c.repeat(re.Sub[0], 0, -1, re.Flags&syntax.NonGreedy == 0, next)
	case syntax.OpPlus:
		return c.repeat(re.Sub[0], 1, -1, re.Flags&syntax.NonGreedy == 0, next)
	case syntax.OpRepeat:
		return c.repeat(re.Sub[0], re.Min, re.Max, re.Flags&syntax.NonGreedy == 0, next)
	}
	return nil, fmt.Errorf("%w: operator %v", ErrUnsupported, re.Op)
}

// literal compiles a run of literal runes: plain ones become one byte
// comparison; case-folded ones with other forms, and U+FFFD (which
// regexp also matches on an invalid byte), become classes.
func (c *compiler) literal(runes []rune, fold bool, next *node) (*node, error) {
	// Walk backwards, gathering plain runes until a class interrupts.
	end := len(runes)
	flush := func(from int) error {
		if from == end {
			return nil
		}
		n, err := c.newNode(node{op: opLiteral, lit: string(runes[from:end]), next: next})
		next = n
		return err
	}
	for i := len(runes) - 1; i >= 0; i-- {
		r := runes[i]
		var cl *class
		switch {
		case r == utf8.RuneError:
			cl = c.class([]rune{r, r})
		case fold && unicode.SimpleFold(r) != r:
			cl = c.class(foldRanges(r))
		default:
			continue
		}
		if err := flush(i + 1); err != nil {
			return nil, err
		}
		n, err := c.newNode(node{op: opClass, class: cl, next: next})
		if err != nil {
			return nil, err
		}
		next, end = n, i
	}
	if err := flush(0); err != nil {
		return nil, err
	}
	return next, nil
}

// runeClass is the class a single-rune expression matches.
func (c *compiler) runeClass(re *syntax.Regexp) *class {
	switch re.Op {
	case syntax.OpAnyChar:
		return c.class([]rune{0, utf8.MaxRune})
	case syntax.OpAnyCharNotNL:
		return c.class([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune})
	case syntax.OpLiteral:
		r := re.Rune[0]
		if re.Flags&syntax.FoldCase != 0 {
			return c.class(foldRanges(r))
		}
		return c.class([]rune{r, r})
	}
	return c.class(re.Rune)
}

// class returns the class of sorted lo, hi pairs, made once per compile.
func (c *compiler) class(ranges []rune) *class {
	key := make([]byte, 0, 4*len(ranges))
	for _, r := range ranges {
		key = binary.LittleEndian.AppendUint32(key, uint32(r))
	}
	if cl, ok := c.classes[string(key)]; ok {
		return cl
	}
	cl := newClass(ranges)
	c.classes[string(key)] = cl
	return cl
}

// isRuneClass reports whether re matches exactly one rune.
func isRuneClass(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 1
	}
	return false
}

func (c *compiler) capture(re *syntax.Regexp, next *node) (*node, error) {
	if !c.captures {
		return c.compile(re.Sub[0], next)
	}
	end, err := c.newNode(node{op: opCapture, slot: 2*re.Cap + 1, next: next})
	if err != nil {
		return nil, err
	}
	body, err := c.compile(re.Sub[0], end)
	if err != nil {
		return nil, err
	}
	return c.newNode(node{op: opCapture, slot: 2 * re.Cap, next: body})
}

// repeat compiles sub{lo,hi} (hi -1: unbounded). A one-rune body becomes
// a single opRepeat; any other is expanded the way Simplify does: lo
// copies, then nested optional copies or a loop.
func (c *compiler) repeat(sub *syntax.Regexp, lo, hi int, greedy bool, next *node) (*node, error) {
	if hi == 0 {
		// regexp drops the body, captures included.
		return next, nil
	}
	if isRuneClass(sub) {
		cl := c.runeClass(sub)
		if len(cl.high) == 0 && cl.ascii == (byteSet{}) {
			// An empty class: only zero repetitions can match.
			if lo == 0 {
				return next, nil
			}
			return c.newNode(node{op: opFail})
		}
		return c.newNode(node{op: opRepeat, class: cl, min: lo, max: hi, greedy: greedy, next: next})
	}
	if (hi < 0 || hi > 1) && canBeEmpty(sub) {
		// regexp's handling of empty iterations is subtle; leave it to it.
		return nil, fmt.Errorf("%w: repeated expression can match empty: %v", ErrUnsupported, sub)
	}
	tail := next
	if hi < 0 {
		loop, err := c.newNode(node{op: opLoop, greedy: greedy, next: next})
		if err != nil {
			return nil, err
		}
		if loop.body, err = c.compile(sub, loop); err != nil {
			return nil, err
		}
		tail = loop
	} else {
		for range hi - lo {
			body, err := c.compile(sub, tail)
			if err != nil {
				return nil, err
			}
			alts := []*node{body, next}
			if !greedy {
				alts[0], alts[1] = next, body
			}
			if tail, err = c.newNode(node{op: opAlt, alts: alts, next: next}); err != nil {
				return nil, err
			}
		}
	}
	for range lo {
		var err error
		if tail, err = c.compile(sub, tail); err != nil {
			return nil, err
		}
	}
	return tail, nil
}

// canBeEmpty reports whether re can match the empty string.
func canBeEmpty(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL, syntax.OpNoMatch:
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return canBeEmpty(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || canBeEmpty(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !canBeEmpty(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if canBeEmpty(sub) {
				return true
			}
		}
		return false
	}
	// Empty match, assertions, star, quest; and anything unknown.
	return true
}

// States of the first-set computation.
const (
	firstTodo = iota
	firstBusy
	firstDone
)

// computeFirst fills first and canEnd of every node reachable from n.
func computeFirst(n *node) {
	var visit func(*node)
	visit = func(n *node) {
		if n == nil || n.visited {
			return
		}
		n.visited = true
		firstOf(n)
		if n.op == opRepeat {
			firstOf(n.next)
			follow(n)
		}
		for _, a := range n.alts {
			visit(a)
		}
		visit(n.body)
		visit(n.next)
	}
	visit(n)
}

// firstOf computes n.first and n.canEnd from its successors. Only
// zero-width steps lead on, and none of them loops (a loop's body always
// consumes), so a busy node met again is only a safety net: it answers
// "anything".
func firstOf(n *node) (*byteSet, bool) {
	switch n.state {
	case firstDone:
		return &n.first, n.canEnd
	case firstBusy:
		return &byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}, true
	}
	n.state = firstBusy
	var s byteSet
	canEnd := false
	switch n.op {
	case opMatch:
		s = byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
		canEnd = true
	case opFail:
	case opLiteral:
		s.add(n.lit[0])
	case opClass:
		s = n.class.firstBytes()
	case opRepeat:
		s = n.class.firstBytes()
		if n.min == 0 {
			f, e := firstOf(n.next)
			s.union(f)
			canEnd = e
		}
	case opAlt:
		for _, a := range n.alts {
			f, e := firstOf(a)
			s.union(f)
			canEnd = canEnd || e
		}
	case opLoop:
		f, e := firstOf(n.body)
		s.union(f)
		canEnd = e
		f, e = firstOf(n.next)
		s.union(f)
		canEnd = canEnd || e
	case opCapture:
		f, e := firstOf(n.next)
		s, canEnd = *f, e
	case opAssert:
		f, e := firstOf(n.next)
		canEnd = e
		if n.assert != syntax.EmptyEndText {
			s = *f
		}
	}
	n.first, n.canEnd, n.state = s, canEnd, firstDone
	return &n.first, n.canEnd
}

// follow sets possessive and followByte of a repeat, once the first sets
// are known.
func follow(n *node) {
	cf := n.class.firstBytes()
	next := &n.next.first
	n.possessive = true
	n.followByte = -1
	count := 0
	for i := range cf {
		if cf[i]&next[i] != 0 {
			n.possessive = false
		}
	}
	for b := range 256 {
		if next.has(byte(b)) {
			n.followByte = b
			count++
		}
	}
	if count != 1 {
		n.followByte = -1
	}
	n.byStop = n.max < 0 && n.min <= 1 && n.class.stop >= 0 &&
		(n.possessive || next[2]|next[3] == 0)
}
