package ban

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"smtpban/firewall"
	"smtpban/jails"
	"smtpban/state"
)

// TestRestoreAdoptsKernelBans: at start, a ban in the kernel's set that
// state lacks (a lost database) is saved with the time it has left, in
// jail "recovered", and stays in the set; a protected element is not
// adopted and goes.
func TestRestoreAdoptsKernelBans(t *testing.T) {
	m, st, fw := testManager(t)
	ctx := context.Background()
	if _, err := st.PutBans([]state.Ban{{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Jail: "sasl", Since: t0, Until: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := fw.Add(ctx, []firewall.Entry{
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Timeout: time.Hour},
		{Prefix: netip.MustParsePrefix("203.0.113.2/32"), Timeout: 40 * time.Minute},
		{Prefix: netip.MustParsePrefix("2001:db8:7::/64"), Timeout: 10 * time.Minute},
		{Prefix: netip.MustParsePrefix("192.0.2.5/32"), Timeout: time.Hour}, // on the ignore list
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	bans, _ := st.Bans()
	got := map[string]state.Ban{}
	for _, b := range bans {
		got[b.Prefix.String()] = b
	}
	for p, left := range map[string]time.Duration{"203.0.113.2/32": 40 * time.Minute, "2001:db8:7::/64": 10 * time.Minute} {
		b, ok := got[p]
		if !ok {
			t.Errorf("kernel ban %s not adopted; state: %v", p, prefixes(t, st))
			continue
		}
		if b.Jail != Recovered || b.Until.Sub(t0) != left {
			t.Errorf("adopted %s: jail %q, %v left; want %q, %v", p, b.Jail, b.Until.Sub(t0), Recovered, left)
		}
	}
	if _, ok := got["192.0.2.5/32"]; ok {
		t.Error("a protected kernel element was adopted")
	}
	es, _ := fw.List(ctx)
	var inFW []string
	for _, e := range es {
		inFW = append(inFW, e.Prefix.String())
	}
	slices.Sort(inFW)
	if want := []string{"2001:db8:7::/64", "203.0.113.1/32", "203.0.113.2/32"}; !slices.Equal(inFW, want) {
		t.Errorf("firewall after restore: %v, want %v", inFW, want)
	}
}

// TestUnbanUnsaved: a ban state could not save is listed, and unbanning
// it lifts it from the kernel and keeps the retry from making it again.
func TestUnbanUnsaved(t *testing.T) {
	m, st, fw := testManager(t)
	ctx := context.Background()
	st.setFail(errors.New("read-only file system"))
	if _, err := m.Decide(ctx, []jails.Decision{dec(m, "203.0.113.9"), dec(m, "203.0.113.10")}); err == nil {
		t.Fatal("Decide saved with a failing store")
	}
	if n := len(m.Unsaved()); n != 2 {
		t.Fatalf("%d unsaved bans listed, want 2", n)
	}
	lifted, err := m.Unban(ctx, UnbanMatch(netip.MustParsePrefix("203.0.113.9/32"), "", false))
	if err != nil || len(lifted) != 1 {
		t.Fatalf("Unban = %v, %v; want the unsaved ban lifted", lifted, err)
	}
	st.setFail(nil)
	m.retryPending(ctx)
	if got := prefixes(t, st); !slices.Equal(got, []string{"203.0.113.10/32"}) {
		t.Errorf("saved after the retry: %v, want only the ban not lifted", got)
	}
	es, _ := fw.List(ctx)
	if len(es) != 1 || es[0].Prefix != netip.MustParsePrefix("203.0.113.10/32") {
		t.Errorf("firewall holds %v, want only 203.0.113.10", es)
	}
}
