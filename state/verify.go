package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt's meta page: a 16-byte page header, then magic and version
// (uint32 each) and the page size, in the machine's byte order.
const (
	boltMagic        = 0xED0CDAED
	metaMagicOffset  = 16
	metaPageSizeOffs = 24
	maxPageSize      = 1 << 24
)

// verify checks an existing database without writing to it: bbolt opened
// read-only, our schema version, every record decoded, and bbolt's own
// consistency check. bbolt maps the file and trusts its page numbers, so a
// truncated file would fault on access: the size is checked against the
// meta pages first, and any remaining fault or panic becomes ErrCorrupt.
// (A panic inside bolt.Open itself leaks that read-only handle; Open then
// fails, and the daemon exits.)
func verify(path string, timeout time.Duration) error {
	done := make(chan error, 1)
	// A goroutine of its own, since SetPanicOnFault is per goroutine.
	go func() { done <- verifyGuarded(path, timeout) }()
	return <-done
}

func verifyGuarded(path string, timeout time.Duration) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
		if db != nil {
			_ = db.Close()
		}
	}()

	size, err := checkMetaSize(path)
	if err != nil {
		return err
	}
	// First only the meta pages are read, to check the size they claim
	// before bbolt follows any page number (the freelist's, on open).
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return boltOpenError(err, timeout)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > size {
			return fmt.Errorf("%w: truncated: file is %d bytes, its pages need %d", ErrCorrupt, size, tx.Size())
		}
		return nil
	})
	_ = db.Close()
	db = nil
	if err != nil {
		return err
	}

	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: timeout})
	if err != nil {
		return boltOpenError(err, timeout)
	}
	return db.View(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		if err := checkRecords(tx); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		// Every page of every bucket is read here, where a fault or a
		// failed page check is recovered, before bbolt's check, which
		// runs in a goroutine of its own: a damaged page in a bucket
		// checkRecords does not decode (the account watch's) killed the
		// process there.
		if err := readEveryPage(tx); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
}

// checkMetaSize returns the file size, refusing a file too short to hold
// bbolt's two meta pages (mapping it would fault on the second).
func checkMetaSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pageSize := int64(os.Getpagesize())
	var hdr [metaPageSizeOffs + 4]byte
	if _, err := io.ReadFull(f, hdr[:]); err == nil &&
		binary.NativeEndian.Uint32(hdr[metaMagicOffset:]) == boltMagic {
		// A torn first meta page is bbolt's normal crash case (it then
		// uses the second), so only a valid-looking one overrides the OS
		// page size, which is what bbolt falls back to as well.
		if ps := int64(binary.NativeEndian.Uint32(hdr[metaPageSizeOffs:])); ps >= 1024 && ps <= maxPageSize {
			pageSize = ps
		}
	}
	if fi.Size() < 2*pageSize {
		return 0, fmt.Errorf("%w (or not a bbolt file): %d bytes, shorter than two %d-byte meta pages",
			ErrCorrupt, fi.Size(), pageSize)
	}
	return fi.Size(), nil
}

// checkRecords decodes every record of our buckets.
func checkRecords(tx *bolt.Tx) error {
	check := func(name []byte, fn func(k, v []byte) error) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if err := fn(k, v); err != nil {
				return fmt.Errorf("bucket %s key %x: %w", name, k, err)
			}
			return nil
		})
	}
	if err := check(bucketBans, func(k, v []byte) error {
		if _, err := keyPrefix(k); err != nil {
			return err
		}
		_, err := decodeBan(v)
		return err
	}); err != nil {
		return err
	}
	if err := check(bucketExpiry, func(k, _ []byte) error {
		_, _, err := splitExpiryKey(k)
		return err
	}); err != nil {
		return err
	}
	if err := check(bucketHistory, func(k, v []byte) error {
		if _, err := keyPrefix(k); err != nil {
			return err
		}
		_, err := decodeHistory(v)
		return err
	}); err != nil {
		return err
	}
	if err := check(bucketWindows, func(_, v []byte) error {
		_, err := decodeWindows(nil, v)
		return err
	}); err != nil {
		return err
	}
	return check(bucketShards, func(k, v []byte) error {
		_, err := decodeShard(nil, k, v)
		return err
	})
}

// decodedBuckets are the buckets checkRecords reads through already.
var decodedBuckets = [][]byte{bucketBans, bucketExpiry, bucketHistory, bucketWindows, bucketShards}

// readEveryPage visits every key of every other bucket, nested ones too.
func readEveryPage(tx *bolt.Tx) error {
	var walk func(name []byte, b *bolt.Bucket) error
	walk = func(name []byte, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil
			}
			if nb := b.Bucket(k); nb != nil {
				return walk(k, nb)
			}
			return nil
		})
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if slices.ContainsFunc(decodedBuckets, func(d []byte) bool { return bytes.Equal(d, name) }) {
			return nil
		}
		if err := walk(name, b); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
		return nil
	})
}
