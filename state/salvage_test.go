package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
)

// TestOpenSalvages opens every damaged file of TestOpenRefuses with
// Salvage: a damaged one is moved aside, the daemon gets a working
// database holding exactly bans that were in the original (as many as
// still read), and a recovery to report; the others are still refused and
// left as they were.
func TestOpenSalvages(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)
	for _, tt := range append(damagedCases(), damagedCase{
		name: "real database with its freelist page overwritten",
		prepare: func(t *testing.T) string {
			p := realDB(t)
			ps := int64(os.Getpagesize())
			for _, id := range freelistPages(t, p) {
				overwrite(t, p, int64(id)*ps, bytes.Repeat([]byte{0x5A}, int(ps)))
			}
			return p
		},
		salvage: true,
	}) {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t)
			want := map[string]Ban{}
			if tt.salvage {
				for _, b := range bansOfRealDB() {
					want[b.Prefix.String()] = b
				}
			}
			before := fileSum(t, path)
			s, err := Open(path, Options{Timeout: time.Second, Salvage: true, Now: func() time.Time { return now }})
			if !tt.salvage {
				if err == nil {
					s.Close()
					t.Fatal("Open with Salvage succeeded, want it refused")
				}
				if after := fileSum(t, path); after != before {
					t.Errorf("Open changed a file it refused")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open with Salvage: %v", err)
			}
			damaged := path + ".damaged-20261202T013000Z"
			if sum := fileSum(t, damaged); sum != before {
				t.Errorf("the damaged file was not moved aside unchanged")
			}
			rs, err := s.Recoveries()
			if err != nil || len(rs) != 1 {
				t.Fatalf("Recoveries = %v, %v; want one", rs, err)
			}
			t.Logf("recovery: %s; lost %d: %q", rs[0].Summary(), rs[0].LostRecords, rs[0].Lost)
			if rs[0].Damaged != damaged || rs[0].Reason == "" {
				t.Errorf("recovery = %+v, want damaged %s and a reason", rs[0], damaged)
			}
			bans, err := s.Bans()
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bans {
				w, ok := want[b.Prefix.String()]
				if !ok {
					t.Errorf("salvaged ban %s was never saved", b.Prefix)
					continue
				}
				w.Count = b.Count
				if d := cmp.Diff(w, b, cmpopts.EquateComparable(netip.Prefix{})); d != "" {
					t.Errorf("salvaged ban %s differs (-saved +salvaged):\n%s", b.Prefix, d)
				}
			}
			if rs[0].Salvaged["bans"] != len(bans) {
				t.Errorf("recovery says %d bans salvaged, the database holds %d", rs[0].Salvaged["bans"], len(bans))
			}
			switch tt.name {
			case "undecodable ban record":
				if len(bans) != len(want) || rs[0].LostRecords != 1 {
					t.Errorf("kept %d of %d bans, lost %d records; want all but the bad one, 1 lost", len(bans), len(want), rs[0].LostRecords)
				}
			case "real database with its freelist page overwritten":
				if len(bans) != len(want) {
					t.Errorf("kept %d of %d bans; a freelist holds no records", len(bans), len(want))
				}
			case "real database with data pages overwritten":
				// The bans' branch page is among them: what is kept comes
				// from the leaf pages found cut off from it.
				if len(bans) < len(want)/2 {
					t.Errorf("kept %d of %d bans from a file whose other pages are intact", len(bans), len(want))
				}
			}
			checkInvariants(t, s)
			// Writable, and it reopens without a second salvage.
			if _, err := s.PutBan(ban("192.0.2.99", 0, time.Hour)); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, s)
			if n, err := s.AckRecovery(); err != nil || n != 1 {
				t.Fatalf("AckRecovery = %d, %v; want 1", n, err)
			}
			if rs, _ := s.Recoveries(); len(rs) != 0 {
				t.Errorf("after the acknowledgement: %v", rs)
			}
			s.Close()
			if m, _ := filepath.Glob(path + ".damaged-*"); len(m) != 1 {
				t.Errorf("damaged files: %v, want one", m)
			}
		})
	}
}

// bansOfRealDB are the bans realDB saves.
func bansOfRealDB() []Ban {
	var bans []Ban
	for i := range 500 {
		b := ban(ipOf(i), 0, time.Hour)
		bans = append(bans, b)
	}
	return bans
}

func ipOf(i int) string { return fmt.Sprintf("10.0.%d.%d", i/256, i%256) }

// freelistPages reads the freelist page of both meta pages.
func freelistPages(t *testing.T, path string) []uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	var out []uint64
	for m := range 2 {
		// page header 16, magic, version, page size, flags (4 each), root
		// bucket (16), then the freelist page id.
		out = append(out, binary.NativeEndian.Uint64(b[m*ps+16+16+16:]))
	}
	return out
}

// TestSalvageWalksEveryBucket: a damaged leaf page in a bucket that is
// not one of the ban buckets (the account watch's, created on first use)
// is found by the walk, so bbolt's check, which would fault on it in a
// goroutine no recover reaches, does not run; the bans all come through,
// and so do the other bucket's readable records.
func TestSalvageWalksEveryBucket(t *testing.T) {
	p := realDB(t)
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("accounts"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			if err := b.Put(fmt.Appendf(nil, "acct-%05d", i), bytes.Repeat([]byte("x"), 200)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A leaf page of the accounts bucket, from the middle of its keys:
	// its header is overwritten, so bbolt's page check fails on it.
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	hit := -1
	for off := 0; off+ps <= len(data); off += ps {
		if bytes.Contains(data[off:off+ps], []byte("acct-01000")) {
			hit = off
			break
		}
	}
	if hit < 0 {
		t.Fatal("no page holds key acct-01000")
	}
	overwrite(t, p, int64(hit), bytes.Repeat([]byte{0xA5}, 16))

	s, err := Open(p, Options{Timeout: time.Second, Salvage: true})
	if err != nil {
		t.Fatalf("Open with Salvage: %v", err)
	}
	defer s.Close()
	bans, err := s.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != len(bansOfRealDB()) {
		t.Errorf("kept %d of %d bans", len(bans), len(bansOfRealDB()))
	}
	rs, _ := s.Recoveries()
	if len(rs) != 1 || !strings.Contains(strings.Join(rs[0].Lost, "\n"), "accounts") {
		t.Errorf("recovery %+v: want the accounts bucket's damage named", rs)
	}
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("accounts")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n >= 2000 {
		t.Errorf("accounts salvaged: %d of 2000, want all but the damaged page's", n)
	}
}
