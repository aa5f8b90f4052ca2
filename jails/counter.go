package jails

import (
	"cmp"
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
}

// CounterStats describes a Counter.
type CounterStats struct {
	Windows int    // live windows
	Evicted uint64 // windows evicted because maxKeys was reached
	Expired uint64 // windows dropped because findtime had passed
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

type event struct {
	t    int64 // Unix ns
	line string
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
func (c *Counter) Add(h Hit) (Decision, bool) {
	if h.Jail == nil || !h.Addr.IsValid() {
		return Decision{}, false
	}
	addr := h.Addr.Unmap().WithZone("")
	p := h.Jail.Key.Prefix(addr)
	maxRetry, ft := params(h.Jail)
	t := h.Time.UnixNano()
	line := keepLine(h.Line)

	c.mu.Lock()
	defer c.mu.Unlock()
	k := makeKey(c.register(h.Jail), p)
	if maxRetry == 1 {
		c.remove(k)
		return Decision{Jail: h.Jail, Key: p, Addr: addr, Time: h.Time, Failures: 1, Lines: []string{line}}, true
	}
	idx, ok := c.index[k]
	if ok && t > c.slots[idx].deadline {
		// Everything in the window is older than findtime: start over.
		w := &c.slots[idx]
		clear(w.ev)
		w.ev = w.ev[:0]
	}
	if !ok {
		idx = c.create(k)
	}
	w := &c.slots[idx]
	w.ev = insertEvent(w.ev, event{t: t, line: line})
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
			Lines:    make([]string, len(w.ev)),
		}
		for i, e := range w.ev {
			d.Lines[i] = e.line
		}
		c.removeSlot(idx)
		return d, true
	}
	w.deadline = newest + ft
	c.fix(int(w.heapIdx))
	return Decision{}, false
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

// Stats returns the counter's figures.
func (c *Counter) Stats() CounterStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CounterStats{Windows: len(c.index), Evicted: c.evicted, Expired: c.expired}
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
		for i, t := range sw.Times {
			var line string
			if i < len(sw.Lines) {
				line = keepLine(sw.Lines[i])
			}
			w.ev = insertEvent(w.ev, event{t: t.UnixNano(), line: line})
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
