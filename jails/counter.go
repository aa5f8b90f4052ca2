package jails

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"smtpban/internal/logline"
)

const (
	// DefaultMaxKeys bounds a Counter made with maxKeys <= 0: 2M windows,
	// some 125 MB of heap at about 61 bytes per window of one failure.
	DefaultMaxKeys = 1 << 21
	// DefaultFindTime stands in for a jail's FindTime <= 0.
	DefaultFindTime = 10 * time.Minute
	// MaxLineBytes bounds the line a Decision carries.
	MaxLineBytes = 512
	// ShardBits sets how many shards (1<<ShardBits per jail) Changes
	// reports windows in: a checkpoint rewrites only the shards that
	// changed, each some 300 bytes with a million windows (see
	// state.BenchmarkCheckpoint: 2x faster than 1<<13 for 200 changes).
	ShardBits = 16
)

const (
	slabBits = 10 // windows live in chunks of 1024: no big copy as they grow
	slabSize = 1 << slabBits

	flagV4    = 1 << 0 // the key is an IPv4 prefix
	flagOlder = 1 << 1 // the window's failures are in c.older (see storeEvents)
)

// Counter counts failures in sliding findtime windows per (jail, key) and
// decides bans. It is safe for concurrent use.
//
// Memory is bounded: a window holds at most MaxRetry-1 failures (the
// MaxRetry-th decides a ban and clears it); a window whose failures are
// all older than findtime is dropped when next touched or by Expire; and
// beyond maxKeys windows the one that would expire first is evicted.
//
// A window is a 48-byte struct without pointers, in chunks that the
// garbage collector does not scan, holding a single failure inline; only
// windows of several failures keep them in a block of the older pool. An
// open-addressing table of int32 slot numbers, with a tag byte each,
// finds them, a heap of slot numbers orders their deadlines, and each
// (jail, shard) links its windows so that Changes can report a changed
// shard without a scan. Together that is about 63 bytes per window with
// one failure (BenchmarkCounterMemory), and O(log n) per failure.
type Counter struct {
	mu      sync.Mutex
	maxKeys int
	jailID  map[string]uint16
	jails   []*Jail   // by id: the latest definition seen
	ft      []int64   // by jail id: findtime in ns
	shards  [][]int32 // by jail id (nil: no window yet), then shard: first window (slot+1; 0: none)
	dirty   [][]uint64
	perJail []int      // by jail id: live windows
	changed []shardRef // dirty shards, in the order they changed
	// untracked: no shard lists, no dirty shards (see Untracked).
	untracked bool

	// index is open addressing with linear probing: slot+1, 0 empty.
	// tags holds a byte of each entry's hash (0: empty), so that a probe
	// that misses reads 64 entries' tags per cache line and rarely a
	// window.
	index  []int32
	tags   []uint8
	live   int
	slab   [][]window
	nslots int32
	free   []int32
	heap   []int32   // slots, min-heap on deadline
	older  eventPool // the failures of windows with several, oldest first
	evs    []event   // scratch: one window's failures

	// hashSeed keys the index and shard hash, so that nobody can choose
	// addresses that collide.
	hashSeed [2]uint64
	// userKey keys the user and fingerprint hashes, so that nobody can
	// pick a user name whose hash collides with another one's and have a
	// login clear failures that are not its own. The daemon keeps it in
	// state (HashKey, SetHashKey) so that saved hashes stay meaningful.
	userKey [2]uint64

	evicted, expired, cleared, repeats uint64

	out      []Window // scratch for Changes
	outTimes []time.Time
	outU     []uint32
	outP     []uint32
}

// CounterStats describes a Counter.
type CounterStats struct {
	Windows int    // live windows
	Evicted uint64 // windows evicted because maxKeys was reached
	Expired uint64 // windows dropped because findtime had passed
	Cleared uint64 // failures a successful login cleared
	Repeats uint64 // failures not counted: a password fingerprint already counted
}

// wkey identifies a window: jail id and masked prefix.
type wkey struct {
	addr [16]byte
	bits uint8
	v4   bool
	jail uint16
}

// window is one (jail, key)'s failures: a single one inline, several in a
// block of Counter.older. No pointers, so a million of them cost the GC
// nothing.
type window struct {
	addr       [16]byte
	t          int64  // newest failure, Unix ns; deadline = t + findtime
	user, pass uint32 // the failure's hashes; with flagOlder, its block's offset and length
	heapIdx    int32
	next, prev int32 // the shard's list (slot+1; 0: none)
	jail       uint16
	bits       uint8
	flags      uint8
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

// NewCounter returns a counter of at most maxKeys windows (DefaultMaxKeys
// if maxKeys <= 0). js are the jails whose windows Restore may bring back;
// jails also become known by the hits given to Add.
func NewCounter(maxKeys int, js ...*Jail) *Counter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // never fails (crypto/rand panics rather)
	c := &Counter{
		maxKeys: maxKeys,
		jailID:  make(map[string]uint16),
		index:   make([]int32, 64),
		tags:    make([]uint8, 64),
	}
	c.hashSeed = [2]uint64{binary.LittleEndian.Uint64(seed[0:]), binary.LittleEndian.Uint64(seed[8:])}
	c.userKey = [2]uint64{binary.LittleEndian.Uint64(seed[16:]), binary.LittleEndian.Uint64(seed[24:])}
	for _, j := range js {
		c.register(j)
	}
	return c
}

// HashKey returns the key of the user and fingerprint hashes (Window.Users
// and Passes), to be saved with the windows.
func (c *Counter) HashKey() [16]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var k [16]byte
	binary.LittleEndian.PutUint64(k[0:], c.userKey[0])
	binary.LittleEndian.PutUint64(k[8:], c.userKey[1])
	return k
}

// SetHashKey sets the key of the user and fingerprint hashes: the saved
// one, before Restore and Add, so that restored hashes match new ones.
func (c *Counter) SetHashKey(k [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.userKey = [2]uint64{binary.LittleEndian.Uint64(k[0:]), binary.LittleEndian.Uint64(k[8:])}
}

// SetMaxKeys changes the bound on windows (DefaultMaxKeys if n <= 0),
// evicting at once the windows closest to expiry that are past it.
func (c *Counter) SetMaxKeys(n int) {
	if n <= 0 {
		n = DefaultMaxKeys
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxKeys = n
	for c.live > n {
		c.removeSlot(c.heap[0])
		c.evicted++
	}
}

// register returns j's id, taking j as its name's latest definition.
func (c *Counter) register(j *Jail) uint16 {
	_, ft := params(j)
	id, ok := c.lookup(j)
	if !ok {
		id = uint16(len(c.jails))
		c.jailID[j.Name] = id
		c.jails = append(c.jails, j)
		c.ft = append(c.ft, ft)
		c.shards = append(c.shards, nil) // made with the jail's first window
		c.dirty = append(c.dirty, nil)
		c.perJail = append(c.perJail, 0)
		return id
	}
	c.jails[id] = j
	if c.ft[id] != ft {
		// Deadlines are newest + findtime: a new findtime reorders them.
		c.ft[id] = ft
		c.heapify()
	}
	return id
}

// lookup returns the id of j's name, if it has one. Hits carry the same
// few *Jail again and again: comparing pointers is cheaper than hashing
// the name.
func (c *Counter) lookup(j *Jail) (uint16, bool) {
	for id, known := range c.jails {
		if known == j {
			return uint16(id), true
		}
	}
	id, ok := c.jailID[j.Name]
	return id, ok
}

func makeKey(jail uint16, p netip.Prefix) wkey {
	return wkey{addr: p.Addr().As16(), bits: uint8(p.Bits()), v4: p.Addr().Is4(), jail: jail}
}

func (k wkey) prefix() netip.Prefix {
	a := netip.AddrFrom16(k.addr)
	if k.v4 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(k.bits))
}

func (w *window) key() wkey {
	return wkey{addr: w.addr, bits: w.bits, v4: w.flags&flagV4 != 0, jail: w.jail}
}

func params(j *Jail) (maxRetry int, findTime int64) {
	ft := j.FindTime
	if ft <= 0 {
		ft = DefaultFindTime
	}
	return max(j.MaxRetry, 1), int64(ft)
}

// keepLine copies line, cut to MaxLineBytes, so that a decision never
// pins the reader's buffer.
func keepLine(line string) string {
	if len(line) > MaxLineBytes {
		line = line[:MaxLineBytes]
	}
	return strings.Clone(line)
}

// mum is the 64x64->128 multiply folded to 64 bits, wyhash's mixer.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash keys both the index (low bits) and the shard (high bits).
func (c *Counter) hash(k wkey) uint64 {
	lo := binary.LittleEndian.Uint64(k.addr[0:])
	hi := binary.LittleEndian.Uint64(k.addr[8:])
	x := mum(lo^c.hashSeed[0], hi^c.hashSeed[1]^0xa0761d6478bd642f)
	meta := uint64(k.bits) | uint64(k.jail)<<8
	if k.v4 {
		meta |= 1 << 24
	}
	return mum(x^0xe7037ed1a0b428db, meta^c.hashSeed[0]^0x8ebc6af09c88c6e3)
}

func shardOf(h uint64) uint16 { return uint16(h >> (64 - ShardBits)) }

func (c *Counter) slot(idx int32) *window {
	return &c.slab[idx>>slabBits][idx&(slabSize-1)]
}

func (c *Counter) deadline(w *window) int64 { return w.t + c.ft[w.jail] }

// tagOf is the index tag of hash h: bits that neither the home position
// (the low bits) of any index below 2^40 entries nor shardOf uses, never 0.
func tagOf(h uint64) uint8 { return uint8(h>>40) | 1 }

// find returns k's slot, or -1.
func (c *Counter) find(k wkey, h uint64) int32 {
	mask := uint64(len(c.index) - 1)
	tag := tagOf(h)
	for i := h & mask; ; i = (i + 1) & mask {
		t := c.tags[i]
		if t == 0 {
			return -1
		}
		if t != tag {
			continue
		}
		v := c.index[i]
		if w := c.slot(v - 1); w.addr == k.addr && w.bits == k.bits && w.jail == k.jail && (w.flags&flagV4 != 0) == k.v4 {
			return v - 1
		}
	}
}

func (c *Counter) indexInsert(idx int32, h uint64) {
	if (c.live+1)*4 > len(c.index)*3 {
		c.growIndex()
	}
	c.place(idx+1, h)
}

// place puts entry v (slot+1) of hash h in the first free place of its
// probe run.
func (c *Counter) place(v int32, h uint64) {
	mask := uint64(len(c.index) - 1)
	i := h & mask
	for c.tags[i] != 0 {
		i = (i + 1) & mask
	}
	c.index[i], c.tags[i] = v, tagOf(h)
}

func (c *Counter) growIndex() {
	old := c.index
	c.index = make([]int32, 2*len(old))
	c.tags = make([]uint8, 2*len(old))
	for _, v := range old {
		if v != 0 {
			c.place(v, c.hash(c.slot(v-1).key()))
		}
	}
}

// indexDelete removes slot idx (hash h) from the index, shifting the rest
// of its probe run back so that no tombstone is needed.
func (c *Counter) indexDelete(idx int32, h uint64) {
	mask := uint64(len(c.index) - 1)
	i := h & mask
	for c.index[i] != idx+1 {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		v := c.index[j]
		if v == 0 {
			break
		}
		home := c.hash(c.slot(v-1).key()) & mask
		// v may fill the hole at i if i lies between its home and j.
		if (j-home)&mask >= (j-i)&mask {
			c.index[i], c.tags[i] = v, c.tags[j]
			i = j
		}
	}
	c.index[i], c.tags[i] = 0, 0
}

// loadEvents returns the window's failures, oldest first, in c.evs.
func (c *Counter) loadEvents(idx int32) []event {
	w := c.slot(idx)
	if w.flags&flagOlder != 0 {
		c.evs = append(c.evs[:0], c.older.get(int32(w.user), int(w.pass))...)
	} else {
		c.evs = append(c.evs[:0], event{t: w.t, user: w.user, pass: w.pass})
	}
	return c.evs
}

// storeEvents makes evs (not empty, oldest first) the window's failures.
// One is kept inline; several go to a block of c.older, and then the
// window's user and pass are the block's offset and length instead.
func (c *Counter) storeEvents(idx int32, evs []event) {
	w := c.slot(idx)
	last := evs[len(evs)-1]
	w.t = last.t
	at, n := int32(-1), 0
	if w.flags&flagOlder != 0 {
		at, n = int32(w.user), int(w.pass)
	}
	if len(evs) == 1 {
		if at >= 0 {
			c.older.release(at, n)
			w.flags &^= flagOlder
		}
		w.user, w.pass = last.user, last.pass
		return
	}
	w.user, w.pass = uint32(c.older.set(at, n, evs)), uint32(len(evs))
	w.flags |= flagOlder
}

// Add counts a failure. It returns a ban decision when the hit's window
// holds the jail's MaxRetry failures within FindTime of the newest; the
// window is then cleared. Hits may arrive somewhat out of order (replay of
// several files): each is placed by its own time, and failures more than
// FindTime older than the window's newest are dropped.
//
// A hit stands for h.Failures() failures, at most MaxRetry. A hit with a
// password fingerprint (h.Pass) whose (user, fingerprint) the window
// already holds within FindTime is not counted: the same wrong password
// again is a misconfigured client, not a guess. A success hit (h.Success)
// clears the window's failures of h.User at or before h.Time and never
// decides a ban.
func (c *Counter) Add(h Hit) (Decision, bool) {
	if h.Jail == nil || !h.Addr.IsValid() {
		return Decision{}, false
	}
	addr := h.Addr.Unmap().WithZone("")
	p := h.Jail.Key.Prefix(addr)
	if h.Success {
		c.success(h, p)
		return Decision{}, false
	}
	maxRetry, ft := params(h.Jail)
	t := h.Time.UnixNano()

	c.mu.Lock()
	defer c.mu.Unlock()
	ev := event{t: t, user: c.userHash(h.User), pass: c.passHash(h.User, h.Pass)}
	k := makeKey(c.register(h.Jail), p)
	hk := c.hash(k)
	idx := c.find(k, hk)
	if maxRetry == 1 {
		if idx >= 0 {
			c.removeSlot(idx)
		}
		return Decision{Jail: h.Jail, Key: p, Addr: addr, Time: h.Time, Failures: 1, Lines: []string{keepLine(h.Line)}}, true
	}
	evs := c.evs[:0]
	if idx >= 0 && t <= c.deadline(c.slot(idx)) {
		// (Past the deadline everything in the window is older than
		// findtime: it starts over.)
		evs = c.loadEvents(idx)
	}
	if idx >= 0 && ev.pass != 0 && repeated(evs, ev, ft) {
		c.repeats++
		return Decision{}, false
	}
	for range min(h.Failures(), maxRetry) {
		evs = insertEvent(evs, ev)
	}
	c.evs = evs
	newest := evs[len(evs)-1].t
	evs = evs[oldestKept(evs, newest-ft):]
	if len(evs) >= maxRetry {
		d := Decision{
			Jail:     h.Jail,
			Key:      p,
			Addr:     addr,
			Time:     time.Unix(0, newest).In(h.Time.Location()),
			Failures: len(evs),
			Lines:    []string{keepLine(h.Line)},
		}
		if idx >= 0 {
			c.removeSlot(idx)
		}
		return d, true
	}
	if idx < 0 {
		idx = c.create(k, hk)
	}
	c.storeEvents(idx, evs)
	c.fix(int(c.slot(idx).heapIdx))
	c.markDirty(k.jail, shardOf(hk))
	return Decision{}, false
}

// success clears, in h's window, the failures of h.User at or before
// h.Time. Failures of other users, or with no user logged, stay: one
// account's good password says nothing about guesses at another, and
// an attacker holding one account must not be able to wipe his guesses
// by logging in with it. A success without a user clears nothing.
func (c *Counter) success(h Hit, p netip.Prefix) {
	if h.User == "" {
		return
	}
	t := h.Time.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.lookup(h.Jail)
	if !ok {
		return // no failure counted in this jail yet
	}
	k := makeKey(id, p)
	hk := c.hash(k)
	idx := c.find(k, hk)
	if idx < 0 {
		return
	}
	uh := c.userHash(h.User)
	evs := c.loadEvents(idx)
	kept := evs[:0]
	for _, e := range evs {
		if e.user == uh && e.t <= t {
			continue
		}
		kept = append(kept, e)
	}
	n := len(evs) - len(kept)
	if n == 0 {
		return
	}
	c.cleared += uint64(n)
	if len(kept) == 0 {
		c.removeSlot(idx)
		return
	}
	c.storeEvents(idx, kept)
	c.fix(int(c.slot(idx).heapIdx))
	c.markDirty(id, shardOf(hk))
}

// repeated reports whether evs holds e's (user, fingerprint) within ft of
// e's time.
func repeated(evs []event, e event, ft int64) bool {
	for _, x := range evs {
		if x.pass == e.pass && x.user == e.user && x.t >= e.t-ft && x.t <= e.t+ft {
			return true
		}
	}
	return false
}

// userHash returns the keyed hash of a user name, case folded (Dovecot
// and SASL usually fold case, a client's spelling varies); 0 for none.
func (c *Counter) userHash(user string) uint32 {
	if user == "" {
		return 0
	}
	var buf [64]byte
	return nonZero(sipHash(c.userKey, appendFolded(buf[:0], user)))
}

// passHash returns the keyed hash of (user, fingerprint); 0 without a
// fingerprint.
func (c *Counter) passHash(user, pass string) uint32 {
	if pass == "" {
		return 0
	}
	var buf [128]byte
	b := append(appendFolded(buf[:0], user), 0)
	return nonZero(sipHash(c.userKey, append(b, pass...)))
}

func appendFolded(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// nonZero folds a 64-bit hash to 32 bits, never 0 (which means "none").
func nonZero(h uint64) uint32 {
	if v := uint32(h ^ h>>32); v != 0 {
		return v
	}
	return 1
}

// insertEvent inserts e keeping evs sorted by time (after equal times).
func insertEvent(evs []event, e event) []event {
	i := len(evs)
	for i > 0 && evs[i-1].t > e.t {
		i--
	}
	return slices.Insert(evs, i, e)
}

// oldestKept returns the index of the first event at or after from.
func oldestKept(evs []event, from int64) int {
	i := 0
	for i < len(evs) && evs[i].t < from {
		i++
	}
	return i
}

// create makes an empty window for k (hash h), evicting one first if the
// counter is full; the caller stores its failures and fixes the heap.
func (c *Counter) create(k wkey, h uint64) int32 {
	for c.live >= c.maxKeys && len(c.heap) > 0 {
		c.removeSlot(c.heap[0])
		c.evicted++
	}
	var idx int32
	if n := len(c.free); n > 0 {
		idx = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		idx = c.nslots
		c.nslots++
		if int(idx>>slabBits) == len(c.slab) {
			c.slab = append(c.slab, make([]window, slabSize))
		}
	}
	w := c.slot(idx)
	*w = window{addr: k.addr, bits: k.bits, jail: k.jail, heapIdx: int32(len(c.heap))}
	if k.v4 {
		w.flags = flagV4
	}
	c.heap = append(c.heap, idx)
	c.indexInsert(idx, h)
	c.live++
	c.perJail[k.jail]++
	if c.untracked {
		return idx
	}
	// Link it first in its shard.
	if c.shards[k.jail] == nil {
		c.shards[k.jail] = make([]int32, 1<<ShardBits)
		c.dirty[k.jail] = make([]uint64, (1<<ShardBits)/64)
	}
	head := &c.shards[k.jail][shardOf(h)]
	w.next = *head
	if *head != 0 {
		c.slot(*head - 1).prev = idx + 1
	}
	*head = idx + 1
	return idx
}

func (c *Counter) markDirty(jail, shard uint16) {
	if c.untracked {
		return
	}
	bit := &c.dirty[jail][shard/64]
	if *bit&(1<<(shard%64)) == 0 {
		*bit |= 1 << (shard % 64)
		c.changed = append(c.changed, shardRef{jail: jail, shard: shard})
	}
}

// unlink takes w out of its shard's list and marks the shard changed.
func (c *Counter) unlink(w *window, jail, shard uint16) {
	if w.prev != 0 {
		c.slot(w.prev - 1).next = w.next
	} else {
		c.shards[jail][shard] = w.next
	}
	if w.next != 0 {
		c.slot(w.next - 1).prev = w.prev
	}
	c.markDirty(jail, shard)
}

func (c *Counter) removeSlot(idx int32) {
	w := c.slot(idx)
	k := w.key()
	h := c.hash(k)
	c.indexDelete(idx, h)
	// Out of the heap: move the last element into the hole and restore.
	i := int(w.heapIdx)
	last := len(c.heap) - 1
	if i != last {
		c.heap[i] = c.heap[last]
		c.slot(c.heap[i]).heapIdx = int32(i)
	}
	c.heap = c.heap[:last]
	if i < len(c.heap) {
		c.fix(i)
	}
	// Out of its shard's list.
	if !c.untracked {
		c.unlink(w, k.jail, shardOf(h))
	}
	if w.flags&flagOlder != 0 {
		c.older.release(int32(w.user), int(w.pass))
	}
	*w = window{}
	c.live--
	c.perJail[k.jail]--
	c.free = append(c.free, idx)
}

// heapify rebuilds the heap after deadlines moved (a jail's new findtime).
func (c *Counter) heapify() {
	for i := len(c.heap)/2 - 1; i >= 0; i-- {
		c.down(i)
	}
}

// fix restores the heap after the deadline at heap position i changed.
func (c *Counter) fix(i int) {
	if !c.down(i) {
		c.up(i)
	}
}

func (c *Counter) less(i, j int) bool {
	return c.deadline(c.slot(c.heap[i])) < c.deadline(c.slot(c.heap[j]))
}

func (c *Counter) swap(i, j int) {
	c.heap[i], c.heap[j] = c.heap[j], c.heap[i]
	c.slot(c.heap[i]).heapIdx = int32(i)
	c.slot(c.heap[j]).heapIdx = int32(j)
}

func (c *Counter) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !c.less(i, p) {
			return
		}
		c.swap(i, p)
		i = p
	}
}

func (c *Counter) down(i0 int) bool {
	i, n := i0, len(c.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && c.less(r, l) {
			m = r
		}
		if !c.less(m, i) {
			break
		}
		c.swap(i, m)
		i = m
	}
	return i > i0
}

// Expire drops the windows whose failures are all more than their jail's
// findtime older than now, and returns how many.
func (c *Counter) Expire(now time.Time) int {
	t := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(c.heap) > 0 && c.deadline(c.slot(c.heap[0])) < t {
		c.removeSlot(c.heap[0])
		n++
	}
	c.expired += uint64(n)
	return n
}

func (c *Counter) remove(k wkey) bool {
	idx := c.find(k, c.hash(k))
	if idx >= 0 {
		c.removeSlot(idx)
	}
	return idx >= 0
}

// Forget drops the window of key in jail (after an unban, say). It reports
// whether there was one.
func (c *Counter) Forget(jail string, key netip.Prefix) bool {
	key = normalize(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.jailID[jail]
	if !ok || !key.IsValid() {
		return false
	}
	return c.remove(makeKey(id, key))
}

// ForgetAddr drops, in every jail, the window that counts a, and returns
// how many there were.
func (c *Counter) ForgetAddr(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, j := range c.jails {
		if p := j.Key.Prefix(a); p.IsValid() && c.remove(makeKey(uint16(id), p)) {
			n++
		}
	}
	return n
}

// Len returns the number of live windows.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// WindowsByJail counts the live windows of each jail (jail name -> count),
// without copying them as Snapshot does.
func (c *Counter) WindowsByJail() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for id, n := range c.perJail {
		if n > 0 {
			out[c.jails[id].Name] = n
		}
	}
	return out
}

// Stats returns the counter's figures.
func (c *Counter) Stats() CounterStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CounterStats{Windows: c.live, Evicted: c.evicted, Expired: c.expired, Cleared: c.cleared, Repeats: c.repeats}
}

// appendWindow appends slot idx as a Window, its slices cut from the
// scratch buffers out* (valid until they are reset).
func (c *Counter) appendWindow(dst []Window, idx int32) []Window {
	w := c.slot(idx)
	evs := c.loadEvents(idx)
	t0, u0 := len(c.outTimes), len(c.outU)
	hashed := false
	for _, e := range evs {
		c.outTimes = append(c.outTimes, time.Unix(0, e.t).UTC())
		hashed = hashed || e.user != 0 || e.pass != 0
	}
	sw := Window{Jail: c.jails[w.jail].Name, Key: w.key().prefix(), Times: c.outTimes[t0:len(c.outTimes):len(c.outTimes)]}
	if hashed {
		for _, e := range evs {
			c.outU = append(c.outU, e.user)
			c.outP = append(c.outP, e.pass)
		}
		sw.Users = c.outU[u0:len(c.outU):len(c.outU)]
		sw.Passes = c.outP[u0:len(c.outP):len(c.outP)]
	}
	return append(dst, sw)
}

// Untracked stops the counter keeping track of which windows changed,
// for a caller that never checkpoints (replay): linking each new window
// into its shard costs a cache miss per window. Changes then reports
// nothing; Snapshot still sees every window. Call it before the first Add.
func (c *Counter) Untracked() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.untracked = true
}

// Changes calls fn for each shard whose windows changed since the last
// call to Changes (every shard holding windows if all), with the shard's
// windows now (none if it emptied), and forgets the changes. A checkpoint
// that saves each such shard whole keeps the saved windows equal to the
// counter's. ws and its slices are valid only during the call; fn must
// not call the Counter.
func (c *Counter) Changes(all bool, fn func(jail string, shard int, ws []Window)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eachShard(all, fn)
	for _, d := range c.dirty {
		clear(d)
	}
	c.changed = c.changed[:0]
}

// eachShard calls fn with the windows of every shard holding some (all),
// or of every changed shard.
func (c *Counter) eachShard(all bool, fn func(jail string, shard int, ws []Window)) {
	emit := func(r shardRef) {
		c.out, c.outTimes, c.outU, c.outP = c.out[:0], c.outTimes[:0], c.outU[:0], c.outP[:0]
		for v := c.shards[r.jail][r.shard]; v != 0; v = c.slot(v - 1).next {
			c.out = c.appendWindow(c.out, v-1)
		}
		fn(c.jails[r.jail].Name, int(r.shard), c.out)
	}
	if all {
		for id, heads := range c.shards {
			for s, v := range heads {
				if v != 0 {
					emit(shardRef{jail: uint16(id), shard: uint16(s)})
				}
			}
		}
	} else {
		for _, r := range c.changed {
			emit(r)
		}
	}
	// Give back scratch grown by a big shard.
	if cap(c.out) > 1<<12 {
		c.out, c.outTimes, c.outU, c.outP = nil, nil, nil, nil
	}
}

// Snapshot returns every live window, ordered by jail and key.
func (c *Counter) Snapshot() []Window {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The heap holds every live window, tracked or not.
	out := make([]Window, 0, len(c.heap))
	for _, idx := range c.heap {
		c.out, c.outTimes, c.outU, c.outP = c.out[:0], c.outTimes[:0], c.outU[:0], c.outP[:0]
		w := c.appendWindow(c.out, idx)[0]
		w.Times = slices.Clone(w.Times)
		w.Users = slices.Clone(w.Users)
		w.Passes = slices.Clone(w.Passes)
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Window) int {
		return cmp.Or(strings.Compare(a.Jail, b.Jail), a.Key.Addr().Compare(b.Key.Addr()), cmp.Compare(a.Key.Bits(), b.Key.Bits()))
	})
	return out
}

// rederive recovers a restored failure's user and fingerprint hashes from
// its line (a checkpoint of the old format kept times and lines only),
// when the jail has a use for them.
func (c *Counter) rederive(j *Jail, line string) (user, pass uint32) {
	if line == "" || (len(j.Successregex) == 0 && !capturesPass(j)) {
		return 0, 0
	}
	// The patterns start at a line's message; the old format kept whole
	// lines of whichever layout the source read (the journal's rebuilt as
	// "HOST IDENT[PID]: MESSAGE"). Only hashes come from here, never an
	// address: trying each layout is safe.
	for _, f := range [...]logline.Format{logline.Syslog, logline.Dovecot, logline.Exim} {
		l := logline.Decode(f, line, time.Time{})
		for _, p := range j.Failregex {
			if cp, res := p.match(l.Message); res == matched {
				return c.userHash(cp.user), c.passHash(cp.user, cp.pass)
			}
		}
	}
	return 0, 0
}

func capturesPass(j *Jail) bool {
	for _, p := range j.Failregex {
		if p.pass >= 0 {
			return true
		}
	}
	return false
}

// Restore brings back windows from a checkpoint, merged with what the
// counter holds. Windows of jails the counter does not know (given to
// NewCounter or seen by Add) are skipped: the jail is gone. A window never
// comes back holding MaxRetry failures or more (only its newest
// MaxRetry-1): restoring does not decide bans. Each restored failure
// counts once: a count was already spread over several times by Add. It
// returns how many windows it restored.
func (c *Counter) Restore(ws []Window) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, sw := range ws {
		id, ok := c.jailID[sw.Jail]
		key := normalize(sw.Key)
		if !ok || !key.IsValid() || len(sw.Times) == 0 {
			continue
		}
		maxRetry, ft := params(c.jails[id])
		if maxRetry == 1 {
			continue
		}
		k := makeKey(id, key)
		hk := c.hash(k)
		idx := c.find(k, hk)
		evs := c.evs[:0]
		if idx >= 0 {
			evs = c.loadEvents(idx)
		}
		j := c.jails[id]
		for i, t := range sw.Times {
			e := event{t: t.UnixNano()}
			switch {
			case i < len(sw.Users) && i < len(sw.Passes):
				e.user, e.pass = sw.Users[i], sw.Passes[i]
			case i < len(sw.Lines):
				e.user, e.pass = c.rederive(j, sw.Lines[i])
			}
			evs = insertEvent(evs, e)
		}
		c.evs = evs
		newest := evs[len(evs)-1].t
		evs = evs[max(oldestKept(evs, newest-ft), len(evs)-(maxRetry-1)):]
		if idx < 0 {
			idx = c.create(k, hk)
		}
		c.storeEvents(idx, evs)
		c.fix(int(c.slot(idx).heapIdx))
		c.markDirty(id, shardOf(hk))
		n++
	}
	return n
}
