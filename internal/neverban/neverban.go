// Package neverban says which addresses and prefixes must never be banned,
// whatever the config: a log line is partly the client's text, and an
// attacker who gets loopback, multicast or an IPv6 form carrying them into
// one must not be able to aim a ban at them.
package neverban

import "net/netip"

// class is a range of addresses no ban may touch.
type class struct {
	prefix netip.Prefix
	reason string
}

// v4 lists the IPv4 classes. Narrower ones come before the ranges holding
// them, so that an address gets the most precise reason.
var v4 = [...]class{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "limited broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// v6 lists the IPv6 classes judged on the IPv6 address itself.
var v6 = [...]class{
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// embedding is an IPv6 range whose addresses carry an IPv4 address at bit
// offset off: such an address is judged as the IPv4 address it carries.
type embedding struct {
	prefix netip.Prefix
	off    int // a multiple of 8
	name   string
}

var embeddings = [...]embedding{
	{netip.MustParsePrefix("::ffff:0:0/96"), 96, "IPv4-mapped"},
	{netip.MustParsePrefix("::/96"), 96, "IPv4-compatible"}, // RFC 4291 2.5.5.1, deprecated
	{netip.MustParsePrefix("64:ff9b::/96"), 96, "NAT64"},    // RFC 6052 well-known prefix
	{netip.MustParsePrefix("2002::/16"), 16, "6to4"},        // RFC 3056: 2002:AABB:CCDD::/48
}

// Addr says why a must never be banned, or "" if it may be. The zone is
// ignored; an invalid address is never banned.
func Addr(a netip.Addr) (reason string) {
	if !a.IsValid() {
		return "invalid address"
	}
	return Prefix(netip.PrefixFrom(a.WithZone(""), a.BitLen()))
}

// Prefix says why p must never be banned, or "" if it may be: p is refused
// if any address in it is refused by Addr. Host bits are ignored; an invalid
// prefix is never banned.
func Prefix(p netip.Prefix) (reason string) {
	if !p.IsValid() {
		return "invalid prefix"
	}
	p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
	if p.Addr().Is4() {
		return prefix4(p)
	}
	return prefix6(p)
}

// prefix4 judges a masked IPv4 prefix. Two prefixes overlap exactly when one
// holds the other, so p overlapping a class means p holds a refused address.
func prefix4(p netip.Prefix) string {
	for _, c := range v4 {
		if c.prefix.Overlaps(p) {
			return c.reason
		}
	}
	return ""
}

// prefix6 judges a masked IPv6 prefix.
func prefix6(p netip.Prefix) string {
	for _, c := range v6 {
		if c.prefix.Overlaps(p) {
			return c.reason
		}
	}
	for _, e := range embeddings {
		if !e.prefix.Overlaps(p) {
			continue
		}
		// The part of p inside e carries the IPv4 prefix that p's fixed
		// bits spell in the IPv4 field; every address of it occurs, since
		// the bits after the field are free. p holding all of e carries
		// all of IPv4.
		n := max(0, min(32, p.Bits()-e.off))
		b := p.Addr().As16()
		q := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[e.off/8:e.off/8+4])), n).Masked()
		if r := prefix4(q); r != "" {
			return "IPv4 " + r + " inside " + e.name
		}
	}
	return ""
}
