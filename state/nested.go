package state

import (
	"bytes"
	"fmt"
	"net/netip"

	bolt "go.etcd.io/bbolt"
)

// BansWithin returns the stored bans on prefixes inside w (w itself
// excluded), expired but not yet swept included. Ban keys sort by address
// first, so this is one cursor walk over w's range, not a scan of all bans.
func (s *Store) BansWithin(w netip.Prefix) ([]Ban, error) {
	w = w.Masked()
	start := w.Addr().AsSlice()
	last := lastAddr(w).AsSlice()
	var out []Ban
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBans).Cursor()
		for k, v := c.Seek(start); k != nil; k, v = c.Next() {
			if len(k) != len(start)+1 {
				continue // the other family: IPv4 and IPv6 keys interleave
			}
			if bytes.Compare(k[:len(start)], last) > 0 {
				break
			}
			b, err := decodeBan(v)
			if err != nil {
				return fmt.Errorf("key %x: %w", k, err)
			}
			if b.Prefix.Bits() > w.Bits() && w.Contains(b.Prefix.Addr()) {
				out = append(out, b)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bans within %s: %w", w, err)
	}
	return out, nil
}

// lastAddr is the highest address in masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// BanHistories returns BanHistory's count for each of ps, in one read
// transaction: a burst of bans reads them all at once.
func (s *Store) BanHistories(ps []netip.Prefix) (map[netip.Prefix]int, error) {
	out := make(map[netip.Prefix]int, len(ps))
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, p := range ps {
			p = p.Masked()
			h, err := getHistory(tx, prefixKey(p))
			if err != nil {
				return err
			}
			out[p] = h.count
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ban histories: %w", err)
	}
	return out, nil
}
