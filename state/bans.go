package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutBan stores b and returns it as stored. It returns only once the
// transaction is committed and fsynced: a ban is durable before anyone
// hears of it.
//
// The prefix is stored masked (203.0.113.7/24 is 203.0.113.0/24) and times
// in UTC. A zero Until means the ban never expires.
//
// A new ban increments the prefix's ban history and the returned Count is
// the new total. If the prefix is already banned and that ban is still in
// force at b.Since, b replaces it but is the same ban continued: the later
// Until of the two is kept (zero counting as latest), Count stays, the
// history is not incremented. So a ban delivered twice (a remote ban seen
// again after a reconnect) does not escalate the next one. An expired ban
// not yet swept is replaced as a new ban.
func (s *Store) PutBan(b Ban) (Ban, error) {
	var out Ban
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		out, err = putBan(tx, b)
		return err
	})
	if err != nil {
		return Ban{}, fmt.Errorf("put ban %s: %w", b.Prefix, err)
	}
	return out, nil
}

// PutBans stores bans as PutBan would, all in one transaction (one fsync),
// for bulk arrivals such as remote bans. Either all are stored or none.
func (s *Store) PutBans(bans []Ban) ([]Ban, error) {
	out := make([]Ban, len(bans))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, b := range bans {
			var err error
			if out[i], err = putBan(tx, b); err != nil {
				return fmt.Errorf("ban %s: %w", b.Prefix, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put %d bans: %w", len(bans), err)
	}
	return out, nil
}

func normalize(b Ban) (Ban, error) {
	if !b.Prefix.IsValid() {
		return Ban{}, errors.New("invalid prefix")
	}
	if b.Since.IsZero() {
		return Ban{}, errors.New("zero Since")
	}
	b.Prefix = b.Prefix.Masked()
	b.Since = b.Since.UTC()
	if !b.Until.IsZero() {
		b.Until = b.Until.UTC()
	}
	return b, nil
}

func putBan(tx *bolt.Tx, b Ban) (Ban, error) {
	b, err := normalize(b)
	if err != nil {
		return Ban{}, err
	}
	bans, expiry := tx.Bucket(bucketBans), tx.Bucket(bucketExpiry)
	k := prefixKey(b.Prefix)

	continued, sameJail := false, false
	if v := bans.Get(k); v != nil {
		old, err := decodeBan(v)
		if err != nil {
			return Ban{}, err
		}
		sameJail = old.Jail == b.Jail
		if !old.Until.IsZero() {
			if err := expiry.Delete(expiryKey(old.Until, old.Prefix)); err != nil {
				return Ban{}, fmt.Errorf("delete expiry entry: %w", err)
			}
		}
		if old.Until.IsZero() || old.Until.After(b.Since) {
			continued = true
			b.Count = old.Count
			if !sameJail {
				// Continued under another jail's name: the first
				// jail's ban is still counted for it.
				if err := countJailBan(tx, k, b.Jail, b.Since); err != nil {
					return Ban{}, err
				}
			}
			if old.Until.IsZero() || (!b.Until.IsZero() && old.Until.After(b.Until)) {
				b.Until = old.Until
			}
		}
	}
	if !continued {
		h, err := getHistory(tx, k)
		if err != nil {
			return Ban{}, err
		}
		h.count++
		if b.Since.After(h.last) {
			h.last = b.Since
		}
		if err := tx.Bucket(bucketHistory).Put(k, encodeHistory(h)); err != nil {
			return Ban{}, fmt.Errorf("put history: %w", err)
		}
		b.Count = h.count
		if err := countJailBan(tx, k, b.Jail, b.Since); err != nil {
			return Ban{}, err
		}
	}

	v, err := encodeBan(b)
	if err != nil {
		return Ban{}, fmt.Errorf("encode: %w", err)
	}
	if err := bans.Put(k, v); err != nil {
		return Ban{}, fmt.Errorf("put: %w", err)
	}
	if !b.Until.IsZero() {
		if err := expiry.Put(expiryKey(b.Until, b.Prefix), nil); err != nil {
			return Ban{}, fmt.Errorf("put expiry entry: %w", err)
		}
	}
	return b, nil
}

func getHistory(tx *bolt.Tx, k []byte) (history, error) {
	v := tx.Bucket(bucketHistory).Get(k)
	if v == nil {
		return history{}, nil
	}
	return decodeHistory(v)
}

// DeleteBan removes the ban on p (masked), if any, and returns it. The ban
// history is kept: lifting a ban does not forgive the offender.
func (s *Store) DeleteBan(p netip.Prefix) (Ban, bool, error) {
	var (
		out   Ban
		found bool
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		bans := tx.Bucket(bucketBans)
		k := prefixKey(p.Masked())
		v := bans.Get(k)
		if v == nil {
			return nil
		}
		b, err := decodeBan(v)
		if err != nil {
			return err
		}
		if !b.Until.IsZero() {
			if err := tx.Bucket(bucketExpiry).Delete(expiryKey(b.Until, b.Prefix)); err != nil {
				return err
			}
		}
		if err := bans.Delete(k); err != nil {
			return err
		}
		out, found = b, true
		return nil
	})
	if err != nil {
		return Ban{}, false, fmt.Errorf("delete ban %s: %w", p, err)
	}
	return out, found, nil
}

// Ban returns the ban on p (masked), if any.
func (s *Store) Ban(p netip.Prefix) (Ban, bool, error) {
	var (
		out   Ban
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBans).Get(prefixKey(p.Masked()))
		if v == nil {
			return nil
		}
		var err error
		out, err = decodeBan(v)
		found = err == nil
		return err
	})
	if err != nil {
		return Ban{}, false, fmt.Errorf("get ban %s: %w", p, err)
	}
	return out, found, nil
}

// Bans returns every stored ban, expired but not yet swept included,
// sorted by Since.
func (s *Store) Bans() ([]Ban, error) {
	var out []Ban
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBans)
		return b.ForEach(func(k, v []byte) error {
			ban, err := decodeBan(v)
			if err != nil {
				return fmt.Errorf("key %x: %w", k, err)
			}
			out = append(out, ban)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	slices.SortStableFunc(out, func(a, b Ban) int { return a.Since.Compare(b.Since) })
	return out, nil
}

// BanHistory returns how many times p (masked) has been banned and the
// Since of the latest of those bans, for escalating the next one.
func (s *Store) BanHistory(p netip.Prefix) (count int, last time.Time, err error) {
	var h history
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		h, err = getHistory(tx, prefixKey(p.Masked()))
		return err
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("ban history %s: %w", p, err)
	}
	return h.count, h.last, nil
}

// Sweep removes the bans whose Until is at or before now and returns them.
// It walks the expiry index from its start and stops at the first ban still
// in force, so its cost is the number of expired bans, not of all bans.
func (s *Store) Sweep(now time.Time) ([]Ban, error) {
	limit := unixNanos(now)
	due := func(k []byte) bool {
		return k != nil && (len(k) < 8 || int64(binary.BigEndian.Uint64(k)^(1<<63)) <= limit)
	}
	// The sweeper runs often and usually finds nothing: look before
	// paying for a write transaction and its fsync.
	var any bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketExpiry).Cursor().First()
		any = due(k)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("sweep expired bans: %w", err)
	}
	if !any {
		return nil, nil
	}
	var out []Ban
	err := s.db.Update(func(tx *bolt.Tx) error {
		bans, expiry := tx.Bucket(bucketBans), tx.Bucket(bucketExpiry)
		// Keys are collected first: deleting under a bbolt cursor can make
		// Next skip the following key.
		var expired [][]byte
		c := expiry.Cursor()
		for k, _ := c.First(); due(k); k, _ = c.Next() {
			expired = append(expired, bytes.Clone(k))
		}
		for _, k := range expired {
			if err := expiry.Delete(k); err != nil {
				return err
			}
			_, p, err := splitExpiryKey(k)
			if err != nil {
				return err
			}
			pk := prefixKey(p)
			v := bans.Get(pk)
			if v == nil {
				continue // a stale index entry; the ban is gone already
			}
			b, err := decodeBan(v)
			if err != nil {
				return err
			}
			if b.Until.IsZero() || !bytes.Equal(expiryKey(b.Until, b.Prefix), k) {
				continue // stale: the ban was extended under another key
			}
			if err := bans.Delete(pk); err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweep expired bans: %w", err)
	}
	if len(out) > 0 {
		s.log.Debug("swept expired bans", logBans, len(out))
	}
	return out, nil
}

// ActiveBanCounts counts, per jail, the bans whose Until is after now:
// what a metrics scrape or a status line needs, without decoding every
// ban in full (their lines and times) as Bans does.
func (s *Store) ActiveBanCounts(now time.Time) (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBans).ForEach(func(k, v []byte) error {
			jail, until, err := decodeBanJailUntil(v)
			if err != nil {
				return fmt.Errorf("key %x: %w", k, err)
			}
			if until.After(now) {
				out[jail]++
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("count bans: %w", err)
	}
	return out, nil
}
