package ban

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"smtpban/jails"
	"smtpban/state"
)

// recorder is a Publisher that remembers what it was handed.
type recorder struct {
	published []state.Ban
	manual    []bool
	withdrawn []netip.Prefix
}

func (r *recorder) Publish(bs []state.Ban, manual bool) {
	r.published = append(r.published, bs...)
	for range bs {
		r.manual = append(r.manual, manual)
	}
}
func (r *recorder) Withdraw(ps []netip.Prefix) { r.withdrawn = append(r.withdrawn, ps...) }

func remote(p string, until time.Duration) Remote {
	return Remote{Prefix: netip.MustParsePrefix(p), Jail: "sasl", Origin: "mx2", Reason: "line", Since: t0, Until: t0.Add(until), Failures: 3}
}

// TestRemoteProtection: another host's bans pass the same protection as
// this host's own, are recorded with their origin and reason, one
// transaction and one firewall batch, and are not published again.
func TestRemoteProtection(t *testing.T) {
	m, st, fw := testManager(t)
	pub := &recorder{}
	m.pub = pub
	if _, err := m.Allow(context.Background(), netip.MustParsePrefix("203.0.113.99/32"), 0); err != nil {
		t.Fatal(err)
	}
	puts, adds := st.puts, fw.adds
	res, err := m.Remote(context.Background(), []Remote{
		remote("192.0.2.7/32", time.Hour),    // global ignore list
		remote("198.51.100.1/32", time.Hour), // this host's own (and so a peer's, see PolicyFor)
		remote("127.0.0.1/32", time.Hour),    // never banned
		remote("203.0.113.99/32", time.Hour), // allow list
		remote("10.0.0.0/8", time.Hour),      // wider than min_prefix (16)
		remote("203.0.113.7/32", -time.Minute),
		remote("203.0.113.8/32", time.Hour),
		remote("203.0.113.9/32", time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Refused != 5 || res.Skipped != 1 || len(res.Applied) != 2 {
		t.Errorf("refused %d skipped %d applied %d, want 5, 1 (over already), 2", res.Refused, res.Skipped, len(res.Applied))
	}
	if st.puts != puts+1 || fw.adds != adds+1 {
		t.Errorf("%d transactions and %d firewall batches, want 1 and 1", st.puts-puts, fw.adds-adds)
	}
	if got, want := prefixes(t, st), []string{"203.0.113.8/32", "203.0.113.9/32"}; !slices.Equal(got, want) {
		t.Errorf("bans %v, want %v", got, want)
	}
	b := res.Applied[0]
	if b.Origin != "mx2" || b.Jail != "sasl" || !slices.Equal(b.Lines, []string{"line"}) || b.Failures != 3 {
		t.Errorf("applied %+v: want origin mx2, the jail, the reason and failures", b)
	}
	if len(pub.published) != 0 {
		t.Errorf("remote bans published again: %+v", pub.published)
	}
}

// TestRemoteLaterUntilWins: a remote ban never shortens a ban held here;
// a later one extends it.
func TestRemoteLaterUntilWins(t *testing.T) {
	m, st, _ := testManager(t)
	p := netip.MustParsePrefix("203.0.113.7/32")
	if _, err := m.Ban(context.Background(), p, "", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	res, _ := m.Remote(context.Background(), []Remote{remote("203.0.113.7/32", time.Hour)})
	if len(res.Applied) != 0 || res.Skipped != 1 {
		t.Errorf("an earlier remote until was applied: %+v", res)
	}
	res, _ = m.Remote(context.Background(), []Remote{remote("203.0.113.7/32", 3*time.Hour)})
	if len(res.Applied) != 1 {
		t.Fatalf("a later remote until was not applied: %+v", res)
	}
	bs, _ := st.Bans()
	if len(bs) != 1 || !bs[0].Until.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("bans %+v, want one until +3h", bs)
	}
}

// TestPublishAndWithdraw: bans this host makes are handed to the
// Publisher (by hand marked so); Unban withdraws them everywhere,
// UnbanLocal and RemoteLift do not.
func TestPublishAndWithdraw(t *testing.T) {
	m, _, _ := testManager(t)
	pub := &recorder{}
	m.pub = pub
	if _, err := m.Decide(context.Background(), []jails.Decision{dec(m, "203.0.113.7")}); err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("203.0.113.8/32")
	if _, err := m.Ban(context.Background(), p, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(pub.published) != 2 || !slices.Equal(pub.manual, []bool{false, true}) {
		t.Fatalf("published %+v manual %v", pub.published, pub.manual)
	}
	if _, err := m.UnbanLocal(context.Background(), UnbanMatch(p, "", false)); err != nil {
		t.Fatal(err)
	}
	if len(pub.withdrawn) != 0 {
		t.Errorf("a local unban withdrew %v", pub.withdrawn)
	}
	q := netip.MustParsePrefix("203.0.113.7/32")
	if lifted, err := m.RemoteLift(context.Background(), []netip.Prefix{q}); err != nil || len(lifted) != 1 {
		t.Fatalf("RemoteLift: %v %v", lifted, err)
	}
	if len(pub.withdrawn) != 0 {
		t.Errorf("a remote lift withdrew %v", pub.withdrawn)
	}
	if _, err := m.Ban(context.Background(), p, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Unban(context.Background(), UnbanMatch(p, "", false)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pub.withdrawn, []netip.Prefix{p}) {
		t.Errorf("withdrawn %v, want %v", pub.withdrawn, p)
	}
}
