package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Recovery is what a salvage of a damaged database found. It is kept in
// the new database until the admin acknowledges it (AckRecovery), so that
// `smtpban status` and a metric keep saying so across restarts.
type Recovery struct {
	Time    time.Time `json:"time"`
	Damaged string    `json:"damaged"` // where the damaged file was moved
	Reason  string    `json:"reason"`  // why it was found damaged
	// Salvaged counts, per bucket, the records read back and kept.
	Salvaged map[string]int `json:"salvaged"`
	// Lost says briefly what could not be read (at most maxLost lines).
	Lost []string `json:"lost,omitempty"`
	// LostRecords counts the records known to be lost: read but not
	// decodable. Records on pages that could not be read at all are not
	// counted (nothing says how many there were); Lost names the pages.
	LostRecords int `json:"lost_records"`
}

// maxLost bounds Recovery.Lost.
const maxLost = 20

// keyRecovery names, in bucket meta, the unacknowledged recoveries (JSON
// list, oldest first).
var keyRecovery = []byte("recovery")

// salvaged is what a guarded read of a damaged file got out of it.
type salvaged struct {
	records map[string][][2][]byte // bucket -> key/value pairs, copied
	clean   bool                   // every page read, bbolt's check ran
	lost    []string
	nLost   int
}

func (s *salvaged) lose(format string, args ...any) {
	if len(s.lost) < maxLost {
		s.lost = append(s.lost, fmt.Sprintf(format, args...))
	}
}

// damagedName is where a damaged file goes: next to it, with the time.
func damagedName(path string, now time.Time) string {
	base := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
}

// salvage reads what still reads out of the damaged file at path, moves
// the file aside and writes the salvage into a fresh database at path. why
// is what verify found. The caller opens path afterwards.
func salvage(path string, why error, opts Options, now time.Time) (Recovery, error) {
	rec := Recovery{Time: now.UTC(), Reason: why.Error(), Salvaged: map[string]int{}}
	got := readDamaged(path, opts.Timeout)
	rec.Lost, rec.LostRecords = got.lost, got.nLost

	rec.Damaged = damagedName(path, now)
	var size int
	if fi, err := os.Stat(path); err == nil && fi.Size() < 1<<31 {
		size = int(fi.Size())
	}
	if err := os.Rename(path, rec.Damaged); err != nil {
		return rec, fmt.Errorf("move damaged database aside: %w", err)
	}
	// Mapped at the old size from the start: growing a map of 32 KB
	// step by step remaps (and copies every node) over and over.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, InitialMmapSize: size})
	if err != nil {
		return rec, fmt.Errorf("create fresh database: %w", err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		var earlier []Recovery
		for _, kv := range got.records[string(bucketMeta)] {
			switch {
			case bytes.Equal(kv[0], keyRecovery):
				_ = json.Unmarshal(kv[1], &earlier) // unreadable: only the new one
			case bytes.Equal(kv[0], keySchema):
			default:
				if err := meta.Put(kv[0], kv[1]); err != nil {
					return err
				}
				rec.Salvaged[string(bucketMeta)]++
			}
		}
		// The expiry index is rebuilt from the bans, not copied: it must
		// hold exactly one key per expiring ban.
		for _, kv := range got.records[string(bucketBans)] {
			// Decoded once already by the read: only its end is needed.
			p, err := keyPrefix(kv[0])
			if err != nil {
				continue
			}
			_, until, err := decodeBanJailUntil(kv[1])
			if err != nil {
				continue
			}
			if err := tx.Bucket(bucketBans).Put(kv[0], kv[1]); err != nil {
				return err
			}
			if !until.IsZero() {
				if err := tx.Bucket(bucketExpiry).Put(expiryKey(until, p), nil); err != nil {
					return err
				}
			}
			rec.Salvaged[string(bucketBans)]++
		}
		for name := range got.records {
			switch name {
			case string(bucketMeta), string(bucketBans), string(bucketExpiry):
				continue // above
			}
			b, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			for _, kv := range got.records[name] {
				if err := b.Put(kv[0], kv[1]); err != nil {
					return err
				}
				rec.Salvaged[string(name)]++
			}
		}
		v, err := json.Marshal(append(earlier, rec))
		if err != nil {
			return err
		}
		if err := meta.Put(keyRecovery, v); err != nil {
			return err
		}
		return meta.Put(keySchema, bigEndian32(SchemaVersion))
	})
	if err != nil {
		return rec, fmt.Errorf("write salvage into fresh database: %w", err)
	}
	return rec, nil
}

// readDamaged reads every record of our buckets that still reads, in a
// goroutine of its own whose memory faults become panics: bbolt trusts
// the page numbers it finds, and a damaged page can make it read outside
// the file or outside the map. Each bucket and each stretch of records is
// read under its own recover, so that one bad page loses the records on
// it and not the rest.
func readDamaged(path string, timeout time.Duration) *salvaged {
	done := make(chan *salvaged, 1)
	var clean bool
	go func() {
		got := readDamagedGuarded(path, timeout)
		clean = got.clean
		done <- got
	}()
	got := <-done
	if clean {
		return got
	}
	// Records read already are not decoded again by the scan (bucket
	// name, NUL, key).
	read := map[string]bool{}
	for _, name := range [][]byte{bucketBans, bucketHistory, bucketAllow} {
		for _, kv := range got.records[string(name)] {
			read[string(name)+"\x00"+string(kv[0])] = true
		}
	}
	orphans, err := scanLeaves(path, read)
	if err != nil {
		got.lose("%v", err)
		return got
	}
	for _, name := range [][]byte{bucketBans, bucketHistory, bucketAllow} {
		have := map[string]bool{}
		for _, kv := range got.records[string(name)] {
			have[string(kv[0])] = true
		}
		n := 0
		for _, kv := range orphans[string(name)] {
			if !have[string(kv[0])] {
				have[string(kv[0])] = true
				got.records[string(name)] = append(got.records[string(name)], kv)
				n++
			}
		}
		if n > 0 {
			got.lose("bucket %s: %d records found again on leaf pages cut off from their bucket", name, n)
		}
	}
	return got
}

func readDamagedGuarded(path string, timeout time.Duration) (got *salvaged) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	got = &salvaged{records: map[string][][2][]byte{}}
	if _, err := checkMetaSize(path); err != nil {
		got.lose("whole file: %v", err)
		return got
	}
	// Without PreLoadFreelist: a damaged freelist (the usual complaint)
	// does not keep the records from being read.
	clean, err := guard(func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
		if err != nil {
			return boltOpenError(err, timeout)
		}
		defer db.Close()
		clean := true
		err = db.View(func(tx *bolt.Tx) error {
			names, listed := salvageBuckets(tx, got)
			clean = listed
			for _, name := range names {
				if !readBucket(tx, name, got) {
					clean = false
				}
			}
			return nil
		})
		if err == nil && !clean {
			err = errPagesUnreadable
		}
		return err
	})
	if !clean {
		if !errors.Is(err, errPagesUnreadable) {
			got.lose("whole file: %v", err)
		}
		// bbolt's check runs in a goroutine of its own, where a fault on
		// a page the walk could not read would kill the process: it runs
		// only over a file whose every reachable page read back.
		got.lose("bbolt consistency check skipped: some pages fault when read")
		return got
	}
	_, err = guard(func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: timeout})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				got.lose("bbolt check: %v", err)
			}
			return nil
		})
	})
	if err != nil {
		got.lose("freelist: %v", err)
	}
	got.clean = err == nil
	return got
}

var errPagesUnreadable = errors.New("pages unreadable")

// guard runs f, turning a panic (a fault, or bbolt's own checks) into an
// error; clean says that f neither panicked nor failed.
func guard(f func() error) (clean bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			clean, err = false, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	err = f()
	return err == nil, err
}

// readBucket copies out the records of one bucket that read and decode.
// A page that faults loses its records; the walk goes on past it by
// seeking to keys after the last good one (see skipKeys). It says whether
// the whole bucket read without a fault.
func readBucket(tx *bolt.Tx, name []byte, got *salvaged) (clean bool) {
	var b *bolt.Bucket
	if ok, err := guard(func() error { b = tx.Bucket(name); return nil }); !ok {
		got.lose("bucket %s: %v", name, err)
		return false
	}
	if b == nil {
		return true
	}
	clean = true
	var last []byte // the last key read, good or not
	seen := map[string]bool{}
	c := b.Cursor()
	// first positions the cursor; then the records are read until the
	// end or a fault.
	first := func() ([]byte, []byte) { return c.First() }
	for tries := 0; ; tries++ {
		ok, err := guard(func() error {
			for k, v := first(); k != nil; k, v = c.Next() {
				if last != nil && bytes.Compare(k, last) <= 0 {
					return fmt.Errorf("%w: keys out of order", ErrCorrupt)
				}
				last = bytes.Clone(k)
				if v == nil || seen[string(k)] {
					continue // a nested bucket: ours have none
				}
				seen[string(k)] = true
				if derr := checkRecord(name, k, v); derr != nil {
					got.nLost++
					got.lose("bucket %s key %x: %v", name, k, derr)
					continue
				}
				got.records[string(name)] = append(got.records[string(name)], [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if ok {
			return clean
		}
		if clean {
			got.lose("bucket %s: records after key %x unreadable: %v", name, last, err)
		}
		clean = false
		// Seek past the damage: the first candidate that reads on.
		next := false
		for _, cand := range skipKeys(last) {
			if ok, _ := guard(func() error { c.Seek(cand); return nil }); ok {
				first = func() ([]byte, []byte) { return c.Seek(cand) }
				next = true
				break
			}
		}
		if !next || tries > 1000 {
			return false
		}
	}
}

// salvageBuckets names the buckets to read: ours, and every other one the
// root still lists (the account watch's, created on first use). Every
// bucket is walked: bbolt's check runs only when every page read back, and
// a damaged page in a bucket left unread would fault inside the check,
// where no recover reaches.
func salvageBuckets(tx *bolt.Tx, got *salvaged) (names [][]byte, listed bool) {
	names = slices.Clone(allBuckets)
	ok, err := guard(func() error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !slices.ContainsFunc(names, func(n []byte) bool { return bytes.Equal(n, name) }) {
				names = append(names, bytes.Clone(name))
			}
			return nil
		})
	})
	if !ok {
		got.lose("list of buckets: %v", err)
	}
	return names, ok
}

// skipKeys lists keys after last, nearest first, each skipping a wider
// range of keys: last with a byte raised and the rest cut off, from its
// final byte to its first. Before any key was read (last nil), every
// one-byte key. A branch page routes each range to one child page, so one
// of them lands on the next page that still reads.
func skipKeys(last []byte) [][]byte {
	var out [][]byte
	if last == nil {
		for i := range 256 {
			out = append(out, []byte{byte(i)})
		}
		return out
	}
	out = append(out, append(bytes.Clone(last), 0))
	for i := len(last) - 1; i >= 0; i-- {
		if last[i] == 0xff {
			continue
		}
		k := bytes.Clone(last[:i+1])
		k[i]++
		out = append(out, k)
	}
	return out
}

// checkRecord decodes one record of bucket name.
func checkRecord(name, k, v []byte) error {
	switch {
	case bytes.Equal(name, bucketBans):
		if _, err := keyPrefix(k); err != nil {
			return err
		}
		_, err := decodeBan(v)
		return err
	case bytes.Equal(name, bucketExpiry):
		_, _, err := splitExpiryKey(k)
		return err
	case bytes.Equal(name, bucketHistory):
		if _, err := keyPrefix(k); err != nil {
			return err
		}
		_, err := decodeHistory(v)
		return err
	case bytes.Equal(name, bucketWindows):
		_, err := decodeWindows(nil, v)
		return err
	case bytes.Equal(name, bucketShards):
		_, err := decodeShard(nil, k, v)
		return err
	case bytes.Equal(name, bucketAllow):
		if _, err := keyPrefix(k); err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("allow entry is %d bytes, want 8", len(v))
		}
	case bytes.Equal(name, bucketMeta):
		if bytes.Equal(k, keyHashKey) && len(v) != 16 {
			return fmt.Errorf("hash key is %d bytes, want 16", len(v))
		}
	}
	return nil
}

func bigEndian32(n uint32) []byte {
	return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// Recoveries returns the salvages of damaged databases not yet
// acknowledged, oldest first.
func (s *Store) Recoveries() ([]Recovery, error) {
	var out []Recovery
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyRecovery)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("read recoveries: %w", err)
	}
	return out, nil
}

// AckRecovery forgets the recoveries: the admin has seen them. It returns
// how many there were.
func (s *Store) AckRecovery() (int, error) {
	rs, err := s.Recoveries()
	if err != nil {
		return 0, err
	}
	if len(rs) == 0 {
		return 0, nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete(keyRecovery)
	})
	if err != nil {
		return 0, fmt.Errorf("acknowledge recovery: %w", err)
	}
	return len(rs), nil
}

// salvageable says whether Open may salvage a file verify refused: damage,
// but not a newer schema (a downgrade; the newer smtpband reads it), not
// another program's bbolt file, not a lock held by another smtpband.
func salvageable(err error) bool {
	return errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema)
}

// sortedBuckets lists a Recovery's buckets, for messages.
func (r Recovery) sortedBuckets() []string {
	var out []string
	for b := range r.Salvaged {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// Summary says in one line what was kept.
func (r Recovery) Summary() string {
	var parts []string
	for _, b := range r.sortedBuckets() {
		parts = append(parts, fmt.Sprintf("%s %d", b, r.Salvaged[b]))
	}
	if len(parts) == 0 {
		return "nothing salvaged"
	}
	return "salvaged " + fmt.Sprint(parts)
}
