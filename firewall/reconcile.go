package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// ReconcileTolerance is how far an element's remaining time may drift from
// the wanted one before Reconcile refreshes it. Kernel timeouts tick in
// milliseconds and List takes time, so exact equality is never expected.
const ReconcileTolerance = 2 * time.Second

// Checker is implemented by backends that can say in advance whether Add
// would refuse an entry (both DryRun and NFT do).
type Checker interface {
	Check(Entry) (Entry, error)
}

// Ensurer is implemented by backends that keep state of their own in the
// kernel (NFT's table, sets and chain). Ensure creates it, or repairs it
// after someone else removed or changed it; it is idempotent, so it is
// called before every Reconcile.
type Ensurer interface {
	Ensure(context.Context) error
}

// Watcher is implemented by backends that can tell when someone else may
// have changed what they hold (NFT: a table, chain, set or rule deleted).
// The channel signals, coalesced, that an Ensure and Reconcile are due,
// and closes when ctx ends.
type Watcher interface {
	Watch(ctx context.Context) <-chan struct{}
}

// Uninstaller is implemented by backends that can remove what they put in
// the kernel, bans included (NFT deletes its table). Close, by contrast,
// leaves the bans working.
type Uninstaller interface {
	Uninstall(context.Context) error
}

// Reconcile makes b hold exactly want: it adds what is missing with its
// remaining time, refreshes elements whose time drifted by more than
// ReconcileTolerance (counted in added), and removes strays. Entries with no
// time left are treated as gone. Entries b refuses are skipped so that one bad
// record cannot block a restore: the rest is applied and the returned error
// wraps ErrRefused. A prefix inside another wanted one is covered by it: only
// the wider is kept, with the longer of their timeouts, since nftables'
// interval sets refuse nested prefixes (see Backend.Add). Single addresses
// are not folded into prefixes: they never conflict with them.
func Reconcile(ctx context.Context, b Backend, want []Entry) (added, removed int, err error) {
	check := Limits{}.Check
	if c, ok := b.(Checker); ok {
		check = c.Check
	}
	var refused []error
	wanted := make(map[netip.Prefix]time.Duration, len(want))
	for _, e := range want {
		if e.Timeout <= 0 {
			continue
		}
		n, err := check(e)
		if err != nil {
			refused = append(refused, err)
			continue
		}
		if n.Timeout > wanted[n.Prefix] {
			wanted[n.Prefix] = n.Timeout
		}
	}
	coverNested(wanted)

	have, err := b.List(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reconcile: list: %w", err)
	}
	var strays []netip.Prefix
	for _, h := range have {
		w, ok := wanted[h.Prefix]
		switch {
		case !ok:
			strays = append(strays, h.Prefix)
		case (w - h.Timeout).Abs() <= ReconcileTolerance:
			delete(wanted, h.Prefix) // already right
		}
	}
	if len(strays) > 0 {
		if err := b.Remove(ctx, strays); err != nil {
			return 0, 0, fmt.Errorf("reconcile: remove %d strays: %w", len(strays), err)
		}
	}
	adds := make([]Entry, 0, len(wanted))
	for p, t := range wanted {
		adds = append(adds, Entry{Prefix: p, Timeout: t})
	}
	sortEntries(adds)
	if len(adds) > 0 {
		if err := b.Add(ctx, adds); err != nil {
			return 0, len(strays), fmt.Errorf("reconcile: add %d: %w", len(adds), err)
		}
	}
	if len(refused) > 0 {
		return len(adds), len(strays), fmt.Errorf("reconcile: skipped %d entries: %w", len(refused), errors.Join(refused...))
	}
	return len(adds), len(strays), nil
}

// coverNested folds each prefix inside a wider wanted one into it, keeping
// the longer timeout. Single addresses are left alone, so that an address
// banned for long does not stretch the ban of a whole prefix.
func coverNested(wanted map[netip.Prefix]time.Duration) {
	var nets []netip.Prefix
	for p := range wanted {
		if !p.IsSingleIP() {
			nets = append(nets, p)
		}
	}
	// Widest first: a prefix's container is settled before it, and a
	// prefix folded away is no longer found as a container.
	slices.SortFunc(nets, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
	for _, p := range nets {
		for bits := range p.Bits() {
			q := netip.PrefixFrom(p.Addr(), bits).Masked()
			if t, ok := wanted[q]; ok {
				wanted[q] = max(t, wanted[p])
				delete(wanted, p)
				break
			}
		}
	}
}
