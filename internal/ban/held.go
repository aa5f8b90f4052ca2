package ban

import (
	"net/netip"
	"time"

	"smtpban/state"
)

// held is the manager's view of the bans in state: enough to tell, without
// a read transaction, whether a key is banned already or lies inside a
// wider ban. Under a botnet burst those lookups were a third of the cost
// of each ban (a transaction and up to 127 lookups per decision).
type held struct {
	bans map[netip.Prefix]span
	// bits counts bans per prefix length and family (index: bits, +129
	// for IPv6), so that covering looks only at lengths that are held.
	bits [2 * 129]int
}

type span struct{ since, until time.Time }

func newHeld() *held { return &held{bans: map[netip.Prefix]span{}} }

func lenIndex(p netip.Prefix) int {
	if p.Addr().Is4() {
		return p.Bits()
	}
	return 129 + p.Bits()
}

func (h *held) put(b state.Ban) {
	if _, ok := h.bans[b.Prefix]; !ok {
		h.bits[lenIndex(b.Prefix)]++
	}
	h.bans[b.Prefix] = span{since: b.Since, until: b.Until}
}

func (h *held) drop(p netip.Prefix) {
	if _, ok := h.bans[p]; ok {
		h.bits[lenIndex(p)]--
		delete(h.bans, p)
	}
}

// active returns p's ban if it is in force at now.
func (h *held) active(p netip.Prefix, now time.Time) (span, bool) {
	s, ok := h.bans[p]
	return s, ok && (s.until.IsZero() || s.until.After(now))
}

// covering returns the longest ban in force at now that strictly
// contains p, or the zero prefix.
func (h *held) covering(p netip.Prefix, now time.Time) netip.Prefix {
	base := 0
	if !p.Addr().Is4() {
		base = 129
	}
	for bits := p.Bits() - 1; bits >= 0; bits-- {
		if h.bits[base+bits] == 0 {
			continue
		}
		q, _ := p.Addr().Prefix(bits)
		if _, ok := h.active(q, now); ok {
			return q
		}
	}
	return netip.Prefix{}
}

// load replaces the view with the bans in state.
func (h *held) load(bs []state.Ban) {
	*h = *newHeld()
	for _, b := range bs {
		h.put(b)
	}
}
