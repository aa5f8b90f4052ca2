package jails

import (
	"net/netip"
	"testing"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		in      string
		want    Key
		wantErr bool
	}{
		{"", Key{32, 128}, false},
		{"ip", Key{32, 128}, false},
		{"ip/24", Key{24, 128}, false},
		{"ip4/16", Key{16, 128}, false},
		{"ip6/64", Key{32, 64}, false},
		{"ip/24,ip6/64", Key{24, 64}, false},
		{"ip6/48, ip/24", Key{24, 48}, false},
		{"ip/33", Key{}, true},
		{"ip/4", Key{}, true},
		{"ip6/129", Key{}, true},
		{"ip6/8", Key{}, true},
		{"ip/x", Key{}, true},
		{"ip/24,ip/16", Key{}, true},
		{"net/24", Key{}, true},
		{"ip6", Key{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if err == nil {
				back, err := ParseKey(got.String())
				if err != nil || back != got {
					t.Errorf("String() %q does not parse back: %+v %v", got.String(), back, err)
				}
			}
		})
	}
}

func TestKeyPrefix(t *testing.T) {
	tests := []struct {
		name string
		key  Key
		addr string
		want string
	}{
		{"zero key v4", Key{}, "192.0.2.77", "192.0.2.77/32"},
		{"zero key v6", Key{}, "2001:db8::1", "2001:db8::1/128"},
		{"v4 /24", Key{24, 128}, "192.0.2.77", "192.0.2.0/24"},
		{"v4 /24 leaves v6", Key{24, 128}, "2001:db8::1", "2001:db8::1/128"},
		{"v6 /64", Key{32, 64}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"v6 /64 leaves v4", Key{32, 64}, "192.0.2.77", "192.0.2.77/32"},
		{"mapped is v4", Key{24, 64}, "::ffff:192.0.2.77", "192.0.2.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.key.Prefix(netip.MustParseAddr(tt.addr))
			if got != netip.MustParsePrefix(tt.want) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if p := (Key{}).Prefix(netip.Addr{}); p.IsValid() {
		t.Errorf("invalid address gave %s", p)
	}
}
