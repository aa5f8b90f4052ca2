package state

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The outbox holds changes this host has still to publish to the shared
// ban list, in order, so that an outage or a restart loses none. Its
// bucket is made on first use: a host without a cluster never has one.
var bucketOutbox = []byte("outbox")

// keyOutboxLen holds the queue's length beside the items (whose keys are
// 8 bytes; this one sorts after them all).
var keyOutboxLen = []byte("len")

func outboxLen(b *bolt.Bucket) int {
	if v := b.Get(keyOutboxLen); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

func setOutboxLen(b *bolt.Bucket, n int) error {
	return b.Put(keyOutboxLen, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// OutboxItem is one queued change: Seq orders them, Value is the
// publisher's own encoding.
type OutboxItem struct {
	Seq   uint64
	Value []byte
}

// OutboxAppend queues values after those already queued, in one
// transaction. Past max items, the oldest are dropped and counted in
// dropped: the queue is bounded, whatever the length of an outage.
func (s *Store) OutboxAppend(values [][]byte, max int) (dropped int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketOutbox)
		if err != nil {
			return fmt.Errorf("create bucket: %w", err)
		}
		// A salvaged database copies the items but not the bucket's
		// sequence: new items must still go after the last one.
		c := b.Cursor()
		k, _ := c.Last()
		for k != nil && len(k) != 8 {
			k, _ = c.Prev()
		}
		if k != nil && binary.BigEndian.Uint64(k) > b.Sequence() {
			if err := b.SetSequence(binary.BigEndian.Uint64(k)); err != nil {
				return fmt.Errorf("set sequence: %w", err)
			}
		}
		for _, v := range values {
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("next sequence: %w", err)
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
				return fmt.Errorf("put: %w", err)
			}
		}
		n := outboxLen(b) + len(values)
		c = b.Cursor()
		for ; n > max; n-- {
			k, _ := c.First()
			if k == nil || len(k) != 8 {
				break
			}
			if err := c.Delete(); err != nil {
				return fmt.Errorf("drop oldest: %w", err)
			}
			dropped++
		}
		return setOutboxLen(b, n)
	})
	if err != nil {
		return 0, fmt.Errorf("queue %d changes to publish: %w", len(values), err)
	}
	return dropped, nil
}

// Outbox returns up to n queued items, oldest first, copied out of the
// transaction.
func (s *Store) Outbox(n int) ([]OutboxItem, error) {
	var out []OutboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			out = append(out, OutboxItem{Seq: binary.BigEndian.Uint64(k), Value: append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read changes to publish: %w", err)
	}
	return out, nil
}

// OutboxLen is how many changes wait to be published.
func (s *Store) OutboxLen() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOutbox); b != nil {
			n = outboxLen(b)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count changes to publish: %w", err)
	}
	return n, nil
}

// OutboxDone forgets the queued items up to and including seq: they are
// published.
func (s *Store) OutboxDone(seq uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		n := outboxLen(b)
		for k, _ := c.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return setOutboxLen(b, max(n, 0))
	})
	if err != nil {
		return fmt.Errorf("forget published changes up to %d: %w", seq, err)
	}
	return nil
}
