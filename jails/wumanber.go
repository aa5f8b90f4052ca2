package jails

// Wu-Manber multi-literal search: the no-hit fast path. A log line that
// holds none of the literals is the common case, and the Aho-Corasick scan
// must look at every byte through a chain of dependent table loads. This
// one looks at a 3-byte block at a time and, when that block ends none of
// the literals' windows, skips ahead by up to the window length: with
// literals of a dozen bytes or more it reads about one block in ten.
// Where a window may end, the literals ending there are compared in full,
// so the result is exact: the same bits as automaton.scan.
const (
	wmBlock    = 3
	wmHashBits = 12 // 4 KiB shift table: stays in L1
	wmMaxWin   = 64 // shifts fit a uint8
	// wmMinWin is the shortest window worth it: below it the shifts are
	// too short to beat the automaton.
	wmMinWin = 6
)

type wuManber struct {
	win   int // window length: every literal is at least this long
	shift [1 << wmHashBits]uint8
	// cands[first[h]:first[h+1]] are the literals whose window ends in a
	// block of hash h (shift 0 there): a flat table, because a map lookup
	// at every shift-0 block cost more than the rest of the scan.
	first [1<<wmHashBits + 1]uint16
	cands []wmCand
	lits  []string
	nlit  int
}

// wmCand is a literal whose window ends at byte end of the literal.
type wmCand struct {
	id   int32
	end  int32
	head uint32 // the literal's first 4 bytes, little-endian
}

// load4 reads 4 bytes of s at i, little-endian (one load once inlined).
func load4(s string, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func wmHash(a, b, c byte) uint32 {
	return ((uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 0x9E3779B1) >> (32 - wmHashBits)
}

// newWuManber builds the search for lits (ids are indexes into lits). It
// returns nil when some literal is too short for skipping to pay.
func newWuManber(lits []string) *wuManber {
	if len(lits) == 0 {
		return nil
	}
	win := wmMaxWin
	for _, l := range lits {
		win = min(win, len(l))
	}
	if win < wmMinWin {
		return nil
	}
	if len(lits) > 1<<16-1 {
		return nil
	}
	w := &wuManber{win: win, lits: lits, nlit: len(lits)}
	for i := range w.shift {
		w.shift[i] = uint8(win - wmBlock + 1)
	}
	for _, l := range lits {
		// Each literal's window is its last win bytes: the ends of
		// messages ("failed", "denied") are rarer in normal traffic than
		// their starts.
		off := len(l) - win
		for j := 0; j+wmBlock <= win; j++ {
			p := off + j
			h := wmHash(l[p], l[p+1], l[p+2])
			w.shift[h] = min(w.shift[h], uint8(win-wmBlock-j))
		}
	}
	// Counting sort of the literals by the hash of their last block.
	hashOf := func(l string) uint32 {
		p := len(l) - wmBlock
		return wmHash(l[p], l[p+1], l[p+2])
	}
	for _, l := range lits {
		w.first[hashOf(l)+1]++
	}
	for h := 1; h < len(w.first); h++ {
		w.first[h] += w.first[h-1]
	}
	w.cands = make([]wmCand, len(lits))
	next := w.first
	for id, l := range lits {
		h := hashOf(l)
		w.cands[next[h]] = wmCand{id: int32(id), end: int32(len(l) - 1), head: load4(l, 0)}
		next[h]++
	}
	return w
}

// scan sets bit id in seen for every literal that occurs in line.
func (w *wuManber) scan(line string, seen []uint64) {
	shift := &w.shift
	// Most blocks shift by the most there is, full: the next block to
	// look at is then known in advance, so two are hashed at once rather
	// than each waiting for the load before it.
	full := w.win - wmBlock + 1
	for pos := w.win - 1; pos < len(line); {
		s := int(shift[wmHash(line[pos-2], line[pos-1], line[pos])])
		if s == full {
			if next := pos + full; next < len(line) {
				s2 := int(shift[wmHash(line[next-2], line[next-1], line[next])])
				if s2 == full {
					pos = next + full
					continue
				}
				pos = next
				s = s2
				if s > 0 {
					pos += s
					continue
				}
			} else {
				return
			}
		}
		if s > 0 {
			pos += s
			continue
		}
		w.check(line, pos, seen)
		pos++
	}
}

// check compares in full the literals whose window may end at pos.
func (w *wuManber) check(line string, pos int, seen []uint64) {
	h := wmHash(line[pos-2], line[pos-1], line[pos])
	for _, c := range w.cands[w.first[h]:w.first[h+1]] {
		l := w.lits[c.id]
		start := pos - int(c.end)
		// Most blocks that hash like a literal's last one are not it: the
		// first 4 bytes rule them out before a full comparison.
		if start >= 0 && start+len(l) <= len(line) && load4(line, start) == c.head && line[start+4:start+len(l)] == l[4:] {
			seen[c.id>>6] |= 1 << (c.id & 63)
		}
	}
}
