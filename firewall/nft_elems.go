package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
)

// Set names inside smtpban's table. Single addresses and prefixes live apart
// because interval sets load about four times slower.
const (
	setAddrs4 = "addrs4"
	setAddrs6 = "addrs6"
	setNets4  = "nets4"
	setNets6  = "nets6"
	setPorts  = "ports"
)

// setIndex is the index in elementSets of the set an already normalized
// prefix belongs to.
func setIndex(p netip.Prefix) int {
	switch {
	case p.Addr().Is4() && p.IsSingleIP():
		return 0
	case p.Addr().Is4():
		return 2
	case p.IsSingleIP():
		return 1
	default:
		return 3
	}
}

// elements encodes one prefix: one key for a single address; for a prefix
// the interval start (carrying the timeout) and the first address after it,
// flagged as interval end (left out when the prefix reaches the top of the
// address space, as nft does).
func elements(p netip.Prefix, timeout time.Duration) []nftables.SetElement {
	start := p.Addr().AsSlice()
	if p.IsSingleIP() {
		return []nftables.SetElement{{Key: start, Timeout: timeout}}
	}
	els := []nftables.SetElement{{Key: start, Timeout: timeout}}
	if next := lastAddr(p).Next(); next.IsValid() {
		els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
	}
	return els
}

// lastAddr returns the highest address inside p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// decodeSingles turns the elements of a plain address set into entries.
func decodeSingles(els []nftables.SetElement) ([]Entry, error) {
	out := make([]Entry, 0, len(els))
	for _, el := range els {
		a, ok := netip.AddrFromSlice(el.Key)
		if !ok {
			return nil, fmt.Errorf("element key %x is not an address", el.Key)
		}
		out = append(out, Entry{Prefix: netip.PrefixFrom(a, a.BitLen()), Timeout: el.Expires})
	}
	return out, nil
}

// decodeIntervals pairs interval starts with their ends and turns each range
// back into the prefix it was made from. Ranges that are not one CIDR block
// (added by someone else) are skipped: smtpban never makes them.
func decodeIntervals(els []nftables.SetElement) ([]Entry, error) {
	type start struct {
		a   netip.Addr
		exp time.Duration
	}
	var starts []start
	var ends []netip.Addr
	for _, el := range els {
		a, ok := netip.AddrFromSlice(el.Key)
		if !ok {
			return nil, fmt.Errorf("element key %x is not an address", el.Key)
		}
		if el.IntervalEnd {
			ends = append(ends, a)
			continue
		}
		starts = append(starts, start{a, el.Expires})
	}
	slices.SortFunc(ends, netip.Addr.Compare)
	out := make([]Entry, 0, len(starts))
	for _, s := range starts {
		// The end of s is the lowest end above it.
		i, _ := slices.BinarySearchFunc(ends, s.a, netip.Addr.Compare)
		for i < len(ends) && ends[i].Compare(s.a) <= 0 {
			i++
		}
		var last netip.Addr
		if i < len(ends) {
			last = ends[i].Prev()
		} else {
			last = allOnes(s.a)
		}
		p, ok := rangePrefix(s.a, last)
		if !ok {
			continue
		}
		out = append(out, Entry{Prefix: p, Timeout: s.exp})
	}
	return out, nil
}

func allOnes(a netip.Addr) netip.Addr {
	return lastAddr(netip.PrefixFrom(a, 0))
}

// rangePrefix returns the CIDR block that is exactly [first, last].
func rangePrefix(first, last netip.Addr) (netip.Prefix, bool) {
	fb, lb := first.AsSlice(), last.AsSlice()
	bits := 0
	for bits < len(fb)*8 && fb[bits/8]&(0x80>>(bits%8)) == lb[bits/8]&(0x80>>(bits%8)) {
		bits++
	}
	p := netip.PrefixFrom(first, bits)
	if p.Masked().Addr() != first || lastAddr(p) != last {
		return netip.Prefix{}, false
	}
	return p, true
}
