package firewall

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink limits: a set-element list is one attribute with a 16-bit length,
// and a whole batch goes out in one sendmsg, bounded by the socket's send
// buffer (raised by bigBuffers).
const (
	maxListBytes  = 60_000
	maxBatchBytes = 2 << 20
	sockBufBytes  = 8 << 20
)

// bigBuffers raises the socket buffers past the sysctl caps (needs
// CAP_NET_ADMIN, which nftables needs anyway) so large batches fit, and asks
// the kernel not to echo whole requests back in error acks.
func bigBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBufBytes)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBufBytes)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("raise netlink socket buffers: %w", err)
	}
	return c.SetOption(netlink.CapAcknowledge, true)
}

// elemBytes estimates an element's encoded size.
func elemBytes(el nftables.SetElement) int {
	n := 4 + 8 + (len(el.Key)+3)&^3 // list item, key nest and value
	if el.Timeout != 0 {
		n += 12
	}
	if el.IntervalEnd {
		n += 8
	}
	return n
}

// group is one prefix's elements in its set: a key, or an interval's start
// and end. A failed batch is split along groups to find the prefix at fault.
type group struct {
	prefix netip.Prefix
	els    []nftables.SetElement
}

// bySet holds groups by element set, in elementSets' order.
type bySet [4][]group

// elementSets names the element sets in the order apply visits them.
func elementSets() [4]string { return [4]string{setAddrs4, setAddrs6, setNets4, setNets6} }

// groupsBySet encodes normalized entries, by set. The slices are sized up
// front: a restore passes 100,000 entries.
func groupsBySet(es []Entry) bySet {
	var counts [4]int
	for _, e := range es {
		counts[setIndex(e.Prefix)]++
	}
	var groups bySet
	for i, c := range counts {
		if c > 0 {
			groups[i] = make([]group, 0, c)
		}
	}
	for _, e := range es {
		i := setIndex(e.Prefix)
		groups[i] = append(groups[i], group{e.Prefix, elements(e.Prefix, e.Timeout)})
	}
	return groups
}

// span is a run of groups[set][lo:hi] queued in the current batch.
type span struct {
	set, lo, hi int
}

// apply sends element groups, by set, in as few batches as the limits
// allow. For an add, each chunk is sent as add, delete, add in one batch:
// the first add makes the delete safe for absent elements, the delete drops
// an existing element so the second add sets a fresh timeout on any kernel
// (re-adding alone only updates timeouts on 6.10+, and only when the value
// differs). A remove is add then delete, so absent elements do not fail the
// batch.
// The kernel applies a batch whole or not at all, so when one fails over
// an element (an overlapping interval), isolate sends it again in parts:
// the other groups go in, and the refused ones come back in refused, each
// naming its prefix. err is for failures that are not an element's.
func (n *NFT) apply(ctx context.Context, groups *bySet, add bool) (refused []error, err error) {
	batch := 0
	var pending []span
	flush := func() error {
		if batch == 0 {
			return nil
		}
		err := n.conn.Flush()
		queued := pending
		batch, pending = 0, nil
		if err == nil {
			return nil
		}
		var gs []setGroup
		for _, sp := range queued {
			for _, g := range groups[sp.set][sp.lo:sp.hi] {
				gs = append(gs, setGroup{n.lay.sets[elementSets()[sp.set]], g})
			}
		}
		iso := isolation{ctx: ctx, add: add}
		if err := n.isolate(&iso, gs, err); err != nil {
			return err
		}
		refused = append(refused, iso.refused...)
		return nil
	}
	for si, name := range elementSets() {
		set := n.lay.sets[name]
		gs := groups[si]
		// Fast path only until a chunk of this set turns out to hold
		// present elements: a restore over a full table then pays one
		// failed batch, not one per chunk.
		tryNew := add && (name == setAddrs4 || name == setAddrs6)
		var chunk []nftables.SetElement
		size, lo := 0, 0
		send := func(hi int) error {
			if len(chunk) == 0 {
				return nil
			}
			if tryNew {
				// New elements need no delete: try that first.
				ok, err := n.addNew(set, chunk)
				if err != nil {
					return err
				}
				tryNew = ok
				if ok {
					chunk, size, lo = nil, 0, hi
					if batch > 0 {
						return nil // a slow batch is queued: flush it first
					}
					return ctx.Err()
				}
			}
			if err := n.queue(set, chunk, add); err != nil {
				return err
			}
			pending = append(pending, span{si, lo, hi})
			batch += 3 * size
			chunk, size, lo = nil, 0, hi
			if batch >= maxBatchBytes-3*maxListBytes {
				if err := flush(); err != nil {
					return err
				}
				// Checked only between batches so nothing half-built stays queued.
				return ctx.Err()
			}
			return nil
		}
		for i, g := range gs {
			gsize := 0
			for _, el := range g.els {
				gsize += elemBytes(el)
			}
			if size+gsize > maxListBytes {
				if err := send(i); err != nil {
					return nil, err
				}
			}
			chunk = append(chunk, g.els...)
			size += gsize
		}
		if err := send(len(gs)); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return refused, nil
}

// queue adds one chunk's messages to the batch: add, delete, add for an
// add, add, delete for a remove (see apply).
func (n *NFT) queue(set *nftables.Set, els []nftables.SetElement, add bool) error {
	if err := n.conn.SetAddElements(set, els); err != nil {
		return err
	}
	if err := n.conn.SetDeleteElements(set, els); err != nil {
		return err
	}
	if add {
		return n.conn.SetAddElements(set, els)
	}
	return nil
}

// setGroup is a group with its set, for isolate.
type setGroup struct {
	set *nftables.Set
	group
}

// maxBlind bounds isolate while none of its batches has gone in: a kernel
// error that refuses every element, unknown to elementFault, would
// otherwise cost a batch per element.
const maxBlind = 64

// isolation is the progress of one isolate.
type isolation struct {
	ctx     context.Context
	add     bool
	refused []error
	landed  bool // some batch went in: the failures are the elements'
}

// isolate finds the groups at fault in gs, whose batch failed with err, by
// sending each half again on its own, down to single groups. k refused
// groups out of n cost about 2k·log2(n) batches.
func (n *NFT) isolate(iso *isolation, gs []setGroup, err error) error {
	if !elementFault(err) || (!iso.landed && len(iso.refused) >= maxBlind) {
		return err
	}
	if len(gs) == 1 {
		p := gs[0].prefix
		cause := firstErrno(err)
		switch {
		case !overlap(cause):
			iso.refused = append(iso.refused, fmt.Errorf("prefix %v: %w", p, cause))
		case iso.add:
			iso.refused = append(iso.refused, fmt.Errorf("prefix %v: %w (%w)", p, ErrOverlap, cause))
		default:
			// The probing add of a remove hit a different, overlapping
			// interval: this one is not in the set, which is no error.
		}
		return nil
	}
	mid := len(gs) / 2
	for _, half := range [][]setGroup{gs[:mid], gs[mid:]} {
		if err := iso.ctx.Err(); err != nil {
			return err
		}
		serr := n.sendNow(half, iso.add)
		if serr == nil {
			iso.landed = true
			continue
		}
		if err := n.isolate(iso, half, serr); err != nil {
			return err
		}
	}
	return nil
}

// sendNow sends groups, no more than one batch's worth, as one batch.
func (n *NFT) sendNow(gs []setGroup, add bool) error {
	var els []nftables.SetElement
	size := 0
	for i, g := range gs {
		gsize := 0
		for _, el := range g.els {
			gsize += elemBytes(el)
		}
		if len(els) > 0 && (gs[i-1].set != g.set || size+gsize > maxListBytes) {
			if err := n.queue(gs[i-1].set, els, add); err != nil {
				return err
			}
			els, size = nil, 0
		}
		els = append(els, g.els...)
		size += gsize
	}
	if len(els) > 0 {
		if err := n.queue(gs[len(gs)-1].set, els, add); err != nil {
			return err
		}
	}
	return n.conn.Flush()
}
