package jails

import (
	"cmp"
	"net/netip"
	"slices"

	"smtpban/internal/neverban"
)

// IgnoreList is a set of CIDRs that are never banned. It always holds
// loopback (127.0.0.0/8, ::1), the unspecified addresses, and whatever else
// neverban refuses (multicast, link-local, IPv4 loopback inside 6to4, ...).
// Lookups are a binary search over merged address ranges, so hundreds of
// CIDRs cost a handful of comparisons. A nil *IgnoreList holds only the
// defaults.
type IgnoreList struct {
	prefixes []netip.Prefix // as given (masked), for With
	ranges   []addrRange    // sorted, merged, non-overlapping
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ lo, hi netip.Addr }

var defaultIgnore = [...]netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("::/128"),
}

// NewIgnoreList returns a list of ps plus the defaults. Invalid prefixes
// are skipped (the config reports them); IPv4-mapped IPv6 prefixes are
// taken as the IPv4 prefixes they denote.
func NewIgnoreList(ps ...netip.Prefix) *IgnoreList {
	l := &IgnoreList{}
	l.prefixes = append(l.prefixes, defaultIgnore[:]...)
	for _, p := range ps {
		if p = normalize(p); p.IsValid() {
			l.prefixes = append(l.prefixes, p)
		}
	}
	l.build()
	return l
}

// With returns a new list holding l's prefixes and ps, for adding the
// host's own addresses or a jail's own ignore list.
func (l *IgnoreList) With(ps ...netip.Prefix) *IgnoreList {
	var base []netip.Prefix
	if l != nil {
		base = l.prefixes[len(defaultIgnore):]
	}
	return NewIgnoreList(append(slices.Clip(base), ps...)...)
}

// Contains reports whether a is in the list. a is unmapped first.
func (l *IgnoreList) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return false
	}
	if neverban.Addr(a) != "" {
		return true
	}
	if l == nil {
		return false
	}
	// First range whose hi >= a; a is in it if lo <= a.
	i, _ := slices.BinarySearchFunc(l.ranges, a, func(r addrRange, a netip.Addr) int {
		return r.hi.Compare(a)
	})
	return i < len(l.ranges) && l.ranges[i].lo.Compare(a) <= 0
}

// Prefixes returns the list's prefixes, defaults first.
func (l *IgnoreList) Prefixes() []netip.Prefix {
	if l == nil {
		return slices.Clone(defaultIgnore[:])
	}
	return slices.Clone(l.prefixes)
}

func normalize(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{} // spans beyond the mapped range: meaningless
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a.WithZone(""), bits).Masked()
}

func (l *IgnoreList) build() {
	rs := make([]addrRange, 0, len(l.prefixes))
	for _, p := range l.prefixes {
		rs = append(rs, addrRange{lo: p.Addr(), hi: lastAddr(p)})
	}
	// netip orders every IPv4 address before every IPv6 one, so one sorted
	// slice holds both families without ranges crossing.
	slices.SortFunc(rs, func(a, b addrRange) int {
		return cmp.Or(a.lo.Compare(b.lo), b.hi.Compare(a.hi))
	})
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && merged[n-1].lo.BitLen() == r.lo.BitLen() &&
			(r.lo.Compare(merged[n-1].hi) <= 0 || merged[n-1].hi.Next() == r.lo) {
			if r.hi.Compare(merged[n-1].hi) > 0 {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	l.ranges = slices.Clip(merged)
}

// lastAddr returns the highest address in masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 1 << (7 - i%8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}

// Overlaps reports whether any address of prefix p is in the list: a
// prefix ban must not sweep up an ignored address.
func (l *IgnoreList) Overlaps(p netip.Prefix) bool {
	p = normalize(p)
	if !p.IsValid() {
		return false
	}
	lo, hi := p.Addr(), lastAddr(p)
	if l == nil {
		return NewIgnoreList().Overlaps(p)
	}
	// First range whose hi >= lo; it overlaps p if it starts by hi.
	i, _ := slices.BinarySearchFunc(l.ranges, lo, func(r addrRange, a netip.Addr) int {
		return r.hi.Compare(a)
	})
	return i < len(l.ranges) && l.ranges[i].lo.BitLen() == lo.BitLen() && l.ranges[i].lo.Compare(hi) <= 0
}
