package firewall

import (
	"maps"
	"net/netip"
	"testing"
	"time"
)

// TestCoverNested folds chains of nested prefixes into the widest, with the
// longest time, and leaves addresses and disjoint prefixes alone.
func TestCoverNested(t *testing.T) {
	wanted := map[netip.Prefix]time.Duration{
		pfx("203.0.0.0/16"):      5 * time.Minute,
		pfx("203.0.113.0/24"):    time.Hour,
		pfx("203.0.113.16/28"):   2 * time.Hour,
		pfx("203.0.113.1/32"):    3 * time.Hour,
		pfx("198.51.100.0/24"):   time.Minute,
		pfx("2001:db8:1::/48"):   time.Hour,
		pfx("2001:db8:1:2::/64"): time.Minute,
	}
	coverNested(wanted)
	want := map[netip.Prefix]time.Duration{
		pfx("203.0.0.0/16"):    2 * time.Hour,
		pfx("203.0.113.1/32"):  3 * time.Hour,
		pfx("198.51.100.0/24"): time.Minute,
		pfx("2001:db8:1::/48"): time.Hour,
	}
	if !maps.Equal(wanted, want) {
		t.Errorf("coverNested = %v, want %v", wanted, want)
	}
}
