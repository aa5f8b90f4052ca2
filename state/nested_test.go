package state

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestBansWithin(t *testing.T) {
	s := mustOpen(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, p := range []string{
		"2001:db8:1:1::/64", "2001:db8:1:2::/64", "2001:db8:1::/48", // the /48 and two inside it
		"2001:db8:2:1::/64",                // the next /48
		"203.0.113.7/32", "203.0.113.0/24", // IPv4 keys interleave with IPv6 ones
		"198.51.100.9/32", "2001:db8:0:ffff::/64", // just below the /48
	} {
		if _, err := s.PutBan(Ban{Prefix: netip.MustParsePrefix(p), Jail: "j", Since: t0, Until: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	within := func(w string) []string {
		t.Helper()
		bs, err := s.BansWithin(netip.MustParsePrefix(w))
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
	for _, tt := range []struct {
		within string
		want   []string
	}{
		{"2001:db8:1::/48", []string{"2001:db8:1:1::/64", "2001:db8:1:2::/64"}},
		{"2001:db8::/32", []string{"2001:db8:0:ffff::/64", "2001:db8:1:1::/64", "2001:db8:1:2::/64", "2001:db8:1::/48", "2001:db8:2:1::/64"}},
		{"203.0.113.0/24", []string{"203.0.113.7/32"}},
		{"203.0.0.0/16", []string{"203.0.113.0/24", "203.0.113.7/32"}},
		{"192.0.2.0/24", nil},
	} {
		if got := within(tt.within); !slices.Equal(got, tt.want) {
			t.Errorf("BansWithin(%s) = %v, want %v", tt.within, got, tt.want)
		}
	}
}
