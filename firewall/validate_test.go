package firewall

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestLimitsCheck(t *testing.T) {
	cases := []struct {
		name string
		lim  Limits
		in   string
		want string // "" = refused
	}{
		{"v4 host", Limits{}, "192.0.2.1/32", "192.0.2.1/32"},
		{"v4 host bits cleared", Limits{}, "192.0.2.1/24", "192.0.2.0/24"},
		{"v4 at minimum", Limits{}, "10.1.0.0/16", "10.1.0.0/16"},
		{"v4 below minimum", Limits{}, "10.0.0.0/15", ""},
		{"v4 custom minimum", Limits{MinV4: 24}, "10.1.0.0/16", ""},
		{"v6 /64", Limits{}, "2001:db8:1:2::5/64", "2001:db8:1:2::/64"},
		{"v6 below minimum", Limits{}, "2001:db8::/31", ""},
		{"v6 custom minimum", Limits{MinV6: 8}, "2a00::/8", "2a00::/8"},
		{"mapped host", Limits{}, "::ffff:192.0.2.1/128", "192.0.2.1/32"},
		{"mapped prefix", Limits{}, "::ffff:10.1.0.0/112", "10.1.0.0/16"},
		{"mapped too short", Limits{}, "::ffff:10.0.0.0/100", ""},
		{"v4 default route", Limits{MinV4: -1}, "0.0.0.0/0", ""},
		{"v6 default route", Limits{MinV6: -1}, "::/0", ""},
		{"unparsable", Limits{}, "fe80::1%eth0/128", ""},
		// Never banned, whatever the limits (see internal/neverban).
		{"v4 loopback", Limits{}, "127.0.0.1/32", ""},
		{"v4 multicast", Limits{}, "224.0.0.1/32", ""},
		{"v4 link-local", Limits{}, "169.254.1.1/32", ""},
		{"v4 limited broadcast", Limits{}, "255.255.255.255/32", ""},
		{"v4 reserved", Limits{}, "240.1.2.3/32", ""},
		{"v4 this network", Limits{}, "0.1.2.3/32", ""},
		{"v4 holds loopback", Limits{MinV4: 7}, "126.0.0.0/7", ""},
		{"v6 loopback", Limits{}, "::1/128", ""},
		{"v6 link-local", Limits{}, "fe80::1/128", ""},
		{"v6 multicast", Limits{}, "ff02::1/128", ""},
		{"mapped loopback", Limits{}, "::ffff:127.0.0.1/128", ""},
		{"compatible loopback", Limits{}, "::127.0.0.1/128", ""},
		{"nat64 loopback", Limits{}, "64:ff9b::7f00:1/128", ""},
		{"nat64 itself", Limits{}, "64:ff9b::/96", ""},
		{"nat64 public", Limits{}, "64:ff9b::cb00:7107/128", "64:ff9b::cb00:7107/128"},
		{"6to4 loopback", Limits{}, "2002:7f00:1::/48", ""},
		{"6to4 itself", Limits{MinV6: 16}, "2002::/16", ""},
		{"6to4 public", Limits{}, "2002:cb00:7107::/48", "2002:cb00:7107::/48"},
		{"first global /3", Limits{MinV6: 3}, "2000::/3", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.lim.Check(Entry{Prefix: pfxOrZero(c.in), Timeout: time.Minute})
			if c.want == "" {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("Check(%s) = %v, %v; want ErrRefused", c.in, got, err)
				}
				return
			}
			if err != nil || got.Prefix != pfx(c.want) {
				t.Fatalf("Check(%s) = %v, %v; want %s", c.in, got, err, c.want)
			}
		})
	}
}

// pfxOrZero parses s, giving the invalid zero Prefix when it does not parse.
func pfxOrZero(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p
}

func TestIntervalRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.0.0/16", "255.255.0.0/16", "2001:db8:1::/64", "ffff:ffff::/32"} {
		t.Run(s, func(t *testing.T) {
			p := pfx(s)
			els := elements(p, time.Minute)
			// The kernel dumps ends before starts; decode must not care.
			els[0], els[len(els)-1] = els[len(els)-1], els[0]
			for i := range els {
				if !els[i].IntervalEnd {
					els[i].Expires = time.Minute
				}
			}
			got, err := decodeIntervals(els)
			if err != nil || len(got) != 1 || got[0].Prefix != p || got[0].Timeout != time.Minute {
				t.Fatalf("decodeIntervals(elements(%s)) = %v, %v", s, got, err)
			}
		})
	}
}
