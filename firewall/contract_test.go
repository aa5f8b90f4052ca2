package firewall

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// contractCase runs against a fresh backend. Time passes with time.Sleep:
// fake time in a synctest bubble for DryRun, real time for NFT.
type contractCase struct {
	name string
	run  func(t *testing.T, b Backend)
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// forEachBackend runs each case over DryRun and over NFT in its own netns.
func forEachBackend(t *testing.T, cases []contractCase) {
	for _, c := range cases {
		t.Run("dryrun/"+c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c.run(t, NewDryRun(slog.New(slog.DiscardHandler), time.Now, Limits{}))
			})
		})
		t.Run("nft/"+c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, mustNFT(t, mustNetNS(t), NFTOptions{}))
		})
	}
}

// mustNFT builds an NFT backend with its table in ns.
func mustNFT(tb testing.TB, ns *netNS, o NFTOptions) *NFT {
	tb.Helper()
	o.NetNS = ns.fd()
	n, err := NewNFT(o)
	if err != nil {
		tb.Fatalf("NewNFT: %v", err)
	}
	if err := n.Ensure(context.Background()); err != nil {
		tb.Fatalf("Ensure: %v", err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

func mustAdd(t *testing.T, b Backend, es ...Entry) {
	t.Helper()
	if err := b.Add(context.Background(), es); err != nil {
		t.Fatalf("Add(%v): %v", es, err)
	}
}

func mustList(t *testing.T, b Backend) []Entry {
	t.Helper()
	l, err := b.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return l
}

// assertHolds checks the backend holds exactly want, each with remaining
// time in (want-2s, want].
func assertHolds(t *testing.T, b Backend, want ...Entry) {
	t.Helper()
	got := mustList(t, b)
	if len(got) != len(want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	sortEntries(want)
	for i := range want {
		g, w := got[i], want[i]
		if g.Prefix != w.Prefix || g.Timeout > w.Timeout || g.Timeout <= w.Timeout-2*time.Second {
			t.Fatalf("List[%d] = %v, want %v (remaining within 2s)", i, g, w)
		}
	}
}

// eventually polls cond every 250ms for up to 10s of (fake or real) time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 40 {
		if cond() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("gave up waiting: %s", what)
}

func TestContract(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, []contractCase{
		{"add list remove", func(t *testing.T, b Backend) {
			all := []Entry{
				{pfx("192.0.2.1/32"), time.Hour},
				{pfx("2001:db8::1/128"), 2 * time.Hour},
				{pfx("198.51.100.0/24"), 3 * time.Hour},
				{pfx("2001:db8:1::/64"), 4 * time.Hour},
			}
			mustAdd(t, b, all...)
			assertHolds(t, b, all...)
			// Absent prefixes are no error.
			if err := b.Remove(ctx, []netip.Prefix{pfx("192.0.2.1/32"), pfx("2001:db8:1::/64"), pfx("192.0.2.99/32"), pfx("2001:db8:9::/64")}); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			assertHolds(t, b, all[1], all[2])
			if err := b.Remove(ctx, []netip.Prefix{pfx("2001:db8::1/128"), pfx("198.51.100.0/24")}); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			assertHolds(t, b)
		}},
		{"add refreshes timeout", func(t *testing.T, b Backend) {
			host, net := pfx("192.0.2.1/32"), pfx("2001:db8:1::/64")
			mustAdd(t, b, Entry{host, time.Hour}, Entry{net, time.Hour})
			mustAdd(t, b, Entry{host, 10 * time.Minute}, Entry{net, 2 * time.Hour}) // shorter and longer
			assertHolds(t, b, Entry{host, 10 * time.Minute}, Entry{net, 2 * time.Hour})
			// The same timeout again still restarts the clock.
			time.Sleep(3 * time.Second)
			mustAdd(t, b, Entry{host, 10 * time.Minute}, Entry{net, 2 * time.Hour})
			assertHolds(t, b, Entry{host, 10 * time.Minute}, Entry{net, 2 * time.Hour})
		}},
		{"elements expire by themselves", func(t *testing.T, b Backend) {
			mustAdd(t, b, Entry{pfx("192.0.2.1/32"), 2 * time.Second}, Entry{pfx("2001:db8:1::/64"), 2 * time.Second},
				Entry{pfx("192.0.2.2/32"), time.Hour})
			eventually(t, "short bans to expire", func() bool { return len(mustList(t, b)) == 1 })
			if got := mustList(t, b); got[0].Prefix != pfx("192.0.2.2/32") {
				t.Fatalf("after expiry List = %v, want only 192.0.2.2/32", got)
			}
		}},
		{"mapped IPv6 stored as IPv4, host bits cleared", func(t *testing.T, b Backend) {
			mustAdd(t, b,
				Entry{pfx("::ffff:192.0.2.7/128"), time.Hour},
				Entry{pfx("::ffff:10.1.0.0/112"), time.Hour},
				Entry{pfx("198.51.100.77/24"), time.Hour},
				Entry{pfx("2001:db8:5::1/64"), time.Hour},
			)
			assertHolds(t, b,
				Entry{pfx("192.0.2.7/32"), time.Hour},
				Entry{pfx("10.1.0.0/16"), time.Hour},
				Entry{pfx("198.51.100.0/24"), time.Hour},
				Entry{pfx("2001:db8:5::/64"), time.Hour},
			)
			// Removing by the mapped form finds the IPv4 element.
			if err := b.Remove(ctx, []netip.Prefix{pfx("::ffff:192.0.2.7/128")}); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if got := len(mustList(t, b)); got != 3 {
				t.Fatalf("after removing the mapped address %d entries remain, want 3", got)
			}
		}},
		{"refused entries apply nothing", func(t *testing.T, b Backend) {
			good := Entry{pfx("192.0.2.1/32"), time.Hour}
			for _, bad := range []struct {
				name string
				e    Entry
			}{
				{"v4 default route", Entry{pfx("0.0.0.0/0"), time.Hour}},
				{"v6 default route", Entry{pfx("::/0"), time.Hour}},
				{"v4 shorter than /16", Entry{pfx("10.0.0.0/8"), time.Hour}},
				{"v6 shorter than /32", Entry{pfx("2001:db8::/16"), time.Hour}},
				{"mapped shorter than /16", Entry{pfx("::ffff:10.0.0.0/104"), time.Hour}},
				{"mapped wider than mapped space", Entry{pfx("::ffff:0:0/80"), time.Hour}},
				{"invalid prefix", Entry{netip.Prefix{}, time.Hour}},
				{"zero timeout", Entry{pfx("192.0.2.9/32"), 0}},
				{"negative timeout", Entry{pfx("192.0.2.9/32"), -time.Second}},
			} {
				err := b.Add(ctx, []Entry{good, bad.e})
				if !errors.Is(err, ErrRefused) {
					t.Errorf("%s: Add(%v) = %v, want ErrRefused", bad.name, bad.e, err)
				}
			}
			assertHolds(t, b)
		}},
		{"never-banned entries refused, named", func(t *testing.T, b Backend) {
			good := Entry{pfx("192.0.2.1/32"), time.Hour}
			for _, s := range []string{
				"127.0.0.1/32", "224.0.0.1/32", "169.254.1.1/32", "255.255.255.255/32", "240.1.2.3/32", "0.1.2.3/32",
				"::ffff:127.0.0.1/128", "fe80::1/128", "ff02::1/128", "64:ff9b::7f00:1/128", "2002:7f00:1::/48",
			} {
				err := b.Add(ctx, []Entry{good, {pfx(s), time.Hour}})
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), s) || !strings.Contains(err.Error(), "never banned") {
					t.Errorf("Add(%s) = %v, want ErrRefused naming it as never banned", s, err)
				}
			}
			assertHolds(t, b)
			// Reconcile takes entries one by one: the rest is applied.
			_, _, err := Reconcile(ctx, b, []Entry{good, {pfx("2002:7f00:1::/48"), time.Hour}})
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Reconcile error = %v, want one wrapping ErrRefused for 2002:7f00:1::/48", err)
			}
			assertHolds(t, b, good)
		}},
		{"reconcile keeps the wider of nested prefixes, with the longer time", func(t *testing.T, b Backend) {
			want := []Entry{
				{pfx("203.0.0.0/16"), 10 * time.Minute},
				{pfx("203.0.113.0/24"), time.Hour},
				{pfx("2001:db8::/32"), 5 * time.Minute},
				{pfx("2001:db8:1::/48"), time.Hour},
			}
			if _, _, err := Reconcile(ctx, b, want); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			assertHolds(t, b, Entry{pfx("203.0.0.0/16"), time.Hour}, Entry{pfx("2001:db8::/32"), time.Hour})
			if added, removed, err := Reconcile(ctx, b, want); err != nil || added != 0 || removed != 0 {
				t.Errorf("second Reconcile = %d, %d, %v; want nothing to do", added, removed, err)
			}
			// A held narrower prefix gives way to the wider one wanted.
			if err := b.Remove(ctx, []netip.Prefix{pfx("203.0.0.0/16"), pfx("2001:db8::/32")}); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			mustAdd(t, b, Entry{pfx("203.0.113.0/24"), time.Hour}, Entry{pfx("2001:db8:1::/48"), time.Hour})
			if _, _, err := Reconcile(ctx, b, want); err != nil {
				t.Fatalf("Reconcile over the narrower prefixes: %v", err)
			}
			assertHolds(t, b, Entry{pfx("203.0.0.0/16"), time.Hour}, Entry{pfx("2001:db8::/32"), time.Hour})
		}},
		{"an overlapping prefix is refused alone, named", func(t *testing.T, b Backend) {
			mustAdd(t, b, Entry{pfx("203.0.0.0/16"), time.Hour}, Entry{pfx("2001:db8:1::/48"), time.Hour})
			err := b.Add(ctx, []Entry{
				{pfx("192.0.2.1/32"), time.Hour},
				{pfx("203.0.113.0/24"), time.Hour}, // inside the held /16
				{pfx("198.51.100.0/24"), time.Hour},
				{pfx("203.0.113.7/32"), time.Hour}, // an address is no interval: kept apart
				{pfx("2001:db8::/32"), time.Hour},  // around the held /48
				{pfx("2001:db8:2::/48"), time.Hour},
			})
			if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), "203.0.113.0/24") || !strings.Contains(err.Error(), "2001:db8::/32") {
				t.Errorf("Add = %v, want ErrOverlap naming 203.0.113.0/24 and 2001:db8::/32", err)
			}
			assertHolds(t, b,
				Entry{pfx("203.0.0.0/16"), time.Hour},
				Entry{pfx("2001:db8:1::/48"), time.Hour},
				Entry{pfx("192.0.2.1/32"), time.Hour},
				Entry{pfx("198.51.100.0/24"), time.Hour},
				Entry{pfx("203.0.113.7/32"), time.Hour},
				Entry{pfx("2001:db8:2::/48"), time.Hour},
			)
			// Nested in one batch: the first one given wins.
			err = b.Add(ctx, []Entry{{pfx("10.1.0.0/16"), time.Hour}, {pfx("10.1.2.0/24"), time.Hour}})
			if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), "10.1.2.0/24") {
				t.Errorf("Add of nested prefixes = %v, want ErrOverlap naming 10.1.2.0/24", err)
			}
			// A prefix nested in a held one is absent: removing it is no error.
			if err := b.Remove(ctx, []netip.Prefix{pfx("203.0.113.0/24"), pfx("192.0.2.1/32")}); err != nil {
				t.Errorf("Remove of a prefix inside a held one: %v", err)
			}
			assertHolds(t, b,
				Entry{pfx("203.0.0.0/16"), time.Hour},
				Entry{pfx("2001:db8:1::/48"), time.Hour},
				Entry{pfx("198.51.100.0/24"), time.Hour},
				Entry{pfx("203.0.113.7/32"), time.Hour},
				Entry{pfx("2001:db8:2::/48"), time.Hour},
				Entry{pfx("10.1.0.0/16"), time.Hour},
			)
		}},
		{"reconcile", func(t *testing.T, b Backend) {
			mustAdd(t, b,
				Entry{pfx("192.0.2.1/32"), time.Hour},    // kept as is
				Entry{pfx("192.0.2.2/32"), time.Hour},    // stray
				Entry{pfx("2001:db8:1::/64"), time.Hour}, // timeout drifted
			)
			want := []Entry{
				{pfx("192.0.2.1/32"), time.Hour},
				{pfx("2001:db8:1::/64"), 3 * time.Hour},
				{pfx("198.51.100.0/24"), 30 * time.Minute}, // missing
				{pfx("::ffff:192.0.2.3/128"), time.Hour},   // missing, mapped
				{pfx("192.0.2.4/32"), 0},                   // expired: not wanted
				{pfx("10.0.0.0/8"), time.Hour},             // refused, skipped
			}
			added, removed, err := Reconcile(ctx, b, want)
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Reconcile error = %v, want one wrapping ErrRefused for 10.0.0.0/8", err)
			}
			if added != 3 || removed != 1 {
				t.Errorf("Reconcile = added %d, removed %d; want 3, 1", added, removed)
			}
			assertHolds(t, b,
				Entry{pfx("192.0.2.1/32"), time.Hour},
				Entry{pfx("2001:db8:1::/64"), 3 * time.Hour},
				Entry{pfx("198.51.100.0/24"), 30 * time.Minute},
				Entry{pfx("192.0.2.3/32"), time.Hour},
			)
			added, removed, err = Reconcile(ctx, b, want[:4])
			if err != nil || added != 0 || removed != 0 {
				t.Errorf("second Reconcile = %d, %d, %v; want nothing to do", added, removed, err)
			}
		}},
	})
}
