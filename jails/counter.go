package jails

import (
	"cmp"
	"hash/maphash"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultMaxKeys bounds a Counter made with maxKeys <= 0.
	DefaultMaxKeys = 1 << 18
	// DefaultFindTime stands in for a jail's FindTime <= 0.
	DefaultFindTime = 10 * time.Minute
	// MaxLineBytes bounds each line a window keeps for Decision.Lines.
	MaxLineBytes = 512
)

// Counter counts failures in sliding findtime windows per (jail, key) and
// decides bans. It is safe for concurrent use.
//
// Memory is bounded: a window holds at most MaxRetry-1 failures (the
// MaxRetry-th decides a ban and clears it), each line at most MaxLineBytes;
// a window whose failures are all older than findtime is dropped when next
// touched or by Expire; and beyond maxKeys windows the one that would
// expire first (for jails of equal findtime: the oldest last failure) is
// evicted. The windows live in one slice indexed by a map of small keys,
// with a heap of deadlines, so a flood of distinct addresses costs a fixed
// amount per address and O(log n) per failure.
type Counter struct {
	mu      sync.Mutex
	maxKeys int
	jailID  map[string]uint16
	jails   []*Jail // by id: the latest definition seen
	index   map[wkey]int32
	slots   []window
	free    []int32
	heap    []int32 // slot indexes, min-heap on deadline
	evicted uint64
	expired uint64
	cleared uint64
	repeats uint64
	// seed keys the user and fingerprint hashes. It is random per Counter,
	// so that nobody can pick a user name whose hash collides with another
	// one's and have a login clear failures that are not its own.
	seed maphash.Seed
}

// CounterStats describes a Counter.
type CounterStats struct {
	Windows int    // live windows
	Evicted uint64 // windows evicted because maxKeys was reached
	Expired uint64 // windows dropped because findtime had passed
	Cleared uint64 // failures a successful login cleared
	Repeats uint64 // failures not counted: a password fingerprint already counted
}

// wkey identifies a window compactly: jail id and masked prefix.
type wkey struct {
	addr [16]byte
	bits uint8
	v4   bool
	jail uint16
}

type window struct {
	key      wkey
	heapIdx  int32
	deadline int64   // newest failure + findtime, Unix ns: useless after it
	ev       []event // oldest first
}

// event is one failure. user and pass are keyed hashes (0: none logged)
// rather than strings: 8 bytes whatever the name, and nothing the
// attacker sends is kept but the line.
type event struct {
	t    int64 // Unix ns
	line string
	user uint32 // hash of the lower-cased user name
	pass uint32 // hash of (user, password fingerprint)
}

// NewCounter returns a counter of at most maxKeys windows (DefaultMaxKeys
// if maxKeys <= 0). js are the jails whose windows Restore may bring back;
// jails also become known by the hits given to Add.
func NewCounter(maxKeys int, js ...*Jail) *Counter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	c := &Counter{
		maxKeys: maxKeys,
		jailID:  make(map[string]uint16),
		index:   make(map[wkey]int32),
		seed:    maphash.MakeSeed(),
	}
	for _, j := range js {
		c.register(j)
	}
	return c
}

// register returns j's id, taking j as its name's latest definition.
func (c *Counter) register(j *Jail) uint16 {
	id, ok := c.jailID[j.Name]
	if !ok {
		id = uint16(len(c.jails))
		c.jailID[j.Name] = id
		c.jails = append(c.jails, j)
		return id
	}
	c.jails[id] = j
	return id
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

func params(j *Jail) (maxRetry int, findTime int64) {
	ft := j.FindTime
	if ft <= 0 {
		ft = DefaultFindTime
	}
	return max(j.MaxRetry, 1), int64(ft)
}

// keepLine copies line, cut to MaxLineBytes, so that a window never pins
// the reader's buffer.
func keepLine(line string) string {
	if len(line) > MaxLineBytes {
		line = line[:MaxLineBytes]
	}
	return strings.Clone(line)
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
	if maxRetry == 1 {
		c.remove(k)
		return Decision{Jail: h.Jail, Key: p, Addr: addr, Time: h.Time, Failures: 1, Lines: []string{keepLine(h.Line)}}, true
	}
	idx, ok := c.index[k]
	if ok && t > c.slots[idx].deadline {
		// Everything in the window is older than findtime: start over.
		w := &c.slots[idx]
		clear(w.ev)
		w.ev = w.ev[:0]
	}
	if ok && ev.pass != 0 && repeated(c.slots[idx].ev, ev, ft) {
		c.repeats++
		return Decision{}, false
	}
	if !ok {
		idx = c.create(k)
	}
	w := &c.slots[idx]
	ev.line = keepLine(h.Line)
	// The copies share the line: a count costs an event each, no more.
	for range min(h.Failures(), maxRetry) {
		w.ev = insertEvent(w.ev, ev)
	}
	newest := w.ev[len(w.ev)-1].t
	if cut := oldestKept(w.ev, newest-ft); cut > 0 {
		clear(w.ev[:cut])
		w.ev = append(w.ev[:0], w.ev[cut:]...)
	}
	if len(w.ev) >= maxRetry {
		d := Decision{
			Jail:     h.Jail,
			Key:      p,
			Addr:     addr,
			Time:     time.Unix(0, newest).In(h.Time.Location()),
			Failures: len(w.ev),
			Lines:    decisionLines(w.ev),
		}
		c.removeSlot(idx)
		return d, true
	}
	w.deadline = newest + ft
	c.fix(int(w.heapIdx))
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
	id, ok := c.jailID[h.Jail.Name]
	if !ok {
		return // no failure counted in this jail yet
	}
	idx, ok := c.index[makeKey(id, p)]
	if !ok {
		return
	}
	uh := c.userHash(h.User)
	w := &c.slots[idx]
	kept := w.ev[:0]
	for _, e := range w.ev {
		if e.user == uh && e.t <= t {
			continue
		}
		kept = append(kept, e)
	}
	n := len(w.ev) - len(kept)
	if n == 0 {
		return
	}
	clear(w.ev[len(kept):])
	w.ev = kept
	c.cleared += uint64(n)
	if len(w.ev) == 0 {
		c.removeSlot(idx)
		return
	}
	_, ft := params(c.jails[id])
	w.deadline = w.ev[len(w.ev)-1].t + ft
	c.fix(int(w.heapIdx))
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

// decisionLines returns the window's lines, a line counted several times
// (a session of many attempts) once.
func decisionLines(evs []event) []string {
	lines := make([]string, 0, len(evs))
	for i, e := range evs {
		if i > 0 && e.t == evs[i-1].t && e.line == evs[i-1].line {
			continue
		}
		lines = append(lines, e.line)
	}
	return lines
}

// userHash returns the keyed hash of a user name, case folded (Dovecot
// and SASL usually fold case, a client's spelling varies); 0 for none.
func (c *Counter) userHash(user string) uint32 {
	if user == "" {
		return 0
	}
	var mh maphash.Hash
	mh.SetSeed(c.seed)
	writeFolded(&mh, user)
	return nonZero(mh.Sum64())
}

// passHash returns the keyed hash of (user, fingerprint); 0 without a
// fingerprint.
func (c *Counter) passHash(user, pass string) uint32 {
	if pass == "" {
		return 0
	}
	var mh maphash.Hash
	mh.SetSeed(c.seed)
	writeFolded(&mh, user)
	mh.WriteByte(0)
	mh.WriteString(pass)
	return nonZero(mh.Sum64())
}

func writeFolded(mh *maphash.Hash, s string) {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		mh.WriteByte(b)
	}
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

// create makes a window for k, evicting one first if the counter is full.
func (c *Counter) create(k wkey) int32 {
	for len(c.index) >= c.maxKeys && len(c.heap) > 0 {
		c.removeSlot(c.heap[0])
		c.evicted++
	}
	var idx int32
	if n := len(c.free); n > 0 {
		idx = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		idx = int32(len(c.slots))
		c.slots = append(c.slots, window{})
	}
	c.slots[idx] = window{key: k, heapIdx: int32(len(c.heap)), ev: c.slots[idx].ev[:0]}
	c.heap = append(c.heap, idx)
	c.index[k] = idx
	return idx
}

func (c *Counter) remove(k wkey) bool {
	idx, ok := c.index[k]
	if ok {
		c.removeSlot(idx)
	}
	return ok
}

func (c *Counter) removeSlot(idx int32) {
	w := &c.slots[idx]
	delete(c.index, w.key)
	// Out of the heap: move the last element into the hole and restore.
	i := int(w.heapIdx)
	last := len(c.heap) - 1
	if i != last {
		c.heap[i] = c.heap[last]
		c.slots[c.heap[i]].heapIdx = int32(i)
	}
	c.heap = c.heap[:last]
	if i < len(c.heap) {
		c.fix(i)
	}
	// Drop the lines for the GC, and the backing array too unless it is
	// small enough to be worth reusing.
	clear(w.ev)
	if cap(w.ev) > 4 {
		w.ev = nil
	}
	*w = window{ev: w.ev[:0]}
	c.free = append(c.free, idx)
}

// fix restores the heap after the deadline at heap position i changed.
func (c *Counter) fix(i int) {
	if !c.down(i) {
		c.up(i)
	}
}

func (c *Counter) less(i, j int) bool {
	return c.slots[c.heap[i]].deadline < c.slots[c.heap[j]].deadline
}

func (c *Counter) swap(i, j int) {
	c.heap[i], c.heap[j] = c.heap[j], c.heap[i]
	c.slots[c.heap[i]].heapIdx = int32(i)
	c.slots[c.heap[j]].heapIdx = int32(j)
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
	for len(c.heap) > 0 && c.slots[c.heap[0]].deadline < t {
		c.removeSlot(c.heap[0])
		n++
	}
	c.expired += uint64(n)
	return n
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
	return len(c.index)
}

// WindowsByJail counts the live windows of each jail (jail name -> count),
// without copying them as Snapshot does.
func (c *Counter) WindowsByJail() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k := range c.index {
		out[c.jails[k.jail].Name]++
	}
	return out
}

// Stats returns the counter's figures.
func (c *Counter) Stats() CounterStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CounterStats{Windows: len(c.index), Evicted: c.evicted, Expired: c.expired, Cleared: c.cleared, Repeats: c.repeats}
}

// Snapshot returns every live window, ordered by jail and key, for a
// checkpoint. Times are UTC.
func (c *Counter) Snapshot() []Window {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Window, 0, len(c.index))
	for k, idx := range c.index {
		w := &c.slots[idx]
		sw := Window{
			Jail:  c.jails[k.jail].Name,
			Key:   k.prefix(),
			Times: make([]time.Time, len(w.ev)),
			Lines: make([]string, len(w.ev)),
		}
		for i, e := range w.ev {
			sw.Times[i] = time.Unix(0, e.t).UTC()
			sw.Lines[i] = e.line
		}
		out = append(out, sw)
	}
	slices.SortFunc(out, func(a, b Window) int {
		return cmp.Or(strings.Compare(a.Jail, b.Jail), a.Key.Addr().Compare(b.Key.Addr()), cmp.Compare(a.Key.Bits(), b.Key.Bits()))
	})
	return out
}

// rederive recovers a restored failure's user and fingerprint hashes from
// its line (a checkpoint keeps times and lines only), when the jail has a
// use for them. Each restored failure counts once: a count was already
// spread over several times by Add.
func (c *Counter) rederive(j *Jail, line string) (user, pass uint32) {
	if line == "" || (len(j.Successregex) == 0 && !capturesPass(j)) {
		return 0, 0
	}
	for _, p := range j.Failregex {
		if cp, res := p.match(line); res == matched {
			return c.userHash(cp.user), c.passHash(cp.user, cp.pass)
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
// MaxRetry-1): restoring does not decide bans. It returns how many windows
// it restored.
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
		idx, ok := c.index[k]
		if !ok {
			idx = c.create(k)
		}
		w := &c.slots[idx]
		j := c.jails[id]
		for i, t := range sw.Times {
			e := event{t: t.UnixNano()}
			if i < len(sw.Lines) {
				e.line = keepLine(sw.Lines[i])
				e.user, e.pass = c.rederive(j, e.line)
			}
			w.ev = insertEvent(w.ev, e)
		}
		newest := w.ev[len(w.ev)-1].t
		cut := max(oldestKept(w.ev, newest-ft), len(w.ev)-(maxRetry-1))
		if cut > 0 {
			clear(w.ev[:cut])
			w.ev = append(w.ev[:0], w.ev[cut:]...)
		}
		w.deadline = newest + ft
		c.fix(int(w.heapIdx))
		n++
	}
	return n
}
