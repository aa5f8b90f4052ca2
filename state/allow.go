package state

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The allow list is the admin's runtime addition to the ignore list
// (`smtpban allow`); it survives restarts like the bans do.

// PutAllow adds p (masked) until the given time; zero means for good.
func (s *Store) PutAllow(p netip.Prefix, until time.Time) error {
	var v [8]byte
	if !until.IsZero() {
		binary.BigEndian.PutUint64(v[:], uint64(until.UnixNano()))
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllow).Put(prefixKey(p.Masked()), v[:])
	})
	if err != nil {
		return fmt.Errorf("put allow %s: %w", p, err)
	}
	return nil
}

// DeleteAllow removes p (masked); absent is not an error.
func (s *Store) DeleteAllow(p netip.Prefix) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllow).Delete(prefixKey(p.Masked()))
	})
	if err != nil {
		return fmt.Errorf("delete allow %s: %w", p, err)
	}
	return nil
}

// Allows returns the allow list; a zero time means permanent.
func (s *Store) Allows() (map[netip.Prefix]time.Time, error) {
	out := map[netip.Prefix]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllow).ForEach(func(k, v []byte) error {
			p, err := keyPrefix(k)
			if err != nil {
				return err
			}
			if len(v) != 8 {
				return fmt.Errorf("%w: allow entry %s is %d bytes, want 8", ErrCorrupt, p, len(v))
			}
			var until time.Time
			if n := binary.BigEndian.Uint64(v); n != 0 {
				until = time.Unix(0, int64(n)).UTC()
			}
			out[p] = until
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list allow entries: %w", err)
	}
	return out, nil
}
