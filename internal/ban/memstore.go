package ban

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"smtpban/state"
)

// MemStore is a Store in memory, for replay: the same rules as
// *state.Store (a ban still in force continued by a new one keeps the
// later end and its count; history counts each new ban), nothing on disk.
// It is not safe for concurrent use; the Manager serializes its calls.
type MemStore struct {
	bans    map[netip.Prefix]state.Ban
	history map[netip.Prefix]int
	last    map[netip.Prefix]time.Time
	allows  map[netip.Prefix]time.Time
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{
		bans:    map[netip.Prefix]state.Ban{},
		history: map[netip.Prefix]int{},
		last:    map[netip.Prefix]time.Time{},
		allows:  map[netip.Prefix]time.Time{},
	}
}

// PutBans stores bans as state.Store.PutBans does.
func (s *MemStore) PutBans(bans []state.Ban) ([]state.Ban, error) {
	out := make([]state.Ban, 0, len(bans))
	for _, b := range bans {
		if !b.Prefix.IsValid() || b.Since.IsZero() {
			return nil, errors.New("invalid ban")
		}
		b.Prefix = b.Prefix.Masked()
		if old, ok := s.bans[b.Prefix]; ok && (old.Until.IsZero() || old.Until.After(b.Since)) {
			b.Count = old.Count
			if old.Until.IsZero() || (!b.Until.IsZero() && old.Until.After(b.Until)) {
				b.Until = old.Until
			}
		} else {
			s.history[b.Prefix]++
			if b.Since.After(s.last[b.Prefix]) {
				s.last[b.Prefix] = b.Since
			}
			b.Count = s.history[b.Prefix]
		}
		s.bans[b.Prefix] = b
		out = append(out, b)
	}
	return out, nil
}

// BanHistory returns how often p was banned and the latest Since.
func (s *MemStore) BanHistory(p netip.Prefix) (int, time.Time, error) {
	p = p.Masked()
	return s.history[p], s.last[p], nil
}

// BanHistories returns BanHistory's count for each of ps.
func (s *MemStore) BanHistories(ps []netip.Prefix) (map[netip.Prefix]int, error) {
	out := make(map[netip.Prefix]int, len(ps))
	for _, p := range ps {
		out[p.Masked()] = s.history[p.Masked()]
	}
	return out, nil
}

// BansWithin returns the bans on prefixes strictly inside w.
func (s *MemStore) BansWithin(w netip.Prefix) ([]state.Ban, error) {
	w = w.Masked()
	var out []state.Ban
	for p, b := range s.bans {
		if p.Bits() > w.Bits() && w.Contains(p.Addr()) {
			out = append(out, b)
		}
	}
	return out, nil
}

// DeleteBan removes the ban on p.
func (s *MemStore) DeleteBan(p netip.Prefix) (state.Ban, bool, error) {
	p = p.Masked()
	b, ok := s.bans[p]
	delete(s.bans, p)
	return b, ok, nil
}

// Bans returns every ban, by Since.
func (s *MemStore) Bans() ([]state.Ban, error) {
	out := make([]state.Ban, 0, len(s.bans))
	for _, b := range s.bans {
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b state.Ban) int { return a.Since.Compare(b.Since) })
	return out, nil
}

// Sweep removes the bans over by now.
func (s *MemStore) Sweep(now time.Time) ([]state.Ban, error) {
	var gone []state.Ban
	for p, b := range s.bans {
		if !b.Until.IsZero() && !b.Until.After(now) {
			gone = append(gone, b)
			delete(s.bans, p)
		}
	}
	return gone, nil
}

// Allows returns the allow list.
func (s *MemStore) Allows() (map[netip.Prefix]time.Time, error) {
	out := make(map[netip.Prefix]time.Time, len(s.allows))
	for p, t := range s.allows {
		out[p] = t
	}
	return out, nil
}

// PutAllow adds p to the allow list.
func (s *MemStore) PutAllow(p netip.Prefix, until time.Time) error {
	s.allows[p] = until
	return nil
}

// DeleteAllow removes p from the allow list.
func (s *MemStore) DeleteAllow(p netip.Prefix) error {
	delete(s.allows, p)
	return nil
}
