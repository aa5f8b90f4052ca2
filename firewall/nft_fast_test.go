package firewall

import (
	"testing"
	"time"
)

// TestAddNewFallback covers the exclusive fast path of Add and its
// fallback: a batch mixing new and present elements fails as a whole with
// EEXIST and must still add the new ones and refresh the present ones,
// on a kernel where a plain re-add would leave the old timeout.
func TestAddNewFallback(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, then []Entry
		want        []Entry
	}{
		{
			name:  "all new",
			first: nil,
			then:  []Entry{{pfx("192.0.2.1/32"), time.Hour}, {pfx("2001:db8::1/128"), time.Hour}},
			want:  []Entry{{pfx("192.0.2.1/32"), time.Hour}, {pfx("2001:db8::1/128"), time.Hour}},
		},
		{
			name:  "mixed ipv4",
			first: []Entry{{pfx("192.0.2.1/32"), time.Hour}},
			then:  []Entry{{pfx("192.0.2.1/32"), 10 * time.Minute}, {pfx("192.0.2.2/32"), 2 * time.Hour}},
			want:  []Entry{{pfx("192.0.2.1/32"), 10 * time.Minute}, {pfx("192.0.2.2/32"), 2 * time.Hour}},
		},
		{
			name:  "mixed ipv6 and nets",
			first: []Entry{{pfx("2001:db8::1/128"), 2 * time.Hour}, {pfx("198.51.100.0/24"), time.Hour}},
			then:  []Entry{{pfx("2001:db8::2/128"), time.Hour}, {pfx("2001:db8::1/128"), 20 * time.Minute}, {pfx("198.51.100.0/24"), 3 * time.Hour}},
			want:  []Entry{{pfx("2001:db8::1/128"), 20 * time.Minute}, {pfx("2001:db8::2/128"), time.Hour}, {pfx("198.51.100.0/24"), 3 * time.Hour}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := mustNFT(t, mustNetNS(t), NFTOptions{})
			if tc.first != nil {
				mustAdd(t, n, tc.first...)
			}
			mustAdd(t, n, tc.then...)
			assertHolds(t, n, tc.want...)
		})
	}
}
