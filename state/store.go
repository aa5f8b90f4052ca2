package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this package writes. A database written by a
// newer smtpband is refused rather than misread. Version 2 saves windows
// in shards (bucket windowShards); the version-1 windows bucket is still
// read, and emptied by the first checkpoint that replaces all windows.
const SchemaVersion = 2

var (
	// ErrNewerSchema is returned by Open for a database whose schema version
	// is newer than SchemaVersion.
	ErrNewerSchema = errors.New("state database has a newer schema version")
	// ErrCorrupt is returned by Open for a file that is not a readable
	// smtpban state database. The file is left as it was.
	ErrCorrupt = errors.New("state database is corrupt")
)

var (
	bucketMeta      = []byte("meta")
	bucketBans      = []byte("bans")
	bucketExpiry    = []byte("expiry")
	bucketHistory   = []byte("history")
	bucketWindows   = []byte("windows") // schema 1: chunks of windows with lines
	bucketShards    = []byte("window-shards")
	bucketPositions = []byte("positions")
	bucketAllow     = []byte("allow")

	allBuckets = [][]byte{bucketMeta, bucketBans, bucketExpiry, bucketHistory, bucketWindows, bucketShards, bucketPositions, bucketAllow, bucketJailHistory}

	keySchema = []byte("schema")
)

// Log attribute keys.
const (
	logPath = "path"
	logBans = "bans"
)

// Options configure Open.
type Options struct {
	Logger *slog.Logger // nil discards
	// Timeout is how long Open waits for another process's lock on the
	// file; zero waits forever (bbolt's default).
	Timeout time.Duration
	// Salvage, instead of refusing a damaged file (ErrCorrupt), reads
	// what still reads out of it, moves it aside as
	// <path>.damaged-<time>, writes the salvage into a fresh database and
	// opens that (see Recoveries). A newer schema, another program's bbolt
	// file and a lock are still refused. The daemon sets it; tools do not.
	Salvage bool
	Now     func() time.Time // for the damaged file's name; nil: time.Now
}

// initialMmap is the first size of bbolt's mapping of the file: room for
// about a hundred thousand bans before the first remap.
const initialMmap = 64 << 20

// Store is smtpband's durable state. It is safe for concurrent use: bbolt
// runs one writer at a time beside any number of readers.
type Store struct {
	db   *bolt.DB
	log  *slog.Logger
	path string
}

// Open opens the state database at path, creating it (mode 0600, parent
// directory 0700) if it does not exist. An existing file is first checked
// read-only, so a corrupt file, a file that is not bbolt, or a database of
// a newer schema is reported and never written to.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open state %s: create directory: %w", path, err)
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open state %s: not a regular file", path)
	case err == nil && fi.Size() > 0:
		if err := verify(path, opts.Timeout); err != nil {
			if !opts.Salvage || !salvageable(err) {
				return nil, fmt.Errorf("open state %s: %w", path, err)
			}
			now := time.Now
			if opts.Now != nil {
				now = opts.Now
			}
			rec, serr := salvage(path, err, opts, now())
			if serr != nil {
				return nil, fmt.Errorf("open state %s: %w; salvage: %w", path, err, serr)
			}
			log.Error("state database was damaged: moved aside, what still read was kept; bans missing from it are re-learnt from the kernel",
				logPath, path, "damaged", rec.Damaged, "reason", rec.Reason, "kept", rec.Summary(),
				"lost_records", rec.LostRecords, "lost", rec.Lost)
		}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}

	// A first mapping of initialMmap: bbolt grows it by doubling, and each
	// growth inside a write copies every node the transaction touched off
	// the old mapping; a burst's first bans paid for eight of them (a
	// quarter of the transaction). Address space only: the file does not
	// grow with it, and verify has checked the file's size already.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, InitialMmapSize: initialMmap})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, boltOpenError(err, opts.Timeout))
	}
	// With the larger mapping bbolt would grow the file 16 MiB at a time
	// (sparse, but that is what ls and a backup see): 1 MiB steps.
	db.AllocSize = 1 << 20
	s := &Store{db: db, log: log, path: path}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	log.Info("state opened", logPath, path)
	return s, nil
}

// boltOpenError turns bbolt's open errors into ones a person can act on.
func boltOpenError(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("locked by another process (waited %v): %w", timeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("%w (or not a bbolt file): %w", ErrCorrupt, err)
	}
	return err
}

// init creates the buckets and the schema version of a new database, and
// checks the version of an existing one.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		v := binary.BigEndian.AppendUint32(nil, SchemaVersion)
		return tx.Bucket(bucketMeta).Put(keySchema, v)
	})
}

// checkSchema accepts an empty database (new) or one of our schema; it
// refuses a newer schema and a bbolt file that is someone else's.
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return errors.New("not an smtpban state database (no schema version)")
		}
		return nil
	}
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return fmt.Errorf("%w: schema version is %d bytes, want 4", ErrCorrupt, len(v))
	}
	switch n := binary.BigEndian.Uint32(v); {
	case n > SchemaVersion:
		return fmt.Errorf("%w: %d, this smtpband reads up to %d", ErrNewerSchema, n, SchemaVersion)
	case n < 1:
		return fmt.Errorf("%w: schema version %d", ErrCorrupt, n)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database; a Store is unusable afterwards.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", s.path, err)
	}
	return nil
}
