package jails

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2024, 11, 24, 16, 0, 0, 0, time.UTC)

func hitAt(j *Jail, addr string, offset time.Duration) Hit {
	return Hit{Jail: j, Addr: netip.MustParseAddr(addr), Time: t0.Add(offset), Line: fmt.Sprintf("fail %s at %v", addr, offset)}
}

func counterJail(name string, maxRetry int, key Key) *Jail {
	return &Jail{Name: name, MaxRetry: maxRetry, FindTime: 10 * time.Minute, BanTime: time.Hour, Key: key}
}

func TestCounterWindows(t *testing.T) {
	j := counterJail("j", 3, Key{})
	j24 := counterJail("j24", 3, Key{V4Bits: 24, V6Bits: 64})
	type step struct {
		jail   *Jail
		addr   string
		at     time.Duration
		ban    bool
		key    string          // when ban
		lines  []time.Duration // when ban: offsets of the lines, oldest first
		banned time.Duration   // when ban: Decision.Time offset
	}
	m := time.Minute
	tests := []struct {
		name  string
		steps []step
	}{
		{"three within findtime", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.1", 1 * m, false, "", nil, 0},
			{j, "192.0.2.1", 2 * m, true, "192.0.2.1/32", []time.Duration{0, m, 2 * m}, 2 * m},
		}},
		{"window cleared after a ban", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.1", 1 * m, false, "", nil, 0},
			{j, "192.0.2.1", 2 * m, true, "192.0.2.1/32", []time.Duration{0, m, 2 * m}, 2 * m},
			{j, "192.0.2.1", 3 * m, false, "", nil, 0},
			{j, "192.0.2.1", 4 * m, false, "", nil, 0},
		}},
		{"sliding: the oldest falls out", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.1", 6 * m, false, "", nil, 0},
			{j, "192.0.2.1", 11 * m, false, "", nil, 0},
			{j, "192.0.2.1", 12 * m, true, "192.0.2.1/32", []time.Duration{6 * m, 11 * m, 12 * m}, 12 * m},
		}},
		{"findtime is inclusive", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.1", 5 * m, false, "", nil, 0},
			{j, "192.0.2.1", 10 * m, true, "192.0.2.1/32", []time.Duration{0, 5 * m, 10 * m}, 10 * m},
		}},
		{"stale window starts over", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.1", 1 * m, false, "", nil, 0},
			{j, "192.0.2.1", 30 * m, false, "", nil, 0},
			{j, "192.0.2.1", 31 * m, false, "", nil, 0},
			{j, "192.0.2.1", 32 * m, true, "192.0.2.1/32", []time.Duration{30 * m, 31 * m, 32 * m}, 32 * m},
		}},
		{"out of order, sorted in decision", []step{
			{j, "192.0.2.1", 5 * m, false, "", nil, 0},
			{j, "192.0.2.1", 1 * m, false, "", nil, 0},
			{j, "192.0.2.1", 3 * m, true, "192.0.2.1/32", []time.Duration{m, 3 * m, 5 * m}, 5 * m},
		}},
		{"out of order beyond findtime is dropped", []step{
			{j, "192.0.2.1", 20 * m, false, "", nil, 0},
			{j, "192.0.2.1", 21 * m, false, "", nil, 0},
			{j, "192.0.2.1", 5 * m, false, "", nil, 0},
			{j, "192.0.2.1", 22 * m, true, "192.0.2.1/32", []time.Duration{20 * m, 21 * m, 22 * m}, 22 * m},
		}},
		{"addresses counted apart", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.2", 0, false, "", nil, 0},
			{j, "2001:db8::1", 0, false, "", nil, 0},
			{j, "192.0.2.1", m, false, "", nil, 0},
			{j, "192.0.2.2", m, false, "", nil, 0},
		}},
		{"mapped and plain are one address", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j, "::ffff:192.0.2.1", m, false, "", nil, 0},
			{j, "192.0.2.1", 2 * m, true, "192.0.2.1/32", []time.Duration{0, m, 2 * m}, 2 * m},
		}},
		{"jails counted apart", []step{
			{j, "192.0.2.1", 0, false, "", nil, 0},
			{j24, "192.0.2.1", 0, false, "", nil, 0},
			{j, "192.0.2.1", m, false, "", nil, 0},
			{j24, "192.0.2.1", m, false, "", nil, 0},
		}},
		{"ipv4 /24 key", []step{
			{j24, "192.0.2.1", 0, false, "", nil, 0},
			{j24, "192.0.2.2", m, false, "", nil, 0},
			{j24, "192.0.2.3", 2 * m, true, "192.0.2.0/24", []time.Duration{0, m, 2 * m}, 2 * m},
		}},
		{"ipv6 /64 key", []step{
			{j24, "2001:db8:0:1::a", 0, false, "", nil, 0},
			{j24, "2001:db8:0:1::b", m, false, "", nil, 0},
			{j24, "2001:db8:0:2::b", m, false, "", nil, 0},
			{j24, "2001:db8:0:1:ffff::c", 2 * m, true, "2001:db8:0:1::/64", []time.Duration{0, m, 2 * m}, 2 * m},
		}},
		{"maxretry 1 bans at once", []step{
			{counterJail("one", 1, Key{}), "192.0.2.1", 0, true, "192.0.2.1/32", []time.Duration{0}, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCounter(100)
			for i, s := range tt.steps {
				h := hitAt(s.jail, s.addr, s.at)
				d, ok := c.Add(h)
				if ok != s.ban {
					t.Fatalf("step %d: ban %v, want %v (decision %+v)", i, ok, s.ban, d)
				}
				if !ok {
					continue
				}
				if d.Key != netip.MustParsePrefix(s.key) || d.Jail != s.jail || d.Addr != h.Addr.Unmap() {
					t.Errorf("step %d: decision key %s jail %s addr %s, want %s %s %s", i, d.Key, d.Jail.Name, d.Addr, s.key, s.jail.Name, h.Addr)
				}
				if !d.Time.Equal(t0.Add(s.banned)) || d.Failures != len(s.lines) {
					t.Errorf("step %d: decision time %v failures %d, want %v %d", i, d.Time, d.Failures, t0.Add(s.banned), len(s.lines))
				}
				// The decision carries the tipping hit's line, nothing else.
				if len(d.Lines) != 1 || d.Lines[0] != h.Line {
					t.Errorf("step %d: lines %q, want [%q]", i, d.Lines, h.Line)
				}
				if _, again := c.Add(Hit{Jail: s.jail, Addr: h.Addr, Time: h.Time}); again && s.jail.MaxRetry > 1 {
					t.Errorf("step %d: window not cleared after a ban", i)
				}
				c.Forget(s.jail.Name, d.Key)
			}
		})
	}
}

func TestCounterRejectsBadHits(t *testing.T) {
	c := NewCounter(10)
	j := counterJail("j", 1, Key{})
	if _, ok := c.Add(Hit{Jail: j, Time: t0}); ok {
		t.Error("invalid address decided a ban")
	}
	if _, ok := c.Add(Hit{Addr: netip.MustParseAddr("192.0.2.1"), Time: t0}); ok {
		t.Error("nil jail decided a ban")
	}
	if c.Len() != 0 {
		t.Errorf("Len %d, want 0", c.Len())
	}
}

func TestCounterEvictsOldestLastFailure(t *testing.T) {
	j := counterJail("j", 5, Key{})
	c := NewCounter(3)
	c.Add(hitAt(j, "192.0.2.1", 0))
	c.Add(hitAt(j, "192.0.2.2", time.Minute))
	c.Add(hitAt(j, "192.0.2.3", 2*time.Minute))
	c.Add(hitAt(j, "192.0.2.1", 3*time.Minute)) // .1 is now the newest: .2 is the oldest
	c.Add(hitAt(j, "192.0.2.4", 4*time.Minute))
	if c.Len() != 3 {
		t.Fatalf("Len %d, want 3", c.Len())
	}
	var keys []string
	for _, w := range c.Snapshot() {
		keys = append(keys, w.Key.String())
	}
	if want := []string{"192.0.2.1/32", "192.0.2.3/32", "192.0.2.4/32"}; !slices.Equal(keys, want) {
		t.Errorf("windows %v, want %v", keys, want)
	}
	if st := c.Stats(); st.Evicted != 1 || st.Windows != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestCounterExpire(t *testing.T) {
	short := &Jail{Name: "short", MaxRetry: 5, FindTime: time.Minute}
	long := &Jail{Name: "long", MaxRetry: 5, FindTime: time.Hour}
	c := NewCounter(0)
	c.Add(hitAt(short, "192.0.2.1", 0))
	c.Add(hitAt(short, "192.0.2.2", 5*time.Minute))
	c.Add(hitAt(long, "192.0.2.1", 0))
	tests := []struct {
		now       time.Duration
		expired   int
		remaining int
	}{
		{time.Minute, 0, 3},        // exactly findtime: still useful
		{time.Minute + 1, 1, 2},    // short .1 gone
		{6*time.Minute + 1, 1, 1},  // short .2 gone
		{59 * time.Minute, 0, 1},   // long .1 still within its hour
		{60*time.Minute + 1, 1, 0}, // and gone
		{100 * time.Hour, 0, 0},    // nothing left
	}
	for _, tt := range tests {
		if n := c.Expire(t0.Add(tt.now)); n != tt.expired || c.Len() != tt.remaining {
			t.Errorf("Expire(+%v) = %d leaving %d, want %d leaving %d", tt.now, n, c.Len(), tt.expired, tt.remaining)
		}
	}
	if st := c.Stats(); st.Expired != 3 {
		t.Errorf("stats %+v, want 3 expired", st)
	}
}

func TestCounterForget(t *testing.T) {
	a := counterJail("a", 5, Key{})
	b := counterJail("b", 5, Key{V4Bits: 24})
	c := NewCounter(0)
	for _, j := range []*Jail{a, b} {
		c.Add(hitAt(j, "192.0.2.1", 0))
		c.Add(hitAt(j, "192.0.2.200", 0))
	}
	if c.Len() != 3 { // b: one /24 window
		t.Fatalf("Len %d, want 3", c.Len())
	}
	if c.Forget("a", netip.MustParsePrefix("192.0.2.9/32")) || c.Forget("nope", netip.MustParsePrefix("192.0.2.1/32")) {
		t.Error("Forget of an absent window reported true")
	}
	if !c.Forget("a", netip.MustParsePrefix("192.0.2.200/32")) {
		t.Error("Forget a/192.0.2.200 reported false")
	}
	if n := c.ForgetAddr(netip.MustParseAddr("192.0.2.1")); n != 2 || c.Len() != 0 {
		t.Errorf("ForgetAddr dropped %d leaving %d, want 2 leaving 0", n, c.Len())
	}
}

func TestCounterSnapshotRestore(t *testing.T) {
	j := counterJail("j", 3, Key{V4Bits: 24})
	c := NewCounter(0)
	c.Add(hitAt(j, "192.0.2.1", 0))
	c.Add(hitAt(j, "192.0.2.2", time.Minute))
	c.Add(hitAt(j, "2001:db8::1", 0))
	snap := c.Snapshot()
	if len(snap) != 2 || snap[0].Key != netip.MustParsePrefix("192.0.2.0/24") || len(snap[0].Times) != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	gone := Window{Jail: "removed-jail", Key: netip.MustParsePrefix("192.0.2.1/32"), Times: []time.Time{t0}}
	full := Window{Jail: "j", Key: netip.MustParsePrefix("198.51.100.0/24"), Times: []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}}

	d := NewCounter(0, j)
	if n := d.Restore(append(snap, gone, full)); n != 3 {
		t.Fatalf("restored %d, want 3 (unknown jail skipped)", n)
	}
	got := d.Snapshot()
	if len(got) != 3 || len(got[1].Times) != 2 || !got[1].Times[0].Equal(t0.Add(time.Second)) {
		t.Errorf("full window should come back with its newest 2 failures: %+v", got)
	}
	if !slices.EqualFunc(got[0].Times, snap[0].Times, time.Time.Equal) {
		t.Errorf("restored %+v, want %+v", got[0], snap[0])
	}
	// The restored window keeps counting.
	dec, ok := d.Add(hitAt(j, "192.0.2.3", 2*time.Minute))
	if !ok || dec.Failures != 3 || dec.Key != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("after restore: decision %+v %v, want a ban of 192.0.2.0/24 with 3 failures", dec, ok)
	}
}

func TestCounterLinesBoundedAndCopied(t *testing.T) {
	j := counterJail("j", 2, Key{})
	c := NewCounter(0)
	long := strings.Repeat("x", 3*MaxLineBytes)
	c.Add(Hit{Jail: j, Addr: netip.MustParseAddr("192.0.2.1"), Time: t0, Line: long})
	d, ok := c.Add(Hit{Jail: j, Addr: netip.MustParseAddr("192.0.2.1"), Time: t0, Line: "short"})
	if !ok || len(d.Lines) != 1 || d.Lines[0] != "short" {
		t.Fatalf("decision %v lines %d/%v, want the tipping line only", ok, len(d.Lines), d.Lines)
	}
	c.Add(Hit{Jail: j, Addr: netip.MustParseAddr("192.0.2.1"), Time: t0, Line: "short"})
	d, ok = c.Add(Hit{Jail: j, Addr: netip.MustParseAddr("192.0.2.1"), Time: t0, Line: long})
	if !ok || len(d.Lines) != 1 || len(d.Lines[0]) != MaxLineBytes {
		t.Fatalf("decision %v lines %d, want one of %d bytes", ok, len(d.Lines), MaxLineBytes)
	}
}

// TestCounterSynctest drives the counter the way the daemon does, with
// hits stamped by the (fake) clock, and a sweeper.
func TestCounterSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := counterJail("j", 3, Key{})
		c := NewCounter(0)
		a := netip.MustParseAddr("203.0.113.7")
		add := func() bool {
			_, ok := c.Add(Hit{Jail: j, Addr: a, Time: time.Now()})
			return ok
		}
		add()
		time.Sleep(9 * time.Minute)
		add()
		time.Sleep(2 * time.Minute) // the first failure is now 11 minutes old
		if add() {
			t.Fatal("banned with a failure outside findtime")
		}
		time.Sleep(11 * time.Minute)
		if n := c.Expire(time.Now()); n != 1 || c.Len() != 0 {
			t.Fatalf("Expire = %d, Len %d; want the stale window gone", n, c.Len())
		}
		add()
		time.Sleep(time.Second)
		add()
		time.Sleep(time.Second)
		if !add() {
			t.Fatal("no ban after 3 failures in 2 seconds")
		}
	})
}

// TestCounterMatchesModel compares the counter with a naive model on
// random hits, out of order included, over a few jails and addresses.
func TestCounterMatchesModel(t *testing.T) {
	js := []*Jail{
		counterJail("a", 3, Key{}),
		counterJail("b", 2, Key{V4Bits: 24}),
		{Name: "c", MaxRetry: 4, FindTime: time.Minute, Key: Key{}},
	}
	type ev struct {
		t    time.Time
		line string
	}
	type mkey struct {
		jail string
		key  netip.Prefix
	}
	r := rand.New(rand.NewPCG(3, 4))
	c := NewCounter(0)
	model := map[mkey][]ev{}
	now := t0
	for i := range 20000 {
		j := js[r.IntN(len(js))]
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(8))})
		if r.IntN(2) == 0 {
			addr = netip.AddrFrom4([4]byte{198, 51, byte(r.IntN(4)), byte(r.IntN(4))})
		}
		now = now.Add(time.Duration(r.IntN(40)) * time.Second)
		at := now.Add(-time.Duration(r.IntN(120)) * time.Second) // up to 2 minutes late
		line := fmt.Sprint(i)
		got, gotOK := c.Add(Hit{Jail: j, Addr: addr, Time: at, Line: line})

		k := mkey{j.Name, j.Key.Prefix(addr)}
		w := model[k]
		if len(w) > 0 && at.Sub(w[len(w)-1].t) > j.FindTime {
			w = nil
		}
		pos := len(w)
		for pos > 0 && w[pos-1].t.After(at) {
			pos--
		}
		w = slices.Insert(w, pos, ev{at, line})
		newest := w[len(w)-1].t
		for len(w) > 0 && w[0].t.Before(newest.Add(-j.FindTime)) {
			w = w[1:]
		}
		wantOK := len(w) >= j.MaxRetry
		if gotOK != wantOK {
			t.Fatalf("hit %d: ban %v, model %v", i, gotOK, wantOK)
		}
		if wantOK {
			if !slices.Equal(got.Lines, []string{line}) || !got.Time.Equal(newest) || got.Failures != len(w) {
				t.Fatalf("hit %d: decision lines %v at %v (%d failures), model %v at %v (%d)", i, got.Lines, got.Time, got.Failures, line, newest, len(w))
			}
			w = nil
		}
		model[k] = w
		if len(w) == 0 {
			delete(model, k)
		}
		if i%500 == 0 {
			c.Expire(now.Add(-3 * time.Minute))
			for k, w := range model {
				j := js[slices.IndexFunc(js, func(j *Jail) bool { return j.Name == k.jail })]
				if w[len(w)-1].t.Add(j.FindTime).Before(now.Add(-3 * time.Minute)) {
					delete(model, k)
				}
			}
			if c.Len() != len(model) {
				t.Fatalf("hit %d: counter holds %d windows, model %d", i, c.Len(), len(model))
			}
		}
	}
}

func TestCounterWindowsByJail(t *testing.T) {
	a, b := counterJail("a", 3, Key{}), counterJail("b", 3, Key{V4Bits: 24})
	c := NewCounter(0)
	c.Add(hitAt(a, "192.0.2.1", 0))
	c.Add(hitAt(a, "192.0.2.2", 0))
	c.Add(hitAt(b, "192.0.2.1", 0))
	c.Add(hitAt(b, "192.0.2.2", 0)) // same /24: same window
	got := c.WindowsByJail()
	if len(got) != 2 || got["a"] != 2 || got["b"] != 1 {
		t.Errorf("WindowsByJail() = %v, want a:2 b:1", got)
	}
}

func TestSipHashVector(t *testing.T) {
	// The reference implementation's vectors: key 00..0f, message 00..n-1.
	k := [2]uint64{0x0706050403020100, 0x0f0e0d0c0b0a0908}
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tc := range []struct {
		n    int
		want uint64
	}{{0, 0x726fdb47dd0e0e31}, {15, 0xa129ca6149be45e5}} {
		if got := sipHash(k, msg[:tc.n]); got != tc.want {
			t.Errorf("sipHash(%d bytes) = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

// TestCounterChanges keeps a copy of the windows the way a checkpoint
// does, shard by shard from Changes, through additions, updates, bans,
// successes, expiry, eviction and Forget, and checks it always equals the
// counter's own windows.
func TestCounterChanges(t *testing.T) {
	js := []*Jail{
		counterJail("a", 3, Key{}),
		counterJail("b", 4, Key{V4Bits: 24}),
		{Name: "c", MaxRetry: 5, FindTime: time.Minute, Successregex: []*Pattern{}},
	}
	type skey struct {
		jail  string
		shard int
	}
	saved := map[skey][]Window{}
	save := func(c *Counter, all bool) int {
		n := 0
		if all {
			clear(saved)
		}
		c.Changes(all, func(jail string, shard int, ws []Window) {
			n++
			k := skey{jail, shard}
			if len(ws) == 0 {
				delete(saved, k)
				return
			}
			var cp []Window
			for _, w := range ws {
				w.Times = slices.Clone(w.Times)
				w.Users, w.Passes = slices.Clone(w.Users), slices.Clone(w.Passes)
				cp = append(cp, w)
			}
			saved[k] = cp
		})
		return n
	}
	check := func(c *Counter, step int) {
		t.Helper()
		var got []Window
		for _, ws := range saved {
			got = append(got, ws...)
		}
		slices.SortFunc(got, func(a, b Window) int {
			if a.Jail != b.Jail {
				return strings.Compare(a.Jail, b.Jail)
			}
			return a.Key.Addr().Compare(b.Key.Addr())
		})
		want := c.Snapshot()
		if len(got) != len(want) {
			t.Fatalf("step %d: saved %d windows, counter holds %d", step, len(got), len(want))
		}
		for i := range want {
			if want[i].Jail != got[i].Jail || want[i].Key != got[i].Key ||
				!slices.EqualFunc(want[i].Times, got[i].Times, time.Time.Equal) ||
				!slices.Equal(want[i].Users, got[i].Users) || !slices.Equal(want[i].Passes, got[i].Passes) {
				t.Fatalf("step %d: saved %+v, counter %+v", step, got[i], want[i])
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	c := NewCounter(150, js...)
	now := t0
	users := []string{"", "alice", "bob"}
	for i := range 30000 {
		now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		addr := netip.AddrFrom4([4]byte{192, 0, byte(r.IntN(3)), byte(r.IntN(200))})
		j := js[r.IntN(len(js))]
		switch op := r.IntN(100); {
		case op < 80:
			c.Add(Hit{Jail: j, Addr: addr, Time: now, User: users[r.IntN(3)], Pass: fmt.Sprint(r.IntN(3))})
		case op < 90:
			c.Add(Hit{Jail: j, Addr: addr, Time: now, User: users[r.IntN(3)], Success: true})
		case op < 95:
			c.Forget(j.Name, j.Key.Prefix(addr))
		case op < 97:
			c.ForgetAddr(addr)
		default:
			c.Expire(now.Add(-5 * time.Minute))
		}
		if r.IntN(50) == 0 {
			save(c, false)
			check(c, i)
		}
	}
	st := c.Stats()
	if st.Evicted == 0 || st.Expired == 0 || st.Cleared == 0 || st.Repeats == 0 {
		t.Errorf("stats %+v: the test did not go through every kind of change", st)
	}
	save(c, false)
	check(c, -1)
	if n := save(c, false); n != 0 {
		t.Errorf("Changes right after Changes reported %d shards", n)
	}
	if n := save(c, true); n == 0 || c.Len() == 0 {
		t.Errorf("Changes(all) reported %d shards for %d windows", n, c.Len())
	}
	check(c, -2)
}

// TestCounterIndexChurn adds and removes many keys so that the index
// grows and its probe runs are shifted back on delete, and checks every
// live key is still found and every removed one is not.
func TestCounterIndexChurn(t *testing.T) {
	j := counterJail("j", 100, Key{})
	c := NewCounter(0)
	r := rand.New(rand.NewPCG(7, 8))
	live := map[netip.Addr]bool{}
	for i := range 200_000 {
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
		if r.IntN(3) == 0 {
			got := c.Forget("j", netip.PrefixFrom(a, 32))
			if got != live[a] {
				t.Fatalf("op %d: Forget(%s) = %v, want %v", i, a, got, live[a])
			}
			delete(live, a)
			continue
		}
		c.Add(Hit{Jail: j, Addr: a, Time: t0})
		live[a] = true
	}
	if c.Len() != len(live) {
		t.Fatalf("Len %d, want %d", c.Len(), len(live))
	}
	for a := range live {
		if !c.Forget("j", netip.PrefixFrom(a, 32)) {
			t.Fatalf("%s not found", a)
		}
	}
	if c.Len() != 0 || len(c.heap) != 0 {
		t.Fatalf("Len %d heap %d after forgetting all", c.Len(), len(c.heap))
	}
}

func TestCounterSetMaxKeys(t *testing.T) {
	j := counterJail("j", 5, Key{})
	c := NewCounter(10)
	for i := range 10 {
		c.Add(hitAt(j, fmt.Sprintf("192.0.2.%d", i), time.Duration(i)*time.Minute))
	}
	c.SetMaxKeys(4) // the 6 oldest go at once
	if c.Len() != 4 || c.Stats().Evicted != 6 {
		t.Fatalf("Len %d, stats %+v; want 4 left, 6 evicted", c.Len(), c.Stats())
	}
	if !c.Forget("j", netip.MustParsePrefix("192.0.2.9/32")) || c.Forget("j", netip.MustParsePrefix("192.0.2.5/32")) {
		t.Error("kept the wrong windows: want the newest 4")
	}
	c.SetMaxKeys(0) // the default, far above
	for i := range 20 {
		c.Add(hitAt(j, fmt.Sprintf("198.51.100.%d", i), time.Hour))
	}
	if c.Len() != 23 {
		t.Errorf("Len %d, want 23 under the default bound", c.Len())
	}
}

// TestCounterUntracked runs the same failures, with evictions, expiry and
// bans, through a tracked and an untracked counter: they must decide and
// hold the same, and only the tracked one reports changes.
func TestCounterUntracked(t *testing.T) {
	js := []*Jail{counterJail("a", 3, Key{}), counterJail("b", 2, Key{V4Bits: 24, V6Bits: 64})}
	tracked, untracked := NewCounter(1000), NewCounter(1000)
	untracked.Untracked()
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20000 {
		addr := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(32)), byte(r.IntN(32))})
		if i%3 == 0 {
			addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 7: byte(r.IntN(64)), 15: byte(r.IntN(64))})
		}
		h := Hit{Jail: js[r.IntN(len(js))], Addr: addr, Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Line: fmt.Sprint(i)}
		d1, ok1 := tracked.Add(h)
		d2, ok2 := untracked.Add(h)
		if ok1 != ok2 || d1.Key != d2.Key || d1.Failures != d2.Failures {
			t.Fatalf("hit %d: tracked %v %+v, untracked %v %+v", i, ok1, d1, ok2, d2)
		}
		if i%1000 == 999 {
			now := h.Time.Add(-8 * time.Minute)
			tracked.Expire(now)
			untracked.Expire(now)
		}
	}
	s1, s2 := tracked.Snapshot(), untracked.Snapshot()
	if len(s1) < 500 {
		t.Fatalf("only %d windows held: the test exercises too little", len(s1))
	}
	if fmt.Sprint(s1) != fmt.Sprint(s2) {
		t.Fatalf("snapshots differ: %d windows tracked, %d untracked", len(s1), len(s2))
	}
	changes := func(c *Counter) (n int) {
		c.Changes(false, func(string, int, []Window) { n++ })
		return n
	}
	if n := changes(tracked); n == 0 {
		t.Error("the tracked counter reported no changed shard")
	}
	if n := changes(untracked); n != 0 {
		t.Errorf("the untracked counter reported %d changed shards", n)
	}
}
