package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// DryRun is a Backend that only remembers and logs what it would do.
type DryRun struct {
	log *slog.Logger
	now func() time.Time
	lim Limits

	mu    sync.Mutex
	until map[netip.Prefix]time.Time
}

// DryRun holds nothing in the kernel: of the optional abilities it only
// checks entries.
var (
	_ Backend = (*DryRun)(nil)
	_ Checker = (*DryRun)(nil)
)

// NewDryRun returns an empty DryRun backend.
func NewDryRun(logger *slog.Logger, now func() time.Time, lim Limits) *DryRun {
	return &DryRun{log: logger, now: now, lim: lim.withDefaults(), until: map[netip.Prefix]time.Time{}}
}

// Check validates and normalizes e as Add would.
func (d *DryRun) Check(e Entry) (Entry, error) { return d.lim.Check(e) }

// Add records entries with their expiry, replacing any earlier expiry. It
// refuses overlapping prefixes as NFT does, so that what works on a dry run
// works in the kernel.
func (d *DryRun) Add(ctx context.Context, entries []Entry) error {
	es, err := d.lim.checkAll(entries)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var refused []error
	for _, e := range es {
		if q, ok := d.overlapping(e.Prefix, now); ok {
			refused = append(refused, fmt.Errorf("prefix %v: %w (%v)", e.Prefix, ErrOverlap, q))
			continue
		}
		d.until[e.Prefix] = now.Add(e.Timeout)
		d.log.Info("would ban", "prefix", e.Prefix, "timeout", e.Timeout)
	}
	if len(refused) > 0 {
		return fmt.Errorf("add: %d of %d prefixes refused: %w", len(refused), len(es), errors.Join(refused...))
	}
	return nil
}

// overlapping returns an unexpired prefix other than p that is inside or
// around it. Single addresses live in sets of their own in nftables, apart
// from prefixes, so they overlap nothing.
func (d *DryRun) overlapping(p netip.Prefix, now time.Time) (netip.Prefix, bool) {
	if p.IsSingleIP() {
		return netip.Prefix{}, false
	}
	for q, u := range d.until {
		if q != p && !q.IsSingleIP() && q.Overlaps(p) && u.After(now) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// Remove forgets prefixes; absent ones are ignored.
func (d *DryRun) Remove(ctx context.Context, prefixes []netip.Prefix) error {
	ps := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		n, err := Normalize(p)
		if err != nil {
			return err
		}
		ps = append(ps, n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ps {
		delete(d.until, p)
		d.log.Info("would unban", "prefix", p)
	}
	return nil
}

// List returns the unexpired entries with their remaining time, sorted.
func (d *DryRun) List(ctx context.Context) ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	out := make([]Entry, 0, len(d.until))
	for p, u := range d.until {
		left := u.Sub(now)
		if left <= 0 {
			delete(d.until, p) // expired, as the kernel would have dropped it
			continue
		}
		out = append(out, Entry{Prefix: p, Timeout: left})
	}
	sortEntries(out)
	return out, nil
}

// Close does nothing: there is nothing to release.
func (d *DryRun) Close() error { return nil }

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i].Prefix, es[j].Prefix
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
}
