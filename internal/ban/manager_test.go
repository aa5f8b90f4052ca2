package ban

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smtpban/firewall"
	"smtpban/jails"
	"smtpban/state"
)

// countingStore counts transactions and fails them on demand (a disk that
// is full or read-only).
type countingStore struct {
	*MemStore
	mu   sync.Mutex // Run's goroutine and the test
	puts int
	fail error
}

func (s *countingStore) PutBans(bs []state.Ban) ([]state.Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.fail != nil {
		return nil, s.fail
	}
	return s.MemStore.PutBans(bs)
}

func (s *countingStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// countingFW counts firewall batches.
type countingFW struct {
	*firewall.DryRun
	adds int
}

func (f *countingFW) Add(ctx context.Context, es []firewall.Entry) error {
	f.adds++
	return f.DryRun.Add(ctx, es)
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func testManager(t *testing.T) (*Manager, *countingStore, *countingFW) {
	t.Helper()
	st := &countingStore{MemStore: NewMemStore()}
	now := func() time.Time { return t0 }
	fw := &countingFW{DryRun: firewall.NewDryRun(slog.New(slog.DiscardHandler), now, firewall.Limits{MinV4: 16, MinV6: 32})}
	m := New(Options{Store: st, Firewall: fw, Now: now, Origin: "mx1"})
	j := &jails.Jail{Name: "sasl", BanTime: time.Hour, MaxRetry: 1,
		Key: jails.Key{V4Bits: 32, V6Bits: 64}, Widen: jails.Widen{After: 3, V6Bits: 48}}
	m.SetPolicy(PolicyFor([]*jails.Jail{j}, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, []netip.Addr{netip.MustParseAddr("198.51.100.1")}))
	return m, st, fw
}

func dec(m *Manager, addr string) jails.Decision {
	a := netip.MustParseAddr(addr)
	j := m.policy.Jails["sasl"]
	return jails.Decision{Jail: j, Key: j.Key.Prefix(a), Addr: a, Time: t0, Failures: 1}
}

func prefixes(t *testing.T, s Store) []string {
	t.Helper()
	bs, err := s.Bans()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Prefix.String())
	}
	slices.Sort(out)
	return out
}

// TestDecideOneTransactionOneBatch: a burst of decisions is one state
// transaction and one firewall batch, not one of each per ban.
func TestDecideOneTransactionOneBatch(t *testing.T) {
	m, st, fw := testManager(t)
	var ds []jails.Decision
	for i := range 5000 {
		ds = append(ds, dec(m, fmt.Sprintf("203.0.%d.%d", 100+i/250, 1+i%250)))
	}
	saved, err := m.Decide(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 5000 || st.puts != 1 || fw.adds != 1 {
		t.Errorf("%d bans in %d transactions and %d firewall batches, want 5000 in 1 and 1", len(saved), st.puts, fw.adds)
	}
	es, _ := fw.List(context.Background())
	if len(es) != 5000 {
		t.Errorf("firewall holds %d, want 5000", len(es))
	}
}

// TestDecideProtectsAndNests: protected addresses are skipped, a key
// inside an active wider ban is skipped, the 3rd /64 of one /48 in one
// batch widens, and two decisions on one key are one ban.
func TestDecideProtectsAndNests(t *testing.T) {
	m, _, fw := testManager(t)
	ds := []jails.Decision{
		dec(m, "192.0.2.7"),    // global ignore list
		dec(m, "198.51.100.1"), // the host's own
		dec(m, "127.0.0.1"),    // never banned
		dec(m, "203.0.113.7"),
		dec(m, "203.0.113.7"), // again, same batch
		dec(m, "2001:db8:5:1::1"),
		dec(m, "2001:db8:5:2::1"),
		dec(m, "2001:db8:5:3::1"), // the 3rd /64: the /48
		dec(m, "2001:db8:5:4::1"), // inside the /48 now
	}
	if _, err := m.Decide(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	want := []string{"2001:db8:5::/48", "203.0.113.7/32"}
	if got := prefixes(t, m.store); !slices.Equal(got, want) {
		t.Errorf("bans %v, want %v", got, want)
	}
	es, _ := fw.List(context.Background())
	var got []string
	for _, e := range es {
		got = append(got, e.Prefix.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("firewall %v, want %v", got, want)
	}
}

// TestPendingWhileStateUnwritable: bans state cannot save still reach the
// kernel (a full disk must not stop the banning), are kept there by a
// resync meanwhile, and are saved once state can be written.
func TestPendingWhileStateUnwritable(t *testing.T) {
	m, st, fw := testManager(t)
	st.setFail(fmt.Errorf("write page: %w", syscall.ENOSPC))
	if _, err := m.Decide(context.Background(), []jails.Decision{dec(m, "203.0.113.9"), dec(m, "203.0.113.10")}); !errors.Is(err, errNotSaved) {
		t.Fatalf("Decide: %v, want errNotSaved", err)
	}
	if n := m.Pending(); n != 2 {
		t.Fatalf("%d pending, want 2", n)
	}
	if es, _ := fw.List(context.Background()); len(es) != 2 {
		t.Errorf("firewall holds %v while state is unwritable, want both bans", es)
	}
	if h := m.StateHealth(); h.Writable || h.Err == "" || h.Pending != 2 {
		t.Errorf("StateHealth = %+v, want unwritable, with the error, 2 pending", h)
	}
	m.Resync(context.Background(), "periodic")
	if es, _ := fw.List(context.Background()); len(es) != 2 {
		t.Errorf("a resync while state is unwritable left %v, want both bans", es)
	}
	m.retryPending(context.Background()) // still failing: kept
	if n := m.Pending(); n != 2 {
		t.Fatalf("%d pending after a failed retry, want 2", n)
	}
	st.setFail(nil)
	m.retryPending(context.Background())
	if n := m.Pending(); n != 0 {
		t.Errorf("%d pending after the disk came back, want 0", n)
	}
	if got, want := prefixes(t, st), []string{"203.0.113.10/32", "203.0.113.9/32"}; !slices.Equal(got, want) {
		t.Errorf("bans %v, want %v", got, want)
	}
	if es, _ := fw.List(context.Background()); len(es) != 2 {
		t.Errorf("firewall holds %v, want both", es)
	}
	if h := m.StateHealth(); !h.Writable || h.Pending != 0 {
		t.Errorf("StateHealth = %+v after the disk came back, want writable", h)
	}
}

// TestManualBanRefusals: a ban by hand that the firewall would refuse, of
// a protected address, or inside an active wider ban, is refused and
// nothing is stored.
func TestManualBanRefusals(t *testing.T) {
	m, st, _ := testManager(t)
	ctx := context.Background()
	if _, err := m.Ban(ctx, netip.MustParsePrefix("203.0.0.0/16"), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"10.0.0.0/8", "2001:db8::/16", "127.0.0.1/32", "192.0.2.0/25", "203.0.113.0/24"} {
		_, err := m.Ban(ctx, netip.MustParsePrefix(p), "", time.Hour)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("ban %s: %v, want ErrRefused", p, err)
		}
	}
	if _, err := m.Ban(ctx, netip.MustParsePrefix("198.18.0.0/16"), "nosuch", time.Hour); !errors.Is(err, ErrNoJail) {
		t.Errorf("ban in an unknown jail: %v", err)
	}
	if got := prefixes(t, st); !slices.Equal(got, []string{"203.0.0.0/16"}) {
		t.Errorf("bans %v, want only 203.0.0.0/16", got)
	}
}

// TestManualPrefixTakesInnerPrefixes: a prefix banned by hand over prefix
// bans inside it takes their place (a set cannot hold both) and keeps the
// latest end; addresses inside it stay, in their own set.
func TestManualPrefixTakesInnerPrefixes(t *testing.T) {
	m, st, fw := testManager(t)
	ctx := context.Background()
	for _, p := range []string{"203.0.113.7/32", "203.0.113.0/24"} {
		if _, err := m.Ban(ctx, netip.MustParsePrefix(p), "", 3*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.Ban(ctx, netip.MustParsePrefix("203.0.0.0/16"), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(3 * time.Hour); !b.Until.Equal(want) {
		t.Errorf("the /16 ends %s, want %s (the /24's end)", b.Until, want)
	}
	want := []string{"203.0.0.0/16", "203.0.113.7/32"}
	if got := prefixes(t, st); !slices.Equal(got, want) {
		t.Errorf("bans %v, want %v", got, want)
	}
	es, _ := fw.List(ctx)
	var got []string
	for _, e := range es {
		got = append(got, e.Prefix.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("firewall %v, want %v", got, want)
	}
}

// TestRunRetriesUnsavedBans: the running manager takes bans submitted
// while state refuses writes, keeps them, and makes them on its own retry
// timer once state is writable; Wait then reports them done.
func TestRunRetriesUnsavedBans(t *testing.T) {
	m, st, fw := testManager(t)
	st.setFail(fmt.Errorf("write page: %w", syscall.EROFS))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, Timers{Retry: 5 * time.Millisecond, Sweep: time.Hour, Resync: time.Hour}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	m.Submit(1, []jails.Decision{dec(m, "203.0.113.20")})
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := m.Wait(wctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := m.Pending(); n != 1 {
		t.Fatalf("%d pending while state refuses writes, want 1", n)
	}
	st.setFail(nil)
	deadline := time.Now().Add(5 * time.Second)
	for m.Pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the kept ban was never retried")
		}
		time.Sleep(5 * time.Millisecond)
	}
	es, _ := fw.List(context.Background())
	if len(es) != 1 || es[0].Prefix != netip.MustParsePrefix("203.0.113.20/32") {
		t.Errorf("firewall holds %v, want the retried ban", es)
	}
}

// TestAlive: a running manager answers; one stuck holding its lock (a
// firewall or state call that never returns) does not, within the
// caller's time; nor does one that is not running.
func TestAlive(t *testing.T) {
	m, _, _ := testManager(t)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if err := m.Alive(short()); err == nil {
		t.Error("Alive before Run = nil, want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, Timers{Sweep: time.Hour, Retry: time.Hour, Resync: time.Hour}) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := m.Alive(wctx); err != nil {
		t.Fatalf("Alive while running = %v", err)
	}
	m.mu.Lock()
	err := m.Alive(short())
	m.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "lock held") {
		t.Errorf("Alive with the lock held = %v, want an error saying so", err)
	}
	if err := m.Alive(wctx); err != nil {
		t.Errorf("Alive after the lock was let go = %v", err)
	}
}
