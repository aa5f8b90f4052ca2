package neverban

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestAddr(t *testing.T) {
	cases := []struct {
		name, addr, want string
	}{
		// IPv4
		{"v4 loopback", "127.0.0.1", "loopback"},
		{"v4 loopback top", "127.255.255.255", "loopback"},
		{"v4 below loopback", "126.255.255.255", ""},
		{"v4 above loopback", "128.0.0.0", ""},
		{"v4 unspecified", "0.0.0.0", "unspecified"},
		{"this network", "0.1.2.3", "this network"},
		{"this network top", "0.255.255.255", "this network"},
		{"v4 first public", "1.0.0.0", ""},
		{"v4 link-local", "169.254.1.1", "link-local"},
		{"v4 link-local top", "169.254.255.255", "link-local"},
		{"v4 beside link-local", "169.255.0.1", ""},
		{"v4 multicast", "224.0.0.1", "multicast"},
		{"v4 multicast top", "239.255.255.255", "multicast"},
		{"v4 below multicast", "223.255.255.255", ""},
		{"reserved", "240.1.2.3", "reserved"},
		{"reserved top", "255.255.255.254", "reserved"},
		{"limited broadcast", "255.255.255.255", "limited broadcast"},
		{"v4 documentation", "203.0.113.7", ""},
		{"v4 private", "10.1.2.3", ""},
		// IPv6
		{"v6 loopback", "::1", "loopback"},
		{"v6 unspecified", "::", "unspecified"},
		{"v6 link-local", "fe80::1", "link-local"},
		{"v6 link-local top", "febf:ffff::1", "link-local"},
		{"v6 beside link-local", "fec0::1", ""},
		{"v6 link-local zone", "fe80::1%eth0", "link-local"},
		{"v6 global zone", "2001:db8::1%eth0", ""},
		{"v6 multicast", "ff02::1", "multicast"},
		{"v6 multicast top", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"},
		{"v6 below multicast", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
		{"v6 documentation", "2001:db8::1", ""},
		// IPv4 inside IPv6
		{"mapped loopback", "::ffff:127.0.0.1", "IPv4 loopback inside IPv4-mapped"},
		{"mapped unspecified", "::ffff:0.0.0.0", "IPv4 unspecified inside IPv4-mapped"},
		{"mapped broadcast", "::ffff:255.255.255.255", "IPv4 limited broadcast inside IPv4-mapped"},
		{"mapped public", "::ffff:203.0.113.7", ""},
		{"compatible loopback", "::127.0.0.1", "IPv4 loopback inside IPv4-compatible"},
		{"compatible this network", "::2", "IPv4 this network inside IPv4-compatible"},
		{"compatible multicast", "::224.0.0.1", "IPv4 multicast inside IPv4-compatible"},
		{"compatible public", "::203.0.113.7", ""},
		{"nat64 loopback", "64:ff9b::7f00:1", "IPv4 loopback inside NAT64"},
		{"nat64 link-local", "64:ff9b::a9fe:101", "IPv4 link-local inside NAT64"},
		{"nat64 public", "64:ff9b::cb00:7107", ""},
		{"nat64 local-use is not the well-known prefix", "64:ff9b:1::7f00:1", ""},
		{"6to4 loopback", "2002:7f00:1::1", "IPv4 loopback inside 6to4"},
		{"6to4 loopback any suffix", "2002:7f00:1:ffff:ffff:ffff:ffff:ffff", "IPv4 loopback inside 6to4"},
		{"6to4 reserved", "2002:f001:203::", "IPv4 reserved inside 6to4"},
		{"6to4 unspecified", "2002::1", "IPv4 unspecified inside 6to4"},
		{"6to4 this network", "2002:1::1", "IPv4 this network inside 6to4"},
		{"6to4 public", "2002:cb00:7107::1", ""},
		{"beside 6to4", "2003:7f00:1::1", ""},
		// Invalid
		{"invalid", "", "invalid address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a netip.Addr
			if c.addr != "" {
				a = netip.MustParseAddr(c.addr)
			}
			if got := Addr(a); got != c.want {
				t.Errorf("Addr(%s) = %q, want %q", c.addr, got, c.want)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	cases := []struct {
		name, prefix, want string
	}{
		// IPv4: a prefix is refused if it holds, or lies in, a class.
		{"v4 host", "203.0.113.7/32", ""},
		{"v4 /24", "203.0.113.0/24", ""},
		{"v4 /8 public", "11.0.0.0/8", ""},
		{"loopback /8", "127.0.0.0/8", "loopback"},
		{"inside loopback", "127.1.0.0/16", "loopback"},
		{"holds loopback", "127.0.0.0/7", "loopback"},
		{"126/8 beside loopback", "126.0.0.0/8", ""},
		{"holds unspecified", "0.0.0.0/7", "unspecified"},
		{"this network high half", "0.128.0.0/9", "this network"},
		{"1/8 beside this network", "1.0.0.0/8", ""},
		{"holds link-local", "169.0.0.0/8", "link-local"},
		{"inside link-local", "169.254.7.0/24", "link-local"},
		{"beside link-local", "169.253.0.0/16", ""},
		{"holds multicast and reserved", "192.0.0.0/2", "multicast"},
		{"just below multicast", "223.255.0.0/16", ""},
		{"reserved /8", "250.0.0.0/8", "reserved"},
		{"limited broadcast /24", "255.255.255.0/24", "limited broadcast"},
		{"v4 all", "0.0.0.0/0", "loopback"},
		{"host bits ignored", "127.1.2.3/16", "loopback"},
		// IPv6
		{"v6 /64", "2001:db8:1:2::/64", ""},
		{"v6 all", "::/0", "unspecified"},
		{"holds loopback ::1", "::/127", "unspecified"},
		{"loopback ::1/128", "::1/128", "loopback"},
		{"v6 holds link-local", "fe80::/9", "link-local"},
		{"v6 below link-local", "fe00::/9", ""},
		{"v6 beside link-local", "fec0::/10", ""},
		{"v6 holds link-local and multicast", "f000::/4", "link-local"},
		{"v6 multicast /8", "ff00::/8", "multicast"},
		{"inside multicast", "ff02::/16", "multicast"},
		{"first /3 global", "2000::/3", "IPv4 loopback inside 6to4"},
		{"2001::/16 beside 6to4", "2001::/16", ""},
		{"6to4 itself", "2002::/16", "IPv4 loopback inside 6to4"},
		{"6to4 public /48", "2002:cb00:7107::/48", ""},
		{"6to4 public /32", "2002:cb00::/32", ""},
		{"6to4 /24 holds reserved", "2002:f000::/24", "IPv4 reserved inside 6to4"},
		{"6to4 /17 high half", "2002:8000::/17", "IPv4 link-local inside 6to4"},
		{"6to4 multicast /20", "2002:e000::/20", "IPv4 multicast inside 6to4"},
		{"6to4 /17 low half", "2002::/17", "IPv4 loopback inside 6to4"},
		{"6to4 /64 of loopback", "2002:7f00:1:2::/64", "IPv4 loopback inside 6to4"},
		{"nat64 itself", "64:ff9b::/96", "IPv4 loopback inside NAT64"},
		{"holds nat64", "64:ff9b::/32", "IPv4 loopback inside NAT64"},
		{"nat64 public /120", "64:ff9b::cb00:7100/120", ""},
		{"nat64 /97 low half", "64:ff9b::/97", "IPv4 loopback inside NAT64"},
		{"nat64 loopback /104", "64:ff9b::7f00:0/104", "IPv4 loopback inside NAT64"},
		{"mapped itself", "::ffff:0:0/96", "IPv4 loopback inside IPv4-mapped"},
		{"mapped public /120", "::ffff:203.0.113.0/120", ""},
		{"mapped loopback /104", "::ffff:127.0.0.0/104", "IPv4 loopback inside IPv4-mapped"},
		{"compatible public /120", "::203.0.113.0/120", ""},
		{"compatible /112 of this network", "::0.1.0.0/112", "IPv4 this network inside IPv4-compatible"},
		{"holds mapped and compatible", "::/80", "unspecified"},
		{"v6 host bits ignored", "2002:7f00:1::1/48", "IPv4 loopback inside 6to4"},
		// Invalid
		{"invalid", "", "invalid prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p netip.Prefix
			if c.prefix != "" {
				p = netip.MustParsePrefix(c.prefix)
			}
			if got := Prefix(p); got != c.want {
				t.Errorf("Prefix(%s) = %q, want %q", c.prefix, got, c.want)
			}
		})
	}
}

// refusedNaive is an independent oracle for Addr, built on netip's own
// predicates and on byte tests rather than on the class tables.
func refusedNaive(a netip.Addr) bool {
	a = a.WithZone("")
	if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		return true
	}
	if a.Is4() {
		b := a.As4()
		return b[0] == 0 || b[0] >= 240
	}
	b := a.As16()
	v4 := func(i int) bool { return refusedNaive(netip.AddrFrom4([4]byte(b[i : i+4]))) }
	switch {
	case a.Is4In6():
		return v4(12)
	case b == [16]byte{12: b[12], b[13], b[14], b[15]}: // ::a.b.c.d
		return v4(12)
	case b == [16]byte{0, 0x64, 0xff, 0x9b, 12: b[12], b[13], b[14], b[15]}:
		return v4(12)
	case b[0] == 0x20 && b[1] == 0x02:
		return v4(2)
	}
	return false
}

// FuzzPrefix checks that Prefix refuses exactly the prefixes holding a
// refused address. From p it walks down to a random address one bit at a
// time: under an accepted prefix every step is accepted and the address
// too; under a refused one, a refused half always exists and leads to an
// address refusedNaive refuses, so no refusal is groundless.
func FuzzPrefix(f *testing.F) {
	for _, s := range []string{
		"127.0.0.0/7", "0.0.0.0/0", "203.0.113.0/24", "169.254.0.0/15", "224.0.0.0/3",
		"::/0", "2000::/3", "2002::/16", "2002:cb00:7107::/48", "64:ff9b::/96",
		"64:ff9b::cb00:7100/120", "::ffff:0:0/96", "::/96", "fe80::/10", "2001:db8::/32",
	} {
		p := netip.MustParsePrefix(s)
		b := p.Addr().AsSlice()
		f.Add(b, uint8(p.Bits()), uint64(1))
	}
	f.Fuzz(func(t *testing.T, raw []byte, bits uint8, seed uint64) {
		var a netip.Addr
		switch len(raw) {
		case 4:
			a = netip.AddrFrom4([4]byte(raw))
		case 16:
			a = netip.AddrFrom16([16]byte(raw))
		default:
			return
		}
		p := netip.PrefixFrom(a, int(bits)%(a.BitLen()+1)).Masked()
		r := rand.New(rand.NewPCG(seed, uint64(bits)))
		refused := Prefix(p) != ""
		for p.Bits() < p.Addr().BitLen() {
			lo, hi := halves(p)
			if r.IntN(2) == 0 {
				lo, hi = hi, lo
			}
			switch {
			case !refused && (Prefix(lo) != "" || Prefix(hi) != ""):
				t.Fatalf("%s accepted, its half %s or %s refused", p, lo, hi)
			case refused && Prefix(lo) == "" && Prefix(hi) == "":
				t.Fatalf("%s refused (%s), both halves %s and %s accepted", p, Prefix(p), lo, hi)
			case refused && Prefix(lo) == "":
				lo = hi
			}
			p = lo
		}
		a = p.Addr()
		if got := Addr(a); (got != "") != refused || refusedNaive(a) != refused {
			t.Fatalf("%s: Addr = %q, oracle %v, want refused %v", a, got, refusedNaive(a), refused)
		}
		if (Addr(a) != "") != (Prefix(p) != "") {
			t.Fatalf("%s: Addr = %q but Prefix(%s) = %q", a, Addr(a), p, Prefix(p))
		}
	})
}

// halves splits p into its two prefixes one bit longer.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	n := p.Bits()
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	b[off+n/8] |= 0x80 >> (n % 8)
	h := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		h = h.Unmap()
	}
	return netip.PrefixFrom(p.Addr(), n+1), netip.PrefixFrom(h, n+1)
}

// TestAddrMatchesOracle compares Addr with refusedNaive over random
// addresses near every class and embedding, where mistakes would hide.
func TestAddrMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var bases []netip.Prefix
	for _, c := range v4 {
		bases = append(bases, c.prefix)
	}
	for _, c := range v6 {
		bases = append(bases, c.prefix)
	}
	for _, e := range embeddings {
		bases = append(bases, e.prefix)
	}
	for range 200000 {
		base := bases[r.IntN(len(bases))]
		// Fix a random number of the base's leading bits (so that
		// neighbours of the class are drawn too), randomise the rest.
		keep := r.IntN(base.Bits() + 1)
		b := base.Addr().As16()
		start := 0
		if base.Addr().Is4() {
			start = 96
		}
		for i := start + keep; i < 128; i++ {
			if r.IntN(2) == 0 {
				b[i/8] ^= 0x80 >> (i % 8)
			}
		}
		a := netip.AddrFrom16(b)
		if base.Addr().Is4() {
			a = a.Unmap()
		}
		if got := Addr(a) != ""; got != refusedNaive(a) {
			t.Fatalf("Addr(%s) = %q, oracle refused = %v", a, Addr(a), refusedNaive(a))
		}
	}
}
