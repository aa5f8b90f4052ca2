package jails

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The shortest prefixes a key may count on: anything wider would ban a
// sizeable part of the Internet for one offender.
const (
	MinKeyV4 = 8
	MinKeyV6 = 16
)

// ParseKey parses a jail's key: "ip" (the address, the default), "ip/N"
// (IPv4 addresses counted per /N; IPv6 per address), "ip6/N" (IPv6 per /N;
// IPv4 per address), or "ip/N,ip6/M" for both. "ip4/N" is a synonym of
// "ip/N". The empty string is "ip".
func ParseKey(s string) (Key, error) {
	k := Key{V4Bits: 32, V6Bits: 128}
	s = strings.TrimSpace(s)
	if s == "" || s == "ip" {
		return k, nil
	}
	var seen4, seen6 bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		kind, bits, ok := strings.Cut(part, "/")
		if !ok {
			return Key{}, fmt.Errorf("key %q: %q is not ip, ip/N or ip6/N", s, part)
		}
		n, err := strconv.Atoi(bits)
		if err != nil {
			return Key{}, fmt.Errorf("key %q: prefix length %q is not a number", s, bits)
		}
		switch kind {
		case "ip", "ip4":
			if seen4 {
				return Key{}, fmt.Errorf("key %q: IPv4 prefix given twice", s)
			}
			if n < MinKeyV4 || n > 32 {
				return Key{}, fmt.Errorf("key %q: IPv4 prefix length %d is outside %d..32", s, n, MinKeyV4)
			}
			seen4, k.V4Bits = true, n
		case "ip6":
			if seen6 {
				return Key{}, fmt.Errorf("key %q: IPv6 prefix given twice", s)
			}
			if n < MinKeyV6 || n > 128 {
				return Key{}, fmt.Errorf("key %q: IPv6 prefix length %d is outside %d..128", s, n, MinKeyV6)
			}
			seen6, k.V6Bits = true, n
		default:
			return Key{}, fmt.Errorf("key %q: %q is not ip, ip/N or ip6/N", s, part)
		}
	}
	return k, nil
}

// String formats k the way ParseKey reads it.
func (k Key) String() string {
	v4, v6 := k.bits()
	switch {
	case v4 == 32 && v6 == 128:
		return "ip"
	case v6 == 128:
		return "ip/" + strconv.Itoa(v4)
	case v4 == 32:
		return "ip6/" + strconv.Itoa(v6)
	}
	return "ip/" + strconv.Itoa(v4) + ",ip6/" + strconv.Itoa(v6)
}

// bits returns the prefix lengths, the zero Key meaning the address.
func (k Key) bits() (v4, v6 int) {
	v4, v6 = k.V4Bits, k.V6Bits
	if v4 <= 0 || v4 > 32 {
		v4 = 32
	}
	if v6 <= 0 || v6 > 128 {
		v6 = 128
	}
	return v4, v6
}

// Prefix returns the masked prefix a failure of a is counted against.
// a is unmapped first; an invalid a gives the zero Prefix.
func (k Key) Prefix(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	v4, v6 := k.bits()
	bits := v6
	if a.Is4() {
		bits = v4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
