package state

import (
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestOutbox: queued changes keep their order, survive a reopen, are
// bounded (oldest dropped first) and go once done.
func TestOutbox(t *testing.T) {
	s := mustOpen(t)
	if n, err := s.OutboxLen(); err != nil || n != 0 {
		t.Fatalf("empty outbox: %d, %v", n, err)
	}
	var vs [][]byte
	for i := range 5 {
		vs = append(vs, []byte(fmt.Sprint(i)))
	}
	if dropped, err := s.OutboxAppend(vs, 4); err != nil || dropped != 1 {
		t.Fatalf("append 5 to a queue of 4: dropped %d, %v", dropped, err)
	}
	s = reopen(t, s)
	items, err := s.Outbox(10)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, it := range items {
		got += string(it.Value)
	}
	if got != "1234" {
		t.Fatalf("after reopen the queue holds %q, want 1234 (the oldest dropped)", got)
	}
	if err := s.OutboxDone(items[1].Seq); err != nil {
		t.Fatal(err)
	}
	items, _ = s.Outbox(10)
	if len(items) != 2 || string(items[0].Value) != "3" {
		t.Errorf("after done up to the 2nd: %+v", items)
	}
	if n, _ := s.OutboxLen(); n != 2 {
		t.Errorf("len %d, want 2", n)
	}
}

// TestOutboxSequenceAfterCopy: items copied into a fresh bucket (as a
// salvage does, without the bucket's sequence) are never overwritten by
// new ones.
func TestOutboxSequenceAfterCopy(t *testing.T) {
	s := mustOpen(t)
	if _, err := s.OutboxAppend([][]byte{[]byte("a"), []byte("b")}, 10); err != nil {
		t.Fatal(err)
	}
	// The salvage's copy: same keys, sequence 0.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).SetSequence(0) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxAppend([][]byte{[]byte("c")}, 10); err != nil {
		t.Fatal(err)
	}
	items, err := s.Outbox(10)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, it := range items {
		got += string(it.Value)
	}
	if got != "abc" {
		t.Errorf("queue %q, want abc", got)
	}
}
