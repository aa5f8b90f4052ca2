package state

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

func TestAllowSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)
	for p, u := range map[string]time.Time{"203.0.113.7/32": until, "2001:db8::/64": {}, "198.51.100.0/24": until} {
		if err := s.PutAllow(netip.MustParsePrefix(p), u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAllow(netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAllow(netip.MustParsePrefix("192.0.2.1/32")); err != nil {
		t.Fatalf("deleting an absent entry: %v", err)
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Allows()
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]time.Time{
		netip.MustParsePrefix("203.0.113.7/32"): until,
		netip.MustParsePrefix("2001:db8::/64"):  {},
	}
	if len(got) != len(want) {
		t.Fatalf("Allows() = %v, want %v", got, want)
	}
	for p, u := range want {
		if g, ok := got[p]; !ok || !g.Equal(u) {
			t.Errorf("Allows()[%s] = %v, %v; want %v", p, g, ok, u)
		}
	}
}
