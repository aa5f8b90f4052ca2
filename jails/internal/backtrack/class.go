package backtrack

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

// byteSet is a set of bytes, one bit each.
type byteSet [4]uint64

func (s *byteSet) has(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }
func (s *byteSet) add(b byte)      { s[b>>6] |= 1 << (b & 63) }

func (s *byteSet) addRange(lo, hi int) {
	for b := lo; b <= hi; b++ {
		s.add(byte(b))
	}
}

func (s *byteSet) union(t *byteSet) {
	for i := range s {
		s[i] |= t[i]
	}
}

// hasContinuation reports whether the set holds a UTF-8 continuation
// byte (0x80-0xBF): such a byte may sit inside a rune, where package
// regexp never starts a match.
func (s *byteSet) hasContinuation() bool {
	for b := 0x80; b <= 0xBF; b++ {
		if s.has(byte(b)) {
			return true
		}
	}
	return false
}

// class is a set of runes matched one rune at a time, the way package
// regexp steps through its input: ASCII bytes by table, anything else
// decoded, an invalid byte being U+FFFD of width 1.
type class struct {
	tab     [256]bool // members below utf8.RuneSelf, for scanning
	ascii   byteSet   // the same as a set
	high    []rune    // sorted lo, hi pairs of members at or above utf8.RuneSelf
	allHigh bool      // high covers every rune from utf8.RuneSelf up

	// stop is the one ASCII byte the class lacks when it holds every
	// other rune (`.`, `[^(]`), else -1: a span of it then ends at the
	// next stop byte, which strings.IndexByte finds fast.
	stop int
}

// newClass makes a class from regexp/syntax's sorted lo, hi pairs.
func newClass(ranges []rune) *class {
	c := &class{}
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if lo < utf8.RuneSelf {
			c.ascii.addRange(int(lo), int(min(hi, utf8.RuneSelf-1)))
			lo = utf8.RuneSelf
		}
		if lo <= hi {
			c.high = append(c.high, lo, hi)
		}
	}
	c.allHigh = covers(c.high, utf8.RuneSelf, unicode.MaxRune)
	c.stop = -1
	missing := 0
	for b := range utf8.RuneSelf {
		c.tab[b] = c.ascii.has(byte(b))
		if !c.tab[b] {
			c.stop = b
			missing++
		}
	}
	if missing != 1 || !c.allHigh {
		c.stop = -1
	}
	return c
}

// covers reports whether sorted, non-overlapping pairs cover [lo, hi].
func covers(pairs []rune, lo, hi rune) bool {
	next := lo
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] > next {
			return false
		}
		next = max(next, pairs[i+1]+1)
		if next > hi {
			return true
		}
	}
	return false
}

// foldRanges are the ranges of r and every rune it folds to, the way
// regexp matches a case-insensitive literal rune.
func foldRanges(r rune) []rune {
	runes := []rune{r}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		runes = append(runes, f)
	}
	slices.Sort(runes)
	pairs := make([]rune, 0, 2*len(runes))
	for _, f := range runes {
		pairs = append(pairs, f, f)
	}
	return pairs
}

// hasHigh reports whether r (at least utf8.RuneSelf) is a member.
func (c *class) hasHigh(r rune) bool {
	if c.allHigh {
		return true
	}
	// Binary search over the pairs.
	lo, hi := 0, len(c.high)/2
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch {
		case r < c.high[2*m]:
			hi = m
		case r > c.high[2*m+1]:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}

// width returns how many bytes of s the class matches at pos: 0 for
// none, else the width of the rune there.
func (c *class) width(s string, pos int) int {
	if pos >= len(s) {
		return 0
	}
	if b := s[pos]; b < utf8.RuneSelf {
		if c.tab[b] {
			return 1
		}
		return 0
	}
	r, w := utf8.DecodeRuneInString(s[pos:])
	if c.hasHigh(r) {
		return w
	}
	return 0
}

// firstBytes is the set of bytes a match of the class can start with.
// Any byte from 0x80 up can start one when there are non-ASCII members:
// lead bytes of members, or invalid bytes read as U+FFFD.
func (c *class) firstBytes() byteSet {
	s := c.ascii
	if len(c.high) > 0 {
		s.addRange(0x80, 0xFF)
	}
	return s
}
