package state

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
)

// mustOpen opens a store in a fresh directory. At cleanup it checks the
// store's invariants, closes it, and proves the file reopens.
func mustOpen(tb testing.TB) *Store {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "state", "smtpban.db"))
}

func mustOpenPath(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		checkInvariants(tb, s)
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		r, err := Open(path, Options{Timeout: time.Second})
		if err != nil {
			tb.Errorf("reopen at cleanup: %v", err)
			return
		}
		_ = r.Close()
	})
	return s
}

// reopen closes s and opens its file again; the old handle is spent.
func reopen(tb testing.TB, s *Store) *Store {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	r, err := Open(s.Path(), Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("reopen: %v", err)
	}
	*s = *r // so the cleanup of the first open closes this one
	return s
}

// checkInvariants asserts that the expiry index holds exactly one key per
// expiring ban, and nothing else.
func checkInvariants(tb testing.TB, s *Store) {
	tb.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		want := map[string]bool{}
		err := tx.Bucket(bucketBans).ForEach(func(k, v []byte) error {
			b, err := decodeBan(v)
			if err != nil {
				return err
			}
			if !bytes.Equal(k, prefixKey(b.Prefix)) {
				tb.Errorf("ban %v stored under key %x", b.Prefix, k)
			}
			if !b.Until.IsZero() {
				want[string(expiryKey(b.Until, b.Prefix))] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		n := 0
		err = tx.Bucket(bucketExpiry).ForEach(func(k, _ []byte) error {
			n++
			if !want[string(k)] {
				until, p, _ := splitExpiryKey(k)
				tb.Errorf("expiry index has a stray entry %v %v", until, p)
			}
			return nil
		})
		if n != len(want) {
			tb.Errorf("expiry index has %d entries, want %d", n, len(want))
		}
		return err
	})
	if err != nil {
		tb.Errorf("check invariants: %v", err)
	}
}

var t0 = time.Date(2025, 11, 24, 16, 4, 4, 0, time.UTC)

func pfx(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	return netip.PrefixFrom(netip.MustParseAddr(s), netip.MustParseAddr(s).BitLen())
}

func ban(p string, since, until time.Duration) Ban {
	b := Ban{
		Prefix:   pfx(p),
		Jail:     "postfix-sasl",
		Since:    t0.Add(since),
		Failures: 5,
		Lines:    []string{"warning: unknown[" + p + "]: SASL LOGIN authentication failed"},
		Origin:   "mx1",
	}
	if until != 0 {
		b.Until = t0.Add(until)
	}
	return b
}

// diff compares with netip values compared as values.
func diff(want, got any) string {
	return cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{}))
}
