package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"smtpban/firewall"
	"smtpban/internal/ban"
	"smtpban/internal/cluster/etcdtest"
	"smtpban/jails"
	"smtpban/state"
)

// startEtcd runs a real etcd cluster of n members for the test. Without
// the binary the test skips, and fails in CI (.ci/run installs it).
func startEtcd(t *testing.T, n int) *etcdtest.Cluster {
	t.Helper()
	if err := etcdtest.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a real etcd is needed: %v", err)
		}
		t.Skipf("a real etcd is needed: %v", err)
	}
	c, err := etcdtest.Start(t.Context(), etcdtest.Options{Members: n, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// host is one mail host of a test: real state, the dry-run firewall, the
// ban manager and its Node.
type host struct {
	name  string
	store *state.Store
	fw    *firewall.DryRun
	mgr   *ban.Manager
	node  *Node
	reg   *prometheus.Registry
	stop  context.CancelFunc
	done  chan struct{}
	opts  Options
}

type hostOpts struct {
	own   []netip.Addr
	jails []string
	also  []string
	seed  []state.Ban // in state before the node starts
}

var testJail = &jails.Jail{Name: "postfix-sasl", BanTime: time.Hour}

func newHost(t *testing.T, name string, endpoints []string, ho hostOpts) *host {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("host", name)
	store, err := state.Open(filepath.Join(t.TempDir(), "smtpban.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ho.seed) > 0 {
		if _, err := store.PutBans(ho.seed); err != nil {
			t.Fatal(err)
		}
	}
	h := &host{name: name, store: store, reg: prometheus.NewRegistry()}
	h.fw = firewall.NewDryRun(log, time.Now, firewall.Limits{MinV4: 16, MinV6: 32})
	h.opts = Options{
		Endpoints: endpoints, Prefix: "/smtpban/", Host: name, Jails: ho.jails, Also: ho.also,
		Store: store, Logger: log, Metrics: h.reg, RequestTimeout: time.Second,
	}
	node, err := New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	h.node = node
	h.mgr = ban.New(ban.Options{Store: store, Firewall: h.fw, Logger: log, Origin: name, Publisher: node})
	h.mgr.SetPolicy(ban.PolicyFor([]*jails.Jail{testJail}, nil, ho.own))
	node.SetManager(h.mgr)
	h.start(t)
	t.Cleanup(func() {
		h.halt()
		store.Close()
	})
	return h
}

func (h *host) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.node.Run(ctx); err != nil {
			t.Errorf("%s: node: %v", h.name, err)
		}
	}()
}

func (h *host) halt() {
	if h.stop != nil {
		h.stop()
		<-h.done
		h.stop = nil
		h.node.Close()
	}
}

// testWriter sends logs to t.Log, and nowhere once the test is over.
type testWriter struct{ t *testing.T }

var logMu sync.Mutex

func (w testWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	if !w.t.Failed() && testing.Verbose() {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func mustPrefix(t testing.TB, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	return p
}

// held says whether h holds an active ban on p, in state and in its
// firewall.
func (h *host) held(t *testing.T, p netip.Prefix) (state.Ban, bool) {
	t.Helper()
	bans, err := h.store.Bans()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bans {
		if b.Prefix == p && b.Until.After(time.Now()) {
			return b, h.inFirewall(t, p)
		}
	}
	return state.Ban{}, false
}

func (h *host) inFirewall(t *testing.T, p netip.Prefix) bool {
	es, err := h.fw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Prefix == p {
			return true
		}
	}
	return false
}

func (h *host) count(t *testing.T) int {
	bans, err := h.store.Bans()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range bans {
		if b.Until.After(time.Now()) {
			n++
		}
	}
	return n
}

func (h *host) metric(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// decision is a jail's decision to ban addr now.
func decision(addr string) jails.Decision {
	a := netip.MustParseAddr(addr)
	return jails.Decision{Jail: testJail, Key: netip.PrefixFrom(a, 32), Addr: a, Time: time.Now(), Failures: 5,
		Lines: []string{"warning: unknown[" + addr + "]: SASL LOGIN authentication failed"}}
}
