package jails

import (
	"net/netip"
	"testing"
	"time"
)

// TestWindowsOf checks `smtpban show`'s view of the counter: the window of
// each jail counting an address, under each jail's own key (the address,
// or its /24), and nothing for an address no window counts.
func TestWindowsOf(t *testing.T) {
	a := testJail(t, "a", nil, []string{"x <HOST>"}, nil)
	a.MaxRetry = 10
	b := testJail(t, "b", nil, []string{"y <HOST>"}, nil)
	b.MaxRetry, b.Key = 10, Key{24, 64}
	c := NewCounter(0, a, b)
	t0 := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	add := func(j *Jail, addr string, n int) {
		for i := range n {
			c.Add(Hit{Jail: j, Addr: netip.MustParseAddr(addr), Time: t0.Add(time.Duration(i) * time.Second)})
		}
	}
	add(a, "192.0.2.7", 2)
	add(b, "192.0.2.8", 3) // the /24 of 192.0.2.7 too
	add(a, "198.51.100.1", 1)

	ws := c.WindowsOf(netip.MustParseAddr("192.0.2.7"))
	if len(ws) != 2 {
		t.Fatalf("windows %+v, want one of a and one of b", ws)
	}
	for _, w := range ws {
		switch {
		case w.Jail == "a" && w.Key == netip.MustParsePrefix("192.0.2.7/32") && len(w.Times) == 2:
		case w.Jail == "b" && w.Key == netip.MustParsePrefix("192.0.2.0/24") && len(w.Times) == 3 && w.Times[2].Equal(t0.Add(2*time.Second)):
		default:
			t.Errorf("window %+v", w)
		}
	}
	if ws := c.WindowsOf(netip.MustParseAddr("::ffff:192.0.2.7")); len(ws) != 2 {
		t.Errorf("IPv4-mapped: %d windows, want 2", len(ws))
	}
	if ws := c.WindowsOf(netip.MustParseAddr("203.0.113.9")); len(ws) != 0 {
		t.Errorf("uncounted address: %+v", ws)
	}
}
