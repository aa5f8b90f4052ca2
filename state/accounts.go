package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The account watch's records: one value per account (its counts and
// hold, encoded by the watch), and its alerts keyed by account name, a NUL
// and the big-endian time, so one account's alerts are one range, oldest
// first. The buckets are made at the first write; a database without
// them has no accounts.
var (
	bucketAccounts = []byte("accounts")
	bucketAlerts   = []byte("account-alerts")
)

// PutAccounts saves the account records in put and deletes those named in
// del, in one transaction.
func (s *Store) PutAccounts(put map[string][]byte, del []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAccounts)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketAccounts, err)
		}
		for _, u := range del {
			if err := b.Delete([]byte(u)); err != nil {
				return fmt.Errorf("delete account %q: %w", u, err)
			}
		}
		for u, v := range put {
			if u == "" {
				continue // bbolt refuses empty keys
			}
			if err := b.Put([]byte(u), v); err != nil {
				return fmt.Errorf("put account %q: %w", u, err)
			}
		}
		return nil
	})
}

// Accounts returns every saved account record, copied out of the
// transaction.
func (s *Store) Accounts() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

func alertKey(user string, at time.Time) []byte {
	k := append([]byte(user), 0)
	return binary.BigEndian.AppendUint64(k, uint64(unixNanos(at)))
}

// PutAlert saves one alert of user at at. Two alerts of one account at
// the same nanosecond: the later is kept one nanosecond on.
func (s *Store) PutAlert(at time.Time, user string, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAlerts)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketAlerts, err)
		}
		k := alertKey(user, at)
		for b.Get(k) != nil {
			at = at.Add(time.Nanosecond)
			k = alertKey(user, at)
		}
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("put alert of %q: %w", user, err)
		}
		// The alert's time is its log line's: a line dated in the
		// future must not age out every other alert.
		now := time.Now()
		if at.Before(now) {
			now = at
		}
		if _, err := pruneAlerts(b, now.Add(-AlertMaxAge), MaxAlerts); err != nil {
			return fmt.Errorf("put alert of %q: %w", user, err)
		}
		return nil
	})
}

// Alerts are kept AlertMaxAge, and at most MaxAlerts of them: the age is
// what an admin looks back over; the count bounds the bucket when a botnet
// guessing at thousands of names trips an alert for each.
const (
	AlertMaxAge = 90 * 24 * time.Hour
	MaxAlerts   = 10000
)

// PruneAlerts deletes the alerts older than before and, past keep, the
// oldest of the rest; it returns how many went. PutAlert prunes with
// AlertMaxAge and MaxAlerts in its own transaction.
func (s *Store) PruneAlerts(before time.Time, keep int) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		if b == nil {
			return nil
		}
		var err error
		n, err = pruneAlerts(b, before, keep)
		return err
	})
	return n, err
}

// pruneAlerts walks every alert: keys are ordered by account, not by
// time. At MaxAlerts keys that is a millisecond or so, and alerts are
// rare.
func pruneAlerts(b *bolt.Bucket, before time.Time, keep int) (int, error) {
	type kept struct {
		t int64
		k []byte
	}
	cut := unixNanos(before)
	var old [][]byte
	var rest []kept
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) < 9 || k[len(k)-9] != 0 {
			continue // not an alert key: not ours to judge
		}
		t := int64(binary.BigEndian.Uint64(k[len(k)-8:]))
		if t < cut {
			old = append(old, bytes.Clone(k))
		} else {
			rest = append(rest, kept{t, bytes.Clone(k)})
		}
	}
	if len(rest) > keep {
		slices.SortFunc(rest, func(a, b kept) int { return cmp.Compare(a.t, b.t) })
		for _, r := range rest[:len(rest)-keep] {
			old = append(old, r.k)
		}
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("prune alert %q: %w", k, err)
		}
	}
	return len(old), nil
}

// Alerts returns user's last max alerts, newest first.
func (s *Store) Alerts(user string, max int) ([][]byte, error) {
	var out [][]byte
	prefix := append([]byte(user), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		// Seek past the range, then walk back.
		end := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		k, v := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8 && len(out) < max; k, v = c.Prev() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return out, err
}
