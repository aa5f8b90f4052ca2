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
	// cands lists, by hash of a window's last block, the literals whose
	// window ends in that block (shift 0 there).
	cands map[uint32][]wmCand
	lits  []string
	nlit  int
}

// wmCand is a literal whose window ends at byte end of the literal.
type wmCand struct {
	id  int32
	end int32
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
	w := &wuManber{win: win, cands: make(map[uint32][]wmCand), lits: lits, nlit: len(lits)}
	for i := range w.shift {
		w.shift[i] = uint8(win - wmBlock + 1)
	}
	for id, l := range lits {
		// Each literal's window is its last win bytes: the ends of
		// messages ("failed", "denied") are rarer in normal traffic than
		// their starts.
		off := len(l) - win
		for j := 0; j+wmBlock <= win; j++ {
			p := off + j
			h := wmHash(l[p], l[p+1], l[p+2])
			w.shift[h] = min(w.shift[h], uint8(win-wmBlock-j))
		}
		p := len(l) - wmBlock
		h := wmHash(l[p], l[p+1], l[p+2])
		w.cands[h] = append(w.cands[h], wmCand{id: int32(id), end: int32(len(l) - 1)})
	}
	return w
}

// scan sets bit id in seen for every literal that occurs in line.
func (w *wuManber) scan(line string, seen []uint64) {
	shift := &w.shift
	for pos := w.win - 1; pos < len(line); {
		h := wmHash(line[pos-2], line[pos-1], line[pos])
		if s := shift[h]; s > 0 {
			pos += int(s)
			continue
		}
		for _, c := range w.cands[h] {
			l := w.lits[c.id]
			start := pos - int(c.end)
			if start >= 0 && start+len(l) <= len(line) && line[start:start+len(l)] == l {
				seen[c.id>>6] |= 1 << (c.id & 63)
			}
		}
		pos++
	}
}
