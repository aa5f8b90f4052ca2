package jails

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"smtpban/internal/neverban"
)

func TestIgnoreList(t *testing.T) {
	l := NewIgnoreList(
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("192.0.2.128/25"), // inside the previous one
		netip.MustParsePrefix("198.51.100.0/25"),
		netip.MustParsePrefix("198.51.100.128/25"), // adjacent: merges
		netip.MustParsePrefix("2001:db8:1::/48"),
		netip.MustParsePrefix("::ffff:203.0.113.0/120"), // mapped: 203.0.113.0/24
		netip.MustParsePrefix("10.1.2.3/8"),             // unmasked
	)
	own := l.With(netip.MustParsePrefix("203.0.113.250/32"), netip.MustParsePrefix("2001:db8:ffff::1/128"))
	tests := []struct {
		addr       string
		list, with bool
	}{
		{"127.0.0.1", true, true},
		{"127.255.255.254", true, true},
		{"::1", true, true},
		{"0.0.0.0", true, true},
		{"::", true, true},
		{"::ffff:127.0.0.1", true, true},
		{"192.0.2.1", true, true},
		{"192.0.2.255", true, true},
		{"192.0.3.0", false, false},
		{"198.51.100.0", true, true},
		{"198.51.100.255", true, true},
		{"198.51.101.0", false, false},
		{"2001:db8:1:ffff::1", true, true},
		{"2001:db8:2::1", false, false},
		{"203.0.113.9", true, true},
		{"::ffff:203.0.113.9", true, true},
		{"10.200.0.1", true, true},
		{"11.0.0.1", false, false},
		{"2001:db8:ffff::1", false, true},
		{"2001:db8:ffff::2", false, false},
		{"8.8.8.8", false, false},
		{"2001:db8:ffff::3", false, false},
		// Never banned, whatever the list holds (see internal/neverban).
		{"::2", true, true}, // IPv4-compatible 0.0.0.2: "this network"
		{"::127.0.0.1", true, true},
		{"64:ff9b::7f00:1", true, true},
		{"64:ff9b::cb00:7107", false, false},
		{"2002:7f00:1::1", true, true},
		{"2002:cb00:7107::1", false, false},
		{"224.0.0.1", true, true},
		{"169.254.1.1", true, true},
		{"255.255.255.255", true, true},
		{"0.1.2.3", true, true},
		{"240.1.2.3", true, true},
		{"fe80::1%eth0", true, true},
		{"ff02::1", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			if got := l.Contains(a); got != tt.list {
				t.Errorf("list: got %v, want %v", got, tt.list)
			}
			if got := own.Contains(a); got != tt.with {
				t.Errorf("with own: got %v, want %v", got, tt.with)
			}
		})
	}
	var nilList *IgnoreList
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "224.0.0.1"} {
		if !nilList.Contains(netip.MustParseAddr(s)) {
			t.Errorf("nil list must hold never-banned %s", s)
		}
	}
	if nilList.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("nil list must hold only the defaults")
	}
	if l.Contains(netip.Addr{}) {
		t.Error("invalid address must not be contained")
	}
}

// TestIgnoreListMatchesLinear checks the binary search against a plain
// loop over hundreds of random prefixes.
func TestIgnoreListMatchesLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var ps []netip.Prefix
	for range 500 {
		if r.IntN(2) == 0 {
			a := netip.AddrFrom4([4]byte{byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			ps = append(ps, netip.PrefixFrom(a, 8+r.IntN(25)).Masked())
		} else {
			var b [16]byte
			b[0], b[1], b[2] = 0x20, 0x01, byte(r.IntN(4))
			b[3] = byte(r.IntN(256))
			a := netip.AddrFrom16(b)
			ps = append(ps, netip.PrefixFrom(a, 16+r.IntN(100)).Masked())
		}
	}
	l := NewIgnoreList(ps...)
	for i := range 20000 {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		} else {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, byte(r.IntN(4)), byte(r.IntN(256))
			b[4] = byte(r.IntN(256))
			a = netip.AddrFrom16(b)
		}
		want := neverban.Addr(a) != ""
		for _, p := range ps {
			want = want || p.Contains(a)
		}
		if got := l.Contains(a); got != want {
			t.Fatalf("%s: got %v, want %v", a, got, want)
		}
	}
}

func BenchmarkIgnoreContains(b *testing.B) {
	var ps []netip.Prefix
	for i := range 500 {
		ps = append(ps, netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)))
	}
	l := NewIgnoreList(ps...)
	a := netip.MustParseAddr("10.1.77.5")
	b.ReportAllocs()
	for b.Loop() {
		if !l.Contains(a) {
			b.Fatal("not contained")
		}
	}
}
