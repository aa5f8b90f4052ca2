package jails

import (
	"net/netip"
	"slices"
)

// WindowsOf returns, for each jail, the live window counting a (under the
// jail's key: the address, or its /24, /64...), copied: `smtpban show`.
// One index lookup per jail, so it does not hold up the line path.
func (c *Counter) WindowsOf(a netip.Addr) []Window {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Window
	for id, j := range c.jails {
		p := j.Key.Prefix(a.Unmap())
		if !p.IsValid() {
			continue
		}
		k := makeKey(normalize(p))
		idx := c.find(uint16(id), k, k.hash(&c.seed, uint16(id)))
		if idx < 0 {
			continue
		}
		c.out, c.outTimes, c.outU, c.outP = c.out[:0], c.outTimes[:0], c.outU[:0], c.outP[:0]
		w := c.appendWindow(c.out, idx)[0]
		w.Times, w.Users, w.Passes = slices.Clone(w.Times), slices.Clone(w.Users), slices.Clone(w.Passes)
		out = append(out, w)
	}
	return out
}
