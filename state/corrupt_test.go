package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// realDB writes a closed database with enough bans and windows to span
// many pages, and returns its path.
func realDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "smtpban.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var bans []Ban
	for i := range 500 {
		bans = append(bans, ban(fmt.Sprintf("10.0.%d.%d", i/256, i%256), 0, time.Hour))
	}
	if _, err := s.PutBans(bans); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(Checkpoint{
		Positions: map[string][]byte{"mail.log": []byte("pos")},
		Windows:   testWindows(2000),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// damagedCase is a file Open refuses; with Options.Salvage, a damaged one
// (salvage) is moved aside and opened fresh with what still read, and the
// others are still refused.
type damagedCase struct {
	name    string
	prepare func(t *testing.T) string // returns the path
	wantIs  error
	wantMsg string
	salvage bool
}

func TestOpenRefuses(t *testing.T) {
	for _, tt := range damagedCases() {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t)
			before := fileSum(t, path)
			s, err := Open(path, Options{Timeout: time.Second})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			// The path holds the test's name: look for the message without it.
			if !strings.Contains(strings.ReplaceAll(err.Error(), path, ""), tt.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not mention %q and the path", err, tt.wantMsg)
			}
			if after := fileSum(t, path); after != before {
				t.Errorf("Open changed the file")
			}
			// Still refused the second time: nothing was "repaired".
			if s, err := Open(path, Options{Timeout: time.Second}); err == nil {
				s.Close()
				t.Error("second Open succeeded")
			}
		})
	}
}

func damagedCases() []damagedCase {
	return []damagedCase{
		{
			name: "short text file",
			prepare: func(t *testing.T) string {
				return writeFile(t, []byte("hello, this is not a database\n"))
			},
			wantIs:  ErrCorrupt,
			wantMsg: "corrupt",
			salvage: true,
		},
		{
			name: "large garbage",
			prepare: func(t *testing.T) string {
				b := make([]byte, 256<<10)
				for i := range b {
					b[i] = byte(i*7 + i>>8)
				}
				return writeFile(t, b)
			},
			wantIs:  ErrCorrupt,
			wantMsg: "corrupt",
			salvage: true,
		},
		{
			name: "real database truncated to half its pages",
			prepare: func(t *testing.T) string {
				// Half the pages in use, not half the file: bbolt
				// grows a file ahead of its pages.
				p := realDB(t)
				truncate(t, p, pagesInUse(t, p)/2)
				return p
			},
			wantIs:  ErrCorrupt,
			wantMsg: "truncated",
			salvage: true,
		},
		{
			name: "real database truncated to its first page",
			prepare: func(t *testing.T) string {
				p := realDB(t)
				truncate(t, p, int64(os.Getpagesize()))
				return p
			},
			wantIs:  ErrCorrupt,
			wantMsg: "corrupt",
			salvage: true,
		},
		{
			name: "real database with both meta pages zeroed",
			prepare: func(t *testing.T) string {
				p := realDB(t)
				overwrite(t, p, 0, make([]byte, 2*os.Getpagesize()))
				return p
			},
			wantIs:  ErrCorrupt,
			wantMsg: "corrupt",
			salvage: true,
		},
		{
			name: "real database with data pages overwritten",
			prepare: func(t *testing.T) string {
				p := realDB(t)
				ps := os.Getpagesize()
				overwrite(t, p, int64(2*ps), bytes.Repeat([]byte{0xA5}, 8*ps))
				return p
			},
			wantIs:  ErrCorrupt,
			wantMsg: "corrupt",
			salvage: true,
		},
		{
			name: "undecodable ban record",
			prepare: func(t *testing.T) string {
				p := realDB(t)
				rawPut(t, p, bucketBans, prefixKey(pfx("192.0.2.1")), []byte("{not json"))
				return p
			},
			wantIs:  ErrCorrupt,
			wantMsg: "decode ban",
			salvage: true,
		},
		{
			name: "newer schema",
			prepare: func(t *testing.T) string {
				p := realDB(t)
				setSchema(t, p, SchemaVersion+1)
				return p
			},
			wantIs:  ErrNewerSchema,
			wantMsg: "newer schema",
		},
		{
			name: "another program's bbolt file",
			prepare: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "other.db")
				db, err := bolt.Open(p, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error {
					_, err := tx.CreateBucket([]byte("something-else"))
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantMsg: "not an smtpban state database",
		},
	}
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "smtpban")
	path := filepath.Join(dir, "state.db")
	s := mustOpenPath(t, path)
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s mode %v, want at most %v", p, got, want)
		}
	}
	// An empty file (a crash before bbolt's first write) is a new database.
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpenPath(t, empty)
	_ = s
}

func TestOpenLocked(t *testing.T) {
	s := mustOpen(t)
	_, err := Open(s.Path(), Options{Timeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open of a locked file: %v, want a lock timeout", err)
	}
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "smtpban.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pagesInUse is the size the meta page says the database's pages take.
func pagesInUse(t *testing.T, p string) int64 {
	t.Helper()
	db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func truncate(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func setSchema(t *testing.T, p string, v uint32) {
	t.Helper()
	rawPut(t, p, bucketMeta, keySchema, binary.BigEndian.AppendUint32(nil, v))
}

// rawPut writes one key with bbolt directly, behind the Store's back.
func rawPut(t *testing.T, p string, bucket, k, v []byte) {
	t.Helper()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put(k, v)
	}); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
