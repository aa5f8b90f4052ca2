package state

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// windowChunkSize is the size past which a chunk of encoded windows is
// closed. Windows are stored as a few large values rather than one key per
// window: a checkpoint replaces them all, and bbolt copies a large value
// into overflow pages far faster than it builds a B+tree of 100k keys
// (see BenchmarkCheckpoint). Kept modest so the freelist can still find
// contiguous runs of pages for each chunk.
const windowChunkSize = 64 << 10

// Checkpoint saves c in one transaction: each source's position is set
// (sources not in c keep theirs) and the saved windows are replaced by
// c.Windows. Positions and windows are saved together so that, after a
// crash, the lines after a saved position are re-read and counted on top
// of windows that never saw them: nothing is counted twice.
func (s *Store) Checkpoint(c Checkpoint) error {
	var chunks [][]byte
	if !c.KeepWindows {
		chunks = encodeWindowChunks(c.Windows)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		pos := tx.Bucket(bucketPositions)
		for name, p := range c.Positions {
			if err := pos.Put([]byte(name), p); err != nil {
				return fmt.Errorf("position %q: %w", name, err)
			}
		}
		if c.KeepWindows {
			return nil
		}
		return putWindowChunks(tx, chunks)
	})
	if err != nil {
		return fmt.Errorf("checkpoint %d windows: %w", len(c.Windows), err)
	}
	return nil
}

func encodeWindowChunks(ws []Window) [][]byte {
	var chunks [][]byte
	// Room for a typical window past the limit, so a chunk is allocated
	// once rather than grown by doubling.
	newChunk := func() []byte { return make([]byte, 0, windowChunkSize+4<<10) }
	cur := newChunk()
	for _, w := range ws {
		cur = appendWindow(cur, w)
		if len(cur) >= windowChunkSize {
			chunks = append(chunks, cur)
			cur = newChunk()
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// putWindowChunks replaces the windows bucket with chunks, keyed by their
// big-endian index so they read back in order.
func putWindowChunks(tx *bolt.Tx, chunks [][]byte) error {
	if err := tx.DeleteBucket(bucketWindows); err != nil {
		return fmt.Errorf("drop windows: %w", err)
	}
	b, err := tx.CreateBucket(bucketWindows)
	if err != nil {
		return fmt.Errorf("create windows: %w", err)
	}
	b.FillPercent = 1 // keys only ever appended in order
	for i, c := range chunks {
		if err := b.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), c); err != nil {
			return fmt.Errorf("put windows chunk %d: %w", i, err)
		}
	}
	return nil
}

// Positions returns the saved position of every source.
func (s *Store) Positions() (map[string][]byte, error) {
	out := make(map[string][]byte)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPositions).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	return out, nil
}

// Windows returns the windows saved by the last Checkpoint, in the order
// they were given.
func (s *Store) Windows() ([]Window, error) {
	var out []Window
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWindows).ForEach(func(k, v []byte) error {
			var err error
			if out, err = decodeWindows(out, v); err != nil {
				return fmt.Errorf("chunk %x: %w", k, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	return out, nil
}
