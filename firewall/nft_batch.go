package firewall

import (
	"context"
	"fmt"

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

// apply sends element groups (one group per prefix: a key, or an interval's
// start and end) in as few batches as the limits allow. For an add, each
// chunk is sent as add, delete, add in one batch: the first add makes the
// delete safe for absent elements, the delete drops an existing element
// so the second add sets a fresh timeout on any kernel (re-adding alone only
// updates timeouts on 6.10+, and only when the value differs). A remove is
// add then delete, so absent elements do not fail the batch.
func (n *NFT) apply(ctx context.Context, groups map[string][][]nftables.SetElement, add bool) error {
	batch := 0
	flush := func() error {
		if batch == 0 {
			return nil
		}
		batch = 0
		return n.conn.Flush()
	}
	for _, name := range []string{setAddrs4, setAddrs6, setNets4, setNets6} {
		set := n.lay.sets[name]
		// Fast path only until a chunk of this set turns out to hold
		// present elements: a restore over a full table then pays one
		// failed batch, not one per chunk.
		tryNew := add && (name == setAddrs4 || name == setAddrs6)
		var chunk []nftables.SetElement
		size := 0
		send := func() error {
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
					chunk, size = nil, 0
					if batch > 0 {
						return nil // a slow batch is queued: flush it first
					}
					return ctx.Err()
				}
			}
			if err := n.conn.SetAddElements(set, chunk); err != nil {
				return err
			}
			if err := n.conn.SetDeleteElements(set, chunk); err != nil {
				return err
			}
			if add {
				if err := n.conn.SetAddElements(set, chunk); err != nil {
					return err
				}
			}
			batch += 3 * size
			chunk, size = nil, 0
			if batch >= maxBatchBytes-3*maxListBytes {
				if err := flush(); err != nil {
					return err
				}
				// Checked only between batches so nothing half-built stays queued.
				return ctx.Err()
			}
			return nil
		}
		for _, g := range groups[name] {
			gs := 0
			for _, el := range g {
				gs += elemBytes(el)
			}
			if size+gs > maxListBytes {
				if err := send(); err != nil {
					return err
				}
			}
			chunk = append(chunk, g...)
			size += gs
		}
		if err := send(); err != nil {
			return err
		}
	}
	return flush()
}
