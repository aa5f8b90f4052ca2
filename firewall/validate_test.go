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
		{"v6 custom minimum", Limits{MinV6: 8}, "2000::/8", "2000::/8"},
		{"mapped host", Limits{}, "::ffff:192.0.2.1/128", "192.0.2.1/32"},
		{"mapped prefix", Limits{}, "::ffff:10.1.0.0/112", "10.1.0.0/16"},
		{"mapped too short", Limits{}, "::ffff:10.0.0.0/100", ""},
		{"v4 default route", Limits{MinV4: -1}, "0.0.0.0/0", ""},
		{"v6 default route", Limits{MinV6: -1}, "::/0", ""},
		{"unparsable", Limits{}, "fe80::1%eth0/128", ""},
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
