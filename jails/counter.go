package jails

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
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

// Counter counts failures in sliding findtime windows per (jail, key) and
// decides bans. It is safe for concurrent use.
//
// Memory is bounded: a window holds at most MaxRetry-1 failures (the
// MaxRetry-th decides a ban and clears it); a window whose failures are
// all older than findtime is dropped when next touched or by Expire; and
// beyond maxKeys windows the one that would expire first is evicted.
//
// The windows are a windowTable keyed by prefix (wkey): 48 bytes each,
// without pointers, about 63 bytes per window with one failure all told
// (BenchmarkCounterMemory), and O(log n) per failure. The Counter says
// what the failures mean: findtime, maxretry, repeated fingerprints,
// successes.
type Counter struct {
	mu     sync.Mutex
	jailID map[string]uint16
	jails  []*Jail // by id: the latest definition seen

	// The windows. Embedded: the policy below calls find, create, set
	// and removeSlot as its own.
	windowTable[wkey]

	// userKey keys the user and fingerprint hashes, so that nobody can
	// pick a user name whose hash collides with another one's and have a
	// login clear failures that are not its own. The daemon keeps it in
	// state (HashKey, SetHashKey) so that saved hashes stay meaningful.
	userKey [2]uint64

	expired, cleared, repeats uint64

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

// wkey is a window's masked prefix. Bytes only, 17 of them, so that a
// window holding it is 48 bytes.
type wkey struct {
	addr [16]byte // As16: an IPv4 prefix 4-in-6 mapped
	bits uint8    // the prefix length, plus keyV4 for IPv4
}

const keyV4 = 129 // above any IPv6 prefix length

// NewCounter returns a counter of at most maxKeys windows (DefaultMaxKeys
// if maxKeys <= 0). js are the jails whose windows Restore may bring back;
// jails also become known by the hits given to Add.
func NewCounter(maxKeys int, js ...*Jail) *Counter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // never fails (crypto/rand panics rather)
	c := &Counter{jailID: make(map[string]uint16)}
	c.init(maxKeys, [2]uint64{binary.LittleEndian.Uint64(seed[0:]), binary.LittleEndian.Uint64(seed[8:])})
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
	c.setMaxKeys(n)
}

// register returns j's id, taking j as its name's latest definition.
func (c *Counter) register(j *Jail) uint16 {
	_, ft := params(j)
	id, ok := c.lookup(j)
	if !ok {
		id = uint16(len(c.jails))
		c.jailID[j.Name] = id
		c.jails = append(c.jails, j)
		c.addJail(ft)
		return id
	}
	c.jails[id] = j
	c.setSpan(id, ft)
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

func makeKey(p netip.Prefix) wkey {
	k := wkey{addr: p.Addr().As16(), bits: uint8(p.Bits())}
	if p.Addr().Is4() {
		k.bits += keyV4
	}
	return k
}

func (k wkey) prefix() netip.Prefix {
	a, bits := netip.AddrFrom16(k.addr), int(k.bits)
	if bits >= keyV4 {
		a, bits = a.Unmap(), bits-keyV4
	}
	return netip.PrefixFrom(a, bits)
}

// hash keys both the index (low bits) and the shard (high bits).
func (k wkey) hash(seed *[2]uint64, jail uint16) uint64 {
	lo := binary.LittleEndian.Uint64(k.addr[0:])
	hi := binary.LittleEndian.Uint64(k.addr[8:])
	x := mum(lo^seed[0], hi^seed[1]^0xa0761d6478bd642f)
	bits := uint64(k.bits)
	if bits >= keyV4 {
		bits += 1<<24 - keyV4 // IPv4: the length and a flag
	}
	meta := bits | uint64(jail)<<8
	return mum(x^0xe7037ed1a0b428db, meta^seed[0]^0x8ebc6af09c88c6e3)
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
	id := c.register(h.Jail)
	k := makeKey(p)
	hk := k.hash(&c.seed, id)
	idx := c.find(id, k, hk)
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
		idx = c.create(id, k, hk)
	}
	c.set(idx, hk, evs)
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
	k := makeKey(p)
	hk := k.hash(&c.seed, id)
	idx := c.find(id, k, hk)
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
	c.set(idx, hk, kept)
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

// Expire drops the windows whose failures are all more than their jail's
// findtime older than now, and returns how many.
func (c *Counter) Expire(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.expire(now.UnixNano())
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
	return c.remove(id, makeKey(key))
}

// ForgetAddr drops, in every jail, the window that counts a, and returns
// how many there were.
func (c *Counter) ForgetAddr(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, j := range c.jails {
		if p := j.Key.Prefix(a); p.IsValid() && c.remove(uint16(id), makeKey(p)) {
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
	sw := Window{Jail: c.jails[w.jail].Name, Key: w.key.prefix(), Times: c.outTimes[t0:len(c.outTimes):len(c.outTimes)]}
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
	c.eachShard(all, func(r shardRef, first int32) {
		c.out, c.outTimes, c.outU, c.outP = c.out[:0], c.outTimes[:0], c.outU[:0], c.outP[:0]
		for v := first; v != 0; v = c.slot(v - 1).next {
			c.out = c.appendWindow(c.out, v-1)
		}
		fn(c.jails[r.jail].Name, int(r.shard), c.out)
	})
	// Give back scratch grown by a big shard.
	if cap(c.out) > 1<<12 {
		c.out, c.outTimes, c.outU, c.outP = nil, nil, nil, nil
	}
	c.forgetChanges()
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
		k := makeKey(key)
		hk := k.hash(&c.seed, id)
		idx := c.find(id, k, hk)
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
			idx = c.create(id, k, hk)
		}
		c.set(idx, hk, evs)
		n++
	}
	return n
}
