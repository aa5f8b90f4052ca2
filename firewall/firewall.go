// Package firewall applies bans to the kernel. A Backend holds a set of
// banned addresses and prefixes, each with a timeout after which it expires
// by itself. Only this package imports github.com/google/nftables.
package firewall

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ErrOverlap marks a prefix Add refused because it is inside or around a
// different prefix the backend holds: the kernel keeps no nested intervals.
var ErrOverlap = errors.New("overlaps a prefix already banned")

// Entry is one banned address (a /32 or /128 prefix) or prefix, with the
// time it has left.
type Entry struct {
	Prefix  netip.Prefix
	Timeout time.Duration
}

// Backend is where bans take effect.
type Backend interface {
	// Add inserts entries, or refreshes their timeout if present. Entries that
	// fail validation (too short a prefix, a never-banned address, zero
	// timeout) are refused with an error naming the entry, and none of the
	// batch is applied. A prefix that overlaps a different one, held or
	// earlier in the batch, is refused as nftables' interval sets refuse
	// it (single addresses are kept apart and never overlap): the error
	// names it and wraps ErrOverlap, and the rest of the batch is applied,
	// as it is when the kernel refuses any single element. Reconcile never
	// asks for overlapping prefixes.
	Add(ctx context.Context, entries []Entry) error
	// Remove deletes entries; absent ones, prefixes inside a held wider one
	// among them, are not an error.
	Remove(ctx context.Context, prefixes []netip.Prefix) error
	// List returns what the backend holds now, with the time each has left.
	List(ctx context.Context) ([]Entry, error)
	// Close releases the backend, leaving the bans in place.
	Close() error
}
