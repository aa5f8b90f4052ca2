package firewall

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// watchRetry is how long Watch waits before subscribing again after the
// monitor failed to start.
const watchRetry = time.Second

// Watch signals (coalesced: at most one pending) whenever smtpban's table may
// have been changed by someone else: a table, chain, set or rule deleted
// (`nft flush ruleset`, a firewalld reload), or the monitor lost events.
// Element deletions are not watched, since smtpban makes plenty itself; the
// caller's periodic Reconcile catches those, and also what a monitor
// overflowing under bulk adds would miss. The channel closes when ctx ends.
func (n *NFT) Watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			if err := n.monitor(ctx, signal); err != nil {
				n.log.Warn("nftables monitor lost, resubscribing", "err", err)
				signal() // events may have been missed
				select {
				case <-ctx.Done():
				case <-time.After(watchRetry):
				}
			}
		}
	}()
	return out
}

// monitor runs one netlink monitor subscription until ctx ends (nil) or the
// subscription fails.
func (n *NFT) monitor(ctx context.Context, signal func()) error {
	mon := nftables.NewMonitor(
		// Any/Any: v0.3.0 filters other selections with a precedence bug
		// ((flags&1)<<type) that drops or passes everything; skipElements
		// does the filtering in the kernel instead.
		nftables.WithMonitorAction(nftables.MonitorActionAny),
		nftables.WithMonitorObject(nftables.MonitorObjectAny),
		nftables.WithMonitorEventBuffer(64),
	)
	// Its own Conn: the monitor's socket is separate from n.conn's work.
	conn, err := nftables.New(nftables.WithNetNSFd(n.opts.NetNS), nftables.WithSockOptions(bigBuffers, skipElements))
	if err != nil {
		return advise("open nftables monitor", err)
	}
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return advise("subscribe to nftables events", err)
	}
	defer func() {
		_ = mon.Close()
		for range events { // let the monitor goroutine finish its last send
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case evs, ok := <-events:
			if !ok {
				return errMonitorClosed
			}
			for _, ev := range evs.Changes {
				if ev.Type == nftables.MonitorEventTypeOOB {
					return advise("nftables monitor", ev.Error)
				}
				if n.concerns(ev) {
					signal()
				}
			}
		}
	}
}

// concerns reports whether a deletion event touches smtpban's table. Set
// events carry no table name, so any set deletion counts.
func (n *NFT) concerns(ev *nftables.MonitorEvent) bool {
	var t *nftables.Table
	switch d := ev.Data.(type) {
	case *nftables.Table:
		t = d
	case *nftables.Chain:
		t = d.Table
	case *nftables.Rule:
		t = d.Table
	case *nftables.Set:
		return ev.Type == nftables.MonitorEventTypeDelSet
	default:
		return false
	}
	return t == nil || t.Name == n.opts.Table
}

// skipElements installs a socket filter dropping set-element notifications
// before they reach the monitor: a bulk add makes one per element and would
// overflow the socket, while Watch only cares about structural deletions.
// Each notification is its own datagram, so its first header decides.
func skipElements(c *netlink.Conn) error {
	// nlmsg_type sits at offset 4 in host byte order; BPF loads big endian.
	typ := func(msg uint16) uint32 {
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], unix.NFNL_SUBSYS_NFTABLES<<8|msg)
		return uint32(binary.BigEndian.Uint16(b[:]))
	}
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: typ(unix.NFT_MSG_NEWSETELEM), SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: typ(unix.NFT_MSG_DELSETELEM), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff_ffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return fmt.Errorf("assemble monitor filter: %w", err)
	}
	return c.SetBPF(prog)
}
