package jails

import "math/bits"

const (
	slabBits = 10 // windows live in chunks of 1024: no big copy as they grow
	slabSize = 1 << slabBits

	flagOlder = 1 << 0 // the window's failures are in older (see set)
)

// windowKey is what a windowTable finds a window by within a jail: a
// prefix (wkey) or, say, a user name's hash. A window holds its key
// inline, so the key must hold no pointers, and it should be small and
// of alignment 1: with wkey's 17 bytes a window is 48.
type windowKey interface {
	comparable
	// hash returns the hash of (jail, key) under seed: its low bits
	// place the window in the index, tagOf's bits tag it there, and
	// shardOf's bits pick its shard.
	hash(seed *[2]uint64, jail uint16) uint64
}

// windowTable holds windows of failures by (jail, key), with nothing
// the garbage collector has to scan: what failures mean is the Counter's
// business, not the table's.
//
// A window is a struct without pointers, in chunks that the garbage
// collector does not scan, holding a single failure inline; only windows
// of several failures keep them in a block of the older pool. An
// open-addressing index of int32 slot numbers, with a tag byte each,
// finds them, a heap of slot numbers orders their deadlines (the newest
// failure plus the jail's span), and each (jail, shard) links its windows
// so that a checkpoint can read a changed shard without a scan. Beyond
// maxKeys windows, the one that would expire first is evicted.
type windowTable[K windowKey] struct {
	maxKeys int
	// seed keys the hash, so that nobody can choose keys that collide.
	seed    [2]uint64
	span    []int64 // by jail: deadline = newest failure + span (findtime), ns
	perJail []int   // by jail: live windows

	shards  [][]int32 // by jail (nil: no window yet), then shard: first window (slot+1; 0: none)
	dirty   [][]uint64
	changed []shardRef // dirty shards, in the order they changed
	// untracked: no shard lists, no dirty shards (see Counter.Untracked).
	untracked bool

	// index is open addressing with linear probing: slot+1, 0 empty.
	// tags holds a byte of each entry's hash (0: empty), so that a probe
	// that misses reads 64 entries' tags per cache line and rarely a
	// window.
	index  []int32
	tags   []uint8
	live   int
	slab   [][]window[K]
	nslots int32
	free   []int32
	heap   []int32   // slots, min-heap on deadline
	older  eventPool // the failures of windows with several, oldest first
	evs    []event   // scratch: one window's failures

	evicted uint64 // windows evicted because maxKeys was reached
}

// window is one (jail, key)'s failures: a single one inline, several in a
// block of windowTable.older. No pointers, so a million of them cost the
// GC nothing.
type window[K windowKey] struct {
	t          int64  // newest failure, Unix ns
	user, pass uint32 // the failure's hashes; with flagOlder, its block's offset and length
	heapIdx    int32
	next, prev int32 // the shard's list (slot+1; 0: none)
	jail       uint16
	flags      uint8
	key        K
}

// event is one failure. user and pass are keyed hashes (0: none logged)
// rather than strings: 8 bytes whatever the name, and nothing the
// attacker sends is kept.
type event struct {
	t    int64 // Unix ns
	user uint32
	pass uint32
}

type shardRef struct {
	jail  uint16
	shard uint16
}

func (t *windowTable[K]) init(maxKeys int, seed [2]uint64) {
	t.maxKeys, t.seed = maxKeys, seed
	t.index = make([]int32, 64)
	t.tags = make([]uint8, 64)
}

// addJail makes room for the windows of one more jail, whose id is the
// number of jails before it.
func (t *windowTable[K]) addJail(span int64) {
	t.span = append(t.span, span)
	t.shards = append(t.shards, nil) // made with the jail's first window
	t.dirty = append(t.dirty, nil)
	t.perJail = append(t.perJail, 0)
}

// setSpan changes a jail's span. Deadlines are newest + span: a new span
// reorders them.
func (t *windowTable[K]) setSpan(jail uint16, span int64) {
	if t.span[jail] != span {
		t.span[jail] = span
		t.heapify()
	}
}

// setMaxKeys changes the bound on windows, evicting at once the windows
// closest to expiry that are past it.
func (t *windowTable[K]) setMaxKeys(n int) {
	t.maxKeys = n
	for t.live > n {
		t.removeSlot(t.heap[0])
		t.evicted++
	}
}

// mum is the 64x64->128 multiply folded to 64 bits, wyhash's mixer.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func shardOf(h uint64) uint16 { return uint16(h >> (64 - ShardBits)) }

// tagOf is the index tag of hash h: bits that neither the home position
// (the low bits) of any index below 2^40 entries nor shardOf uses, never 0.
func tagOf(h uint64) uint8 { return uint8(h>>40) | 1 }

func (t *windowTable[K]) slot(idx int32) *window[K] {
	return &t.slab[idx>>slabBits][idx&(slabSize-1)]
}

func (t *windowTable[K]) deadline(w *window[K]) int64 { return w.t + t.span[w.jail] }

// find returns the slot of (jail, k), of hash h, or -1.
func (t *windowTable[K]) find(jail uint16, k K, h uint64) int32 {
	mask := uint64(len(t.index) - 1)
	tag := tagOf(h)
	for i := h & mask; ; i = (i + 1) & mask {
		g := t.tags[i]
		if g == 0 {
			return -1
		}
		if g != tag {
			continue
		}
		v := t.index[i]
		if w := t.slot(v - 1); w.key == k && w.jail == jail {
			return v - 1
		}
	}
}

func (t *windowTable[K]) indexInsert(idx int32, h uint64) {
	if (t.live+1)*4 > len(t.index)*3 {
		t.growIndex()
	}
	t.place(idx+1, h)
}

// place puts entry v (slot+1) of hash h in the first free place of its
// probe run.
func (t *windowTable[K]) place(v int32, h uint64) {
	mask := uint64(len(t.index) - 1)
	i := h & mask
	for t.tags[i] != 0 {
		i = (i + 1) & mask
	}
	t.index[i], t.tags[i] = v, tagOf(h)
}

func (t *windowTable[K]) growIndex() {
	old := t.index
	t.index = make([]int32, 2*len(old))
	t.tags = make([]uint8, 2*len(old))
	for _, v := range old {
		if v != 0 {
			w := t.slot(v - 1)
			t.place(v, w.key.hash(&t.seed, w.jail))
		}
	}
}

// indexDelete removes slot idx (hash h) from the index, shifting the rest
// of its probe run back so that no tombstone is needed.
func (t *windowTable[K]) indexDelete(idx int32, h uint64) {
	mask := uint64(len(t.index) - 1)
	i := h & mask
	for t.index[i] != idx+1 {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		v := t.index[j]
		if v == 0 {
			break
		}
		w := t.slot(v - 1)
		home := w.key.hash(&t.seed, w.jail) & mask
		// v may fill the hole at i if i lies between its home and j.
		if (j-home)&mask >= (j-i)&mask {
			t.index[i], t.tags[i] = v, t.tags[j]
			i = j
		}
	}
	t.index[i], t.tags[i] = 0, 0
}

// create makes an empty window for (jail, k), of hash h, evicting one
// first if the table is full; the caller then sets its failures.
func (t *windowTable[K]) create(jail uint16, k K, h uint64) int32 {
	for t.live >= t.maxKeys && len(t.heap) > 0 {
		t.removeSlot(t.heap[0])
		t.evicted++
	}
	var idx int32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		idx = t.nslots
		t.nslots++
		if int(idx>>slabBits) == len(t.slab) {
			t.slab = append(t.slab, make([]window[K], slabSize))
		}
	}
	w := t.slot(idx)
	*w = window[K]{key: k, jail: jail, heapIdx: int32(len(t.heap))}
	t.heap = append(t.heap, idx)
	t.indexInsert(idx, h)
	t.live++
	t.perJail[jail]++
	if t.untracked {
		return idx
	}
	// Link it first in its shard.
	if t.shards[jail] == nil {
		t.shards[jail] = make([]int32, 1<<ShardBits)
		t.dirty[jail] = make([]uint64, (1<<ShardBits)/64)
	}
	head := &t.shards[jail][shardOf(h)]
	w.next = *head
	if *head != 0 {
		t.slot(*head - 1).prev = idx + 1
	}
	*head = idx + 1
	return idx
}

// remove drops the window of (jail, k), if any, and reports whether there
// was one.
func (t *windowTable[K]) remove(jail uint16, k K) bool {
	idx := t.find(jail, k, k.hash(&t.seed, jail))
	if idx >= 0 {
		t.removeSlot(idx)
	}
	return idx >= 0
}

func (t *windowTable[K]) removeSlot(idx int32) {
	w := t.slot(idx)
	jail := w.jail
	h := w.key.hash(&t.seed, jail)
	t.indexDelete(idx, h)
	// Out of the heap: move the last element into the hole and restore.
	i := int(w.heapIdx)
	last := len(t.heap) - 1
	if i != last {
		t.heap[i] = t.heap[last]
		t.slot(t.heap[i]).heapIdx = int32(i)
	}
	t.heap = t.heap[:last]
	if i < len(t.heap) {
		t.fix(i)
	}
	// Out of its shard's list.
	if !t.untracked {
		t.unlink(w, jail, shardOf(h))
	}
	if w.flags&flagOlder != 0 {
		t.older.release(int32(w.user), int(w.pass))
	}
	*w = window[K]{}
	t.live--
	t.perJail[jail]--
	t.free = append(t.free, idx)
}

// expire drops the windows whose deadline is before now (Unix ns), and
// returns how many.
func (t *windowTable[K]) expire(now int64) int {
	n := 0
	for len(t.heap) > 0 && t.deadline(t.slot(t.heap[0])) < now {
		t.removeSlot(t.heap[0])
		n++
	}
	return n
}

// loadEvents returns the window's failures, oldest first, in t.evs.
func (t *windowTable[K]) loadEvents(idx int32) []event {
	w := t.slot(idx)
	if w.flags&flagOlder != 0 {
		t.evs = append(t.evs[:0], t.older.get(int32(w.user), int(w.pass))...)
	} else {
		t.evs = append(t.evs[:0], event{t: w.t, user: w.user, pass: w.pass})
	}
	return t.evs
}

// set makes evs (not empty, oldest first) the failures of window idx, of
// hash h: its deadline moves and its shard changes. One failure is kept
// inline; several go to a block of t.older, and then the window's user
// and pass are the block's offset and length instead.
func (t *windowTable[K]) set(idx int32, h uint64, evs []event) {
	w := t.slot(idx)
	last := evs[len(evs)-1]
	w.t = last.t
	at, n := int32(-1), 0
	if w.flags&flagOlder != 0 {
		at, n = int32(w.user), int(w.pass)
	}
	if len(evs) == 1 {
		if at >= 0 {
			t.older.release(at, n)
			w.flags &^= flagOlder
		}
		w.user, w.pass = last.user, last.pass
	} else {
		w.user, w.pass = uint32(t.older.set(at, n, evs)), uint32(len(evs))
		w.flags |= flagOlder
	}
	t.fix(int(w.heapIdx))
	t.markDirty(w.jail, shardOf(h))
}

func (t *windowTable[K]) markDirty(jail, shard uint16) {
	if t.untracked {
		return
	}
	bit := &t.dirty[jail][shard/64]
	if *bit&(1<<(shard%64)) == 0 {
		*bit |= 1 << (shard % 64)
		t.changed = append(t.changed, shardRef{jail: jail, shard: shard})
	}
}

// unlink takes w out of its shard's list and marks the shard changed.
func (t *windowTable[K]) unlink(w *window[K], jail, shard uint16) {
	if w.prev != 0 {
		t.slot(w.prev - 1).next = w.next
	} else {
		t.shards[jail][shard] = w.next
	}
	if w.next != 0 {
		t.slot(w.next - 1).prev = w.prev
	}
	t.markDirty(jail, shard)
}

// eachShard calls fn for every shard holding windows (all), or for every
// shard changed since the last forgetChanges, with the shard's first
// window (slot+1; 0: none, it emptied); a window's next is the one after.
func (t *windowTable[K]) eachShard(all bool, fn func(r shardRef, first int32)) {
	if all {
		for id, heads := range t.shards {
			for s, v := range heads {
				if v != 0 {
					fn(shardRef{jail: uint16(id), shard: uint16(s)}, v)
				}
			}
		}
		return
	}
	for _, r := range t.changed {
		fn(r, t.shards[r.jail][r.shard])
	}
}

// forgetChanges marks every shard unchanged.
func (t *windowTable[K]) forgetChanges() {
	for _, d := range t.dirty {
		clear(d)
	}
	t.changed = t.changed[:0]
}

// heapify rebuilds the heap after deadlines moved (a jail's new span).
func (t *windowTable[K]) heapify() {
	for i := len(t.heap)/2 - 1; i >= 0; i-- {
		t.down(i)
	}
}

// fix restores the heap after the deadline at heap position i changed.
func (t *windowTable[K]) fix(i int) {
	if !t.down(i) {
		t.up(i)
	}
}

// less and swap index the slab themselves: in generic code, each call
// to slot on the heap's path would load and check a dictionary.
func (t *windowTable[K]) less(i, j int) bool {
	a, b := t.heap[i], t.heap[j]
	wa := &t.slab[a>>slabBits][a&(slabSize-1)]
	wb := &t.slab[b>>slabBits][b&(slabSize-1)]
	return wa.t+t.span[wa.jail] < wb.t+t.span[wb.jail]
}

func (t *windowTable[K]) swap(i, j int) {
	a, b := t.heap[j], t.heap[i]
	t.heap[i], t.heap[j] = a, b
	t.slab[a>>slabBits][a&(slabSize-1)].heapIdx = int32(i)
	t.slab[b>>slabBits][b&(slabSize-1)].heapIdx = int32(j)
}

func (t *windowTable[K]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *windowTable[K]) down(i0 int) bool {
	i, n := i0, len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			break
		}
		t.swap(i, m)
		i = m
	}
	return i > i0
}
