package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var handleRE = regexp.MustCompile(`# handle \d+`)

// listTable is what `nft list table` prints for smtpban's table in ns.
func listTable(t *testing.T, ns *netNS, flags ...string) string {
	t.Helper()
	return ns.exec(t, append(append([]string{"nft"}, flags...), "list", "table", "inet", "smtpban")...)
}

func assertContains(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("nft output lacks %q:\n%s", w, text)
		}
	}
}

func TestNFTKernelShape(t *testing.T) {
	cases := []struct {
		name string
		opts NFTOptions
		want []string
		not  []string
	}{
		{"default ports drop", NFTOptions{}, []string{
			"type filter hook input priority filter - 10; policy accept;",
			"ip saddr @addrs4 tcp dport @ports counter packets 0 bytes 0 drop",
			"ip saddr @nets4 tcp dport @ports counter packets 0 bytes 0 drop",
			"ip6 saddr @addrs6 tcp dport @ports counter packets 0 bytes 0 drop",
			"ip6 saddr @nets6 tcp dport @ports counter packets 0 bytes 0 drop",
			"elements = { 25, 465, 587 }",
		}, []string{"ct state", "reject"}},
		{"dovecot ports reject", NFTOptions{Ports: append(DefaultPorts(), DovecotPorts()...), Reject: true, Priority: -5}, []string{
			"type filter hook input priority filter - 5; policy accept;",
			"ip saddr @addrs4 tcp dport @ports counter packets 0 bytes 0 reject with tcp reset",
			"elements = { 25, 110, 143, 465, 587,", "993, 995, 4190 }",
		}, []string{"ct state", "drop"}},
		{"all ports", NFTOptions{AllPorts: true}, []string{
			"ip saddr @addrs4 counter packets 0 bytes 0 drop",
			"ip6 saddr @nets6 counter packets 0 bytes 0 drop",
		}, []string{"ct state", "dport", "set ports"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := mustNetNS(t)
			n := mustNFT(t, ns, c.opts)
			err := n.Add(context.Background(), []Entry{
				{pfx("192.0.2.1/32"), time.Hour},
				{pfx("2001:db8::1/128"), time.Hour},
				{pfx("198.51.100.0/24"), 2 * time.Hour},
				{pfx("2001:db8:1::/64"), 2 * time.Hour},
			})
			if err != nil {
				t.Fatal(err)
			}
			out := listTable(t, ns)
			assertContains(t, out, c.want...)
			assertContains(t, out,
				"set addrs4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n",
				"set addrs6 {\n\t\ttype ipv6_addr\n\t\tflags timeout\n",
				"set nets4 {\n\t\ttype ipv4_addr\n\t\tflags interval,timeout\n",
				"set nets6 {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n",
			)
			// The kernel counts expiry in jiffies: listed within one of
			// the insert, an element shows its whole timeout left.
			for _, el := range []string{
				`192\.0\.2\.1 timeout 1h expires (1h|59m5)`,
				`2001:db8::1 timeout 1h expires (1h|59m5)`,
				`198\.51\.100\.0/24 timeout 2h expires (2h|1h59m5)`,
				`2001:db8:1::/64 timeout 2h expires (2h|1h59m5)`,
			} {
				if !regexp.MustCompile(`elements = \{ ` + el).MatchString(out) {
					t.Errorf("nft output lacks %s:\n%s", el, out)
				}
			}
			for _, s := range c.not {
				if strings.Contains(out, s) {
					t.Errorf("nft output has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestNFTEnsure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := mustNetNS(t)
	n := mustNFT(t, ns, NFTOptions{})
	ban := []Entry{{pfx("192.0.2.1/32"), time.Hour}, {pfx("2001:db8:1::/64"), time.Hour}}
	mustAdd(t, n, ban...)

	t.Run("idempotent", func(t *testing.T) {
		before := listTable(t, ns, "-a")
		if err := n.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		// Same handles: nothing was recreated.
		if after := listTable(t, ns, "-a"); handleRE.FindAllString(after, -1) == nil ||
			fmt.Sprint(handleRE.FindAllString(after, -1)) != fmt.Sprint(handleRE.FindAllString(before, -1)) {
			t.Errorf("second Ensure changed the table:\nbefore %s\nafter %s", before, after)
		}
	})
	t.Run("options change keeps bans", func(t *testing.T) {
		n2 := mustNFT(t, ns, NFTOptions{Reject: true}) // Ensure runs in mustNFT
		out := listTable(t, ns)
		assertContains(t, out, "reject with tcp reset", "192.0.2.1 timeout 1h", "2001:db8:1::/64 timeout 1h")
		if strings.Contains(out, " drop") {
			t.Errorf("old drop rules left:\n%s", out)
		}
		if err := n.Ensure(ctx); err != nil { // and back
			t.Fatal(err)
		}
		assertHolds(t, n2, ban...)
	})
	t.Run("rebuild and reconcile after flush ruleset", func(t *testing.T) {
		ns.exec(t, "nft", "flush", "ruleset")
		if _, err := n.List(ctx); err == nil || !strings.Contains(err.Error(), "Ensure recreates it") {
			t.Errorf("List on a flushed ruleset = %v, want an error advising Ensure", err)
		}
		if err := n.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		assertContains(t, listTable(t, ns), "ip saddr @addrs4 tcp dport @ports counter packets 0 bytes 0 drop")
		added, removed, err := Reconcile(ctx, n, ban)
		if err != nil || added != 2 || removed != 0 {
			t.Fatalf("Reconcile = %d, %d, %v; want 2 added", added, removed, err)
		}
		assertHolds(t, n, ban...)
	})
	t.Run("rebuild after a set is replaced", func(t *testing.T) {
		ns.exec(t, "nft", "flush", "chain", "inet", "smtpban", "input")
		ns.exec(t, "nft", "delete", "set", "inet", "smtpban", "nets6")
		ns.exec(t, "nft", "add", "set", "inet", "smtpban", "nets6", "{ type ipv6_addr; }")
		if err := n.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		out := listTable(t, ns)
		assertContains(t, out, "set nets6 {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n", "ip6 saddr @nets6 tcp dport @ports")
		assertContains(t, out, "192.0.2.1 timeout 1h") // untouched set kept its element
	})
	t.Run("uninstall", func(t *testing.T) {
		if err := n.Uninstall(ctx); err != nil {
			t.Fatal(err)
		}
		if out := ns.exec(t, "nft", "list", "tables"); strings.Contains(out, "smtpban") {
			t.Errorf("table still there: %s", out)
		}
		if err := n.Uninstall(ctx); err != nil {
			t.Errorf("second Uninstall: %v", err)
		}
	})
}

func TestNFTWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := mustNetNS(t)
	n := mustNFT(t, ns, NFTOptions{Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ch := n.Watch(ctx)
	time.Sleep(100 * time.Millisecond) // let the subscription start
	// Our own element churn does not signal.
	mustAdd(t, n, Entry{pfx("192.0.2.1/32"), time.Hour})
	if err := n.Remove(ctx, []netip.Prefix{pfx("192.0.2.1/32")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Watch signalled on smtpban's own element changes")
	case <-time.After(300 * time.Millisecond):
	}
	ns.exec(t, "nft", "flush", "ruleset")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not signal after nft flush ruleset")
	}
	cancel()
	for range ch { // closes when ctx ends
	}
}

// TestNFTLargeBatch crosses the per-message and per-batch chunk limits.
func TestNFTLargeBatch(t *testing.T) {
	t.Parallel()
	ns := mustNetNS(t)
	n := mustNFT(t, ns, NFTOptions{})
	const count = 30_000
	es := make([]Entry, 0, count+2*1000)
	for i := range count {
		es = append(es, Entry{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), time.Hour})
	}
	for i := range 1000 {
		es = append(es, Entry{netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 64), time.Hour})
		es = append(es, Entry{netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i >> 8), byte(i), 0}), 24), time.Hour})
	}
	mustAdd(t, n, es...)
	mustAdd(t, n, es...) // refresh of all of them
	got := mustList(t, n)
	if len(got) != len(es) {
		t.Fatalf("List has %d entries, want %d", len(got), len(es))
	}
	if err := n.Remove(context.Background(), prefixes(es)); err != nil {
		t.Fatal(err)
	}
	if got := mustList(t, n); len(got) != 0 {
		t.Fatalf("after Remove List has %d entries", len(got))
	}
}

// TestNFTRefusedAmongMany puts prefixes the kernel refuses (nested in held
// ones) amid a batch that spans several netlink messages: only they stay out.
func TestNFTRefusedAmongMany(t *testing.T) {
	t.Parallel()
	ns := mustNetNS(t)
	n := mustNFT(t, ns, NFTOptions{})
	held := []Entry{{pfx("10.20.0.0/16"), time.Hour}, {pfx("2001:db8:ff00::/40"), time.Hour}}
	mustAdd(t, n, held...)
	bad := []Entry{{pfx("10.20.5.0/24"), time.Hour}, {pfx("2001:db8:ff12::/48"), time.Hour}}
	var good []Entry
	for i := range 3000 {
		good = append(good, Entry{netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i>>8), byte(i), 0}), 24), time.Hour})
		good = append(good, Entry{netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48), time.Hour})
	}
	batch := slices.Concat(good[:2000], bad[:1], good[2000:4000], bad[1:], good[4000:])
	start := time.Now()
	err := n.Add(context.Background(), batch)
	t.Logf("Add of %d with %d refused took %v", len(batch), len(bad), time.Since(start))
	if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), "2 of 6002 prefixes refused") ||
		!strings.Contains(err.Error(), "10.20.5.0/24") || !strings.Contains(err.Error(), "2001:db8:ff12::/48") {
		t.Errorf("Add = %v, want ErrOverlap naming the 2 nested prefixes", err)
	}
	if got := mustList(t, n); len(got) != len(good)+len(held) {
		t.Errorf("List has %d entries, want %d", len(got), len(good)+len(held))
	}
}

func prefixes(es []Entry) []netip.Prefix {
	ps := make([]netip.Prefix, len(es))
	for i, e := range es {
		ps[i] = e.Prefix
	}
	return ps
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
