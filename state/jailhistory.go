package state

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketJailHistory counts bans per prefix and jail. The ban record keeps
// one jail, the last to ban; when a second jail bans an address while the
// first one's ban runs, the ban continues under the second's name and
// this is what still says the first banned it (`smtpban show`).
var bucketJailHistory = []byte("jail-history")

// JailBans is how often one jail banned a prefix, and when last.
type JailBans struct {
	Jail  string    `json:"jail"`
	Count int       `json:"count"`
	Last  time.Time `json:"last"`
}

// jailHistoryKey is the prefix's key behind its length, so that a scan
// for one prefix never runs into a longer key of the other family, then
// the jail.
func jailHistoryKey(pk []byte, jail string) []byte {
	k := make([]byte, 0, 1+len(pk)+len(jail))
	k = append(k, byte(len(pk)))
	k = append(k, pk...)
	return append(k, jail...)
}

// countJailBan records a ban of the prefix keyed pk by jail.
func countJailBan(tx *bolt.Tx, pk []byte, jail string, since time.Time) error {
	b := tx.Bucket(bucketJailHistory)
	if b == nil { // opened by a tool on a database of an older daemon
		return nil
	}
	k := jailHistoryKey(pk, jail)
	var h history
	if v := b.Get(k); v != nil {
		var err error
		if h, err = decodeHistory(v); err != nil {
			return fmt.Errorf("jail history: %w", err)
		}
	}
	h.count++
	if since.After(h.last) {
		h.last = since
	}
	if err := b.Put(k, encodeHistory(h)); err != nil {
		return fmt.Errorf("put jail history: %w", err)
	}
	return nil
}

// JailBans returns, per jail, how often p (masked) was banned, most
// bans first. A record that does not decode is left out.
func (s *Store) JailBans(p netip.Prefix) ([]JailBans, error) {
	var out []JailBans
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJailHistory)
		if b == nil {
			return nil
		}
		pk := prefixKey(p.Masked())
		scan := jailHistoryKey(pk, "")
		c := b.Cursor()
		for k, v := c.Seek(scan); k != nil && bytes.HasPrefix(k, scan); k, v = c.Next() {
			h, err := decodeHistory(v)
			if err != nil {
				continue
			}
			out = append(out, JailBans{Jail: string(k[len(scan):]), Count: h.count, Last: h.last})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jail history %s: %w", p, err)
	}
	slices.SortStableFunc(out, func(a, b JailBans) int { return b.Count - a.Count })
	return out, nil
}
