package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"smtpban/internal/ban"
	"smtpban/jails"
	"smtpban/state"
)

func TestBanOnAIsOnBAndUnbanOnBLiftsOnA(t *testing.T) {
	e := startEtcd(t, 1)
	a := newHost(t, "mx1", e.Endpoints(), hostOpts{})
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{})
	p := mustPrefix(t, "203.0.113.7")
	start := time.Now()
	if _, err := a.mgr.Decide(t.Context(), []jails.Decision{decision("203.0.113.7")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "mx1's ban held by mx2 in state and firewall", func() bool { _, ok := b.held(t, p); return ok })
	t.Logf("propagated in %v", time.Since(start))
	got, _ := b.held(t, p)
	if got.Origin != "mx1" || got.Jail != "postfix-sasl" || got.Failures != 5 || len(got.Lines) != 1 {
		t.Errorf("mx2 holds %+v; want origin mx1, jail postfix-sasl, 5 failures and the reason", got)
	}
	if lifted, err := b.mgr.Unban(t.Context(), ban.UnbanMatch(p, "", false)); err != nil || len(lifted) != 1 {
		t.Fatalf("unban on mx2: %v, %v", lifted, err)
	}
	waitFor(t, time.Second, "unban on mx2 lifted on mx1", func() bool {
		_, ok := a.held(t, p)
		return !ok && !a.inFirewall(t, p)
	})
	// -local: lifted on mx1 alone.
	q := mustPrefix(t, "198.51.100.9")
	if _, err := a.mgr.Ban(t.Context(), q, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "manual ban on mx2", func() bool { _, ok := b.held(t, q); return ok })
	if _, err := b.mgr.UnbanLocal(t.Context(), ban.UnbanMatch(q, "", false)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := a.held(t, q); !ok {
		t.Error("a local unban on mx2 lifted mx1's ban")
	}
}

func TestLaterUntilWins(t *testing.T) {
	e := startEtcd(t, 1)
	a := newHost(t, "mx1", e.Endpoints(), hostOpts{})
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{})
	p := mustPrefix(t, "203.0.113.50")
	if _, err := b.mgr.Ban(t.Context(), p, "", 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "mx2's 3h ban on mx1", func() bool { _, ok := a.held(t, p); return ok })
	// mx1 bans it again for less: the key keeps mx2's later end.
	if _, err := a.mgr.UnbanLocal(t.Context(), ban.UnbanMatch(p, "", false)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Ban(t.Context(), p, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	cli, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	waitFor(t, 2*time.Second, "mx1's publish done", func() bool { q, _ := a.store.OutboxLen(); return q == 0 })
	resp, err := cli.Get(t.Context(), "/smtpban/bans/"+p.String())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get key: %v %v", resp, err)
	}
	r, err := decode("/smtpban/bans/", resp.Kvs[0].Key, resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if r.Origin != "mx2" || time.Until(r.Until) < 2*time.Hour {
		t.Errorf("key holds origin %s until %v from now; want mx2's 3h ban", r.Origin, time.Until(r.Until).Round(time.Minute))
	}
	if got, _ := b.held(t, p); time.Until(got.Until) < 2*time.Hour {
		t.Errorf("mx2's ban was shortened to %v", time.Until(got.Until).Round(time.Minute))
	}
	// Every key has a lease, shared by the minute, not one per ban.
	if resp.Kvs[0].Lease == 0 {
		t.Error("key has no lease: nothing would clean it up")
	}
}

func TestForgedValuesRefused(t *testing.T) {
	e := startEtcd(t, 1)
	own := netip.MustParseAddr("192.0.2.25")
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{own: []netip.Addr{own}})
	cli, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	good := func(origin string) string {
		return fmt.Sprintf(`{"until":%q,"jail":"postfix-sasl","origin":%q,"failures":5}`, until, origin)
	}
	cases := []struct{ key, value, reason string }{
		{"203.0.113.1/32", `{"until":`, invalidJSON},
		{"203.0.113.2/32", `not json`, invalidJSON},
		{"203.0.113.3/32", `{"jail":"x","origin":"mx1"}`, invalidField},
		{"203.0.113.4/32", fmt.Sprintf(`{"until":%q,"jail":"x","origin":"mx1\nfake"}`, until), invalidField},
		{"not-an-address", good("mx1"), invalidKey},
		{"203.0.113.5/24", good("mx1"), invalidKey}, // not canonical
		{"::ffff:203.0.113.6/128", good("mx1"), invalidKey},
	}
	for _, c := range cases {
		if _, err := cli.Put(t.Context(), "/smtpban/bans/"+c.key, c.value); err != nil {
			t.Fatal(err)
		}
	}
	refused := []string{
		own.String() + "/32", // mx2's own address
		"127.0.0.1/32",       // loopback
		"10.0.0.0/8",         // wider than min_prefix
	}
	for _, k := range refused {
		if _, err := cli.Put(t.Context(), "/smtpban/bans/"+k, good("mx1")); err != nil {
			t.Fatal(err)
		}
	}
	// A good one last: once it is in, everything before it was seen.
	if _, err := cli.Put(t.Context(), "/smtpban/bans/203.0.113.99/32", good("mx1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the valid ban applied", func() bool { _, ok := b.held(t, mustPrefix(t, "203.0.113.99")); return ok })
	if n := b.count(t); n != 1 {
		bans, _ := b.store.Bans()
		t.Errorf("mx2 holds %d bans, want only the valid one: %+v", n, bans)
	}
	want := map[string]float64{}
	for _, c := range cases {
		want[c.reason]++
	}
	for reason, n := range want {
		if got := b.metric(b.node.met.invalid.WithLabelValues(reason)); got != n {
			t.Errorf("invalid_total{reason=%s} = %v, want %v", reason, got, n)
		}
	}
	if got := b.metric(b.node.met.refused); got != float64(len(refused)) {
		t.Errorf("refused_total = %v, want %d", got, len(refused))
	}
	if b.inFirewall(t, netip.PrefixFrom(own, 32)) {
		t.Error("mx2's own address reached its firewall")
	}
}

func TestOutageQueuesAndConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("etcd is down for 10 s")
	}
	e := startEtcd(t, 1)
	a := newHost(t, "mx1", e.Endpoints(), hostOpts{})
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{})
	waitFor(t, 3*time.Second, "both connected", func() bool { return a.node.Status().Connected && b.node.Status().Connected })
	e.Members[0].Stop()
	down := time.Now()
	waitFor(t, 4*time.Second, "mx1 sees etcd down", func() bool { return !a.node.Status().Connected })
	if a.metric(a.node.met.degraded) != 1 {
		t.Error("degraded metric is not 1 while etcd is down")
	}
	var want []netip.Prefix
	for i := range 50 {
		addr := fmt.Sprintf("203.0.113.%d", i+1)
		start := time.Now()
		if _, err := a.mgr.Decide(t.Context(), []jails.Decision{decision(addr)}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("a local ban waited %v while etcd was down", took)
		}
		if _, ok := a.held(t, mustPrefix(t, addr)); !ok {
			t.Fatalf("local ban of %s not made while etcd was down", addr)
		}
		want = append(want, mustPrefix(t, addr))
		if i == 24 {
			// A restart of mx1 while etcd is down loses nothing: the
			// queue is in bbolt.
			a.halt()
			a.opts.Metrics = nil // the registry holds the first node's
			node, err := New(a.opts)
			if err != nil {
				t.Fatal(err)
			}
			a.node = node
			node.SetManager(a.mgr)
			a.start(t)
		}
	}
	if st := a.node.Status(); st.Queued != 50 || st.Connected {
		t.Errorf("status during the outage: %+v; want 50 queued, not connected", st)
	}
	time.Sleep(10*time.Second - time.Since(down))
	if err := e.Members[0].Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "mx2 holds all 50 bans made during the outage", func() bool {
		for _, p := range want {
			if _, ok := b.held(t, p); !ok {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "queue empty and connected", func() bool {
		st := a.node.Status()
		return st.Queued == 0 && st.Connected
	})
}

// proxy forwards TCP to target until cut; a cut drops every connection
// and refuses new ones, the way a network partition looks to a client.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go pipe(c, u)
			go pipe(u, c)
		}
	}()
}

func pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

func TestWatchBehindCompactionRelists(t *testing.T) {
	e := startEtcd(t, 1)
	a := newHost(t, "mx1", e.Endpoints(), hostOpts{})
	px := newProxy(t, e.Members[0].ClientURL[len("http://"):])
	b := newHost(t, "mx2", []string{"http://" + px.addr}, hostOpts{})
	gone, kept := mustPrefix(t, "203.0.113.10"), mustPrefix(t, "203.0.113.11")
	if _, err := a.mgr.Decide(t.Context(), []jails.Decision{decision("203.0.113.10")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "first ban on mx2", func() bool { _, ok := b.held(t, gone); return ok })
	relists := b.metric(b.node.met.relists.WithLabelValues("compacted"))

	px.cut()
	// While mx2 cannot see: one ban lifted, one made, then the history
	// is compacted away.
	if _, err := a.mgr.Unban(t.Context(), ban.UnbanMatch(gone, "", false)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Decide(t.Context(), []jails.Decision{decision("203.0.113.11")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "mx1's queue published", func() bool { q, _ := a.store.OutboxLen(); return q == 0 })
	cli, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	px.restore(t)

	waitFor(t, 10*time.Second, "mx2 re-listed and converged", func() bool {
		_, hasKept := b.held(t, kept)
		_, hasGone := b.held(t, gone)
		return hasKept && !hasGone && !b.inFirewall(t, gone)
	})
	if got := b.metric(b.node.met.relists.WithLabelValues("compacted")); got != relists+1 {
		t.Errorf("relists{why=compacted} = %v, want %v", got, relists+1)
	}
}

func TestLeaderLossKeepsBansFlowing(t *testing.T) {
	e := startEtcd(t, 3)
	a := newHost(t, "mx1", e.Endpoints(), hostOpts{})
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{})
	if _, err := a.mgr.Decide(t.Context(), []jails.Decision{decision("203.0.113.20")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "first ban on mx2", func() bool { _, ok := b.held(t, mustPrefix(t, "203.0.113.20")); return ok })
	leader, err := e.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	leader.Stop()
	t.Logf("stopped leader %s", leader.Name)
	for i := range 20 {
		addr := fmt.Sprintf("203.0.113.%d", 30+i)
		if _, err := a.mgr.Decide(t.Context(), []jails.Decision{decision(addr)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "bans made after the leader died reach mx2", func() bool {
		for i := range 20 {
			if _, ok := b.held(t, mustPrefix(t, fmt.Sprintf("203.0.113.%d", 30+i))); !ok {
				return false
			}
		}
		return true
	})
	nl, err := e.Leader(t.Context())
	if err != nil || nl == leader {
		t.Errorf("no new leader: %v %v", nl, err)
	}
}

func TestBurstConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 bans")
	}
	e := startEtcd(t, 1)
	a := newHost(t, "mx1", e.Endpoints(), hostOpts{})
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{})
	const n = 10000
	var ds []jails.Decision
	for i := range n {
		ds = append(ds, decision(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}).String()))
	}
	start := time.Now()
	for len(ds) > 0 {
		k := min(len(ds), 1000)
		if _, err := a.mgr.Decide(context.Background(), ds[:k]); err != nil {
			t.Fatal(err)
		}
		ds = ds[k:]
	}
	waitFor(t, 60*time.Second, "mx2 holds all 10,000 bans in state and firewall", func() bool {
		if b.count(t) < n {
			return false
		}
		es, _ := b.fw.List(context.Background())
		return len(es) >= n
	})
	t.Logf("10,000 bans converged on mx2 in %v", time.Since(start))
}

// TestStartReconciles: at start, other hosts' bans held here whose keys
// are gone (lifted while this host was down) are lifted; this host's own,
// under its name or its older one, stay.
func TestStartReconciles(t *testing.T) {
	e := startEtcd(t, 1)
	now := time.Now()
	seed := []state.Ban{
		{Prefix: mustPrefix(t, "203.0.113.1"), Jail: "postfix-sasl", Since: now, Until: now.Add(time.Hour), Origin: "mx9"},
		{Prefix: mustPrefix(t, "203.0.113.2"), Jail: "postfix-sasl", Since: now, Until: now.Add(time.Hour), Origin: "mx2"},
		{Prefix: mustPrefix(t, "203.0.113.3"), Jail: "postfix-sasl", Since: now, Until: now.Add(time.Hour), Origin: "mail2.example"},
	}
	b := newHost(t, "mx2", e.Endpoints(), hostOpts{seed: seed, also: []string{"mail2.example"}})
	waitFor(t, 3*time.Second, "mx9's stale ban lifted", func() bool { return b.count(t) == 2 })
	time.Sleep(200 * time.Millisecond)
	for _, a := range []string{"203.0.113.2", "203.0.113.3"} {
		bans, _ := b.store.Bans()
		found := false
		for _, x := range bans {
			found = found || x.Prefix == mustPrefix(t, a)
		}
		if !found {
			t.Errorf("this host's own ban of %s was lifted", a)
		}
	}
}
