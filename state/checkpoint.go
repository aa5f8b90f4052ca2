package state

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"hash/maphash"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// keyHashKey names, in bucket meta, the key of the windows' user and
// fingerprint hashes: saved so that they mean the same after a restart.
var keyHashKey = []byte("window-hash-key")

// windowsShardsOfSet is how many shards Checkpoint spreads a complete set
// of windows (Checkpoint.Windows) over.
const windowsShardsOfSet = 256

// Checkpoint saves c in one transaction: each source's position is set
// (sources not in c keep theirs) and the windows change as c says: the
// given shards replace the saved ones of the same jail and number (an
// empty one deletes it), on top of the saved windows or, with Replace,
// instead of them. Positions and windows are saved together so that, after
// a crash, the lines after a saved position are re-read and counted on top
// of windows that never saw them: nothing is counted twice.
//
// Shards are a few KB each and the caller sends only the changed ones, so
// a checkpoint of a million windows of which a few changed writes a few
// pages, and never reads the saved windows (which would map them in).
func (s *Store) Checkpoint(c Checkpoint) error {
	shards, replace := c.Shards, c.Replace
	if !c.KeepWindows && !c.Replace {
		shards, replace = shardsOfSet(c.Windows), true
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		pos := tx.Bucket(bucketPositions)
		for name, p := range c.Positions {
			if err := pos.Put([]byte(name), p); err != nil {
				return fmt.Errorf("position %q: %w", name, err)
			}
		}
		return putShards(tx, shards, replace)
	})
	if err != nil {
		return fmt.Errorf("checkpoint %d window shards: %w", len(shards), err)
	}
	if len(shards) > 0 {
		s.unmapPages()
	}
	return nil
}

// unmapPages drops the database's pages from the process's page tables.
// bbolt reads the leaf pages of the shards it rewrites through its map,
// and every page so read stays resident and counts in the daemon's RSS:
// under a flood, where every shard changes each second, that is the whole
// file. The pages stay in the page cache (the kernel may evict them as
// before); a later read maps them again with a minor fault. Done in a
// read transaction, which keeps bbolt from remapping meanwhile; the map
// is shared and read-only, so readers see the same bytes.
func (s *Store) unmapPages() {
	_ = s.db.View(func(tx *bolt.Tx) error {
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, s.db.Info().Data, uintptr(tx.Size()), unix.MADV_DONTNEED)
		if errno != 0 {
			s.log.Debug("madvise state map", "err", errno)
		}
		return nil
	})
}

// shardsOfSet spreads a complete set of windows over shards.
func shardsOfSet(ws []Window) []Shard {
	type ref struct {
		jail string
		n    uint16
	}
	seed := maphash.MakeSeed()
	groups := map[ref][]Window{}
	for _, w := range ws {
		r := ref{w.Jail, uint16(maphash.Comparable(seed, w.Key) % windowsShardsOfSet)}
		groups[r] = append(groups[r], w)
	}
	out := make([]Shard, 0, len(groups))
	for r, g := range groups {
		out = append(out, Shard{Jail: r.jail, N: r.n, Value: AppendWindows(nil, g)})
	}
	return out
}

func putShards(tx *bolt.Tx, shards []Shard, replace bool) error {
	if replace {
		// The schema-1 windows go too: replaced by the shards.
		for _, name := range [][]byte{bucketWindows, bucketShards} {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("drop %s: %w", name, err)
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
		}
	}
	b := tx.Bucket(bucketShards)
	for _, sh := range shards {
		k := shardKey(sh.Jail, sh.N)
		var err error
		if len(sh.Value) == 0 {
			err = b.Delete(k)
		} else {
			err = b.Put(k, sh.Value)
		}
		if err != nil {
			return fmt.Errorf("shard %d of jail %q: %w", sh.N, sh.Jail, err)
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

// Windows returns the saved windows: those of a schema-1 database first,
// then the shards'.
func (s *Store) Windows() ([]Window, error) {
	var out []Window
	err := s.EachWindows(func(ws []Window) error {
		out = append(out, ws...)
		return nil
	})
	return out, err
}

// EachWindows calls fn with the saved windows a few at a time (a shard, a
// schema-1 chunk), so that a million of them can be restored without
// holding them all twice. The windows are copies, fn's to keep.
func (s *Store) EachWindows(fn func([]Window) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketWindows).ForEach(func(k, v []byte) error {
			ws, err := decodeWindows(nil, v)
			if err != nil {
				return fmt.Errorf("chunk %x: %w", k, err)
			}
			return fn(ws)
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketShards).ForEach(func(k, v []byte) error {
			ws, err := decodeShard(nil, k, v)
			if err != nil {
				return fmt.Errorf("shard %x: %w", k, err)
			}
			return fn(ws)
		})
	})
	if err != nil {
		return fmt.Errorf("read windows: %w", err)
	}
	return nil
}

// HashKey returns the key of the windows' user and fingerprint hashes,
// made at random and saved the first time.
func (s *Store) HashKey() ([16]byte, error) {
	var k [16]byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyHashKey); len(v) == len(k) {
			copy(k[:], v)
			return nil
		}
		_, _ = rand.Read(k[:]) // never fails (crypto/rand panics rather)
		return meta.Put(keyHashKey, bytes.Clone(k[:]))
	})
	if err != nil {
		return k, fmt.Errorf("window hash key: %w", err)
	}
	return k, nil
}
