package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func benchAddr(i int) netip.Prefix {
	var a [16]byte
	a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	binary.BigEndian.PutUint64(a[8:], uint64(i))
	return netip.PrefixFrom(netip.AddrFrom16(a), 128)
}

func benchBan(i int) Ban {
	return Ban{
		Prefix: benchAddr(i), Jail: "postfix-sasl", Since: t0, Until: t0.Add(time.Hour), Failures: 5,
		Lines:  []string{"warning: unknown[2001:db8::1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"},
		Origin: "mx1",
	}
}

// BenchmarkPutBan stores one ban per op, each its own fsynced commit. The
// baseline puts the same encoded bytes with bbolt directly, one commit each.
func BenchmarkPutBan(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		s := mustOpen(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.PutBan(benchBan(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bans/s")
		b.StopTimer()
		if n, _, _ := s.BanHistory(benchAddr(i - 1)); n != 1 {
			b.Fatalf("last ban not stored")
		}
	})
	b.Run("raw-bbolt", func(b *testing.B) {
		s := mustOpen(b)
		v, _ := encodeBan(benchBan(0))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			err := s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketBans).Put(prefixKey(benchAddr(i)), v)
			})
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bans/s")
		b.StopTimer()
		_ = s.db.Update(func(tx *bolt.Tx) error { // leave the store consistent for its cleanup
			return tx.DeleteBucket(bucketBans)
		})
		_ = s.db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketBans); return err })
	})
}

// BenchmarkPutBans100k stores 100k new bans per op in one transaction.
func BenchmarkPutBans100k(b *testing.B) {
	const n = 100_000
	s := mustOpen(b)
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		b.StopTimer()
		bans := make([]Ban, n)
		for i := range bans {
			bans[i] = benchBan(round*n + i)
		}
		b.StartTimer()
		if _, err := s.PutBans(bans); err != nil {
			b.Fatal(err)
		}
		round++
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "bans/s")
	b.StopTimer()
	if all, _ := s.Bans(); len(all) != round*n {
		b.Fatalf("stored %d bans, want %d", len(all), round*n)
	}
}

// BenchmarkCheckpoint saves 100k windows (3 failures and 3 log lines each)
// per op. "store" is Checkpoint; "raw-bbolt-same-bytes" commits the same
// pre-encoded chunks with bbolt directly (the floor: bbolt and fsync);
// "json-key-per-window" is the design not taken, for comparison.
func BenchmarkCheckpoint(b *testing.B) {
	const n = 100_000
	ws := testWindows(n)
	chunks := encodeWindowChunks(ws)
	size := 0
	for _, c := range chunks {
		size += len(c)
	}
	c := Checkpoint{Positions: map[string][]byte{"mail.log": []byte("ino=1 off=123456")}, Windows: ws}

	report := func(b *testing.B, bytes int) {
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "windows/s")
		b.ReportMetric(float64(bytes)/(1<<20), "MiB/op")
	}
	b.Run("store", func(b *testing.B) {
		s := mustOpen(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Checkpoint(c); err != nil {
				b.Fatal(err)
			}
		}
		report(b, size)
		b.StopTimer()
		if got, _ := s.Windows(); len(got) != n {
			b.Fatalf("read back %d windows, want %d", len(got), n)
		}
	})
	b.Run("raw-bbolt-same-bytes", func(b *testing.B) {
		s := mustOpen(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.db.Update(func(tx *bolt.Tx) error { return putWindowChunks(tx, chunks) }); err != nil {
				b.Fatal(err)
			}
		}
		report(b, size)
	})
	b.Run("json-key-per-window", func(b *testing.B) {
		s := mustOpen(b)
		name := []byte("windows-json")
		jsonBytes := 0
		b.ReportAllocs()
		for b.Loop() {
			jsonBytes = 0
			err := s.db.Update(func(tx *bolt.Tx) error {
				_ = tx.DeleteBucket(name)
				bk, err := tx.CreateBucket(name)
				if err != nil {
					return err
				}
				for i, w := range ws {
					v, err := json.Marshal(w)
					if err != nil {
						return err
					}
					jsonBytes += len(v)
					if err := bk.Put(fmt.Appendf(nil, "%s\x00%08d", w.Jail, i), v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		report(b, jsonBytes)
	})
}

// BenchmarkWindows reads back 100k checkpointed windows, as at start-up.
func BenchmarkWindows(b *testing.B) {
	const n = 100_000
	s := mustOpen(b)
	if err := s.Checkpoint(Checkpoint{Windows: testWindows(n)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ws, err := s.Windows()
		if err != nil || len(ws) != n {
			b.Fatalf("Windows = %d, %v", len(ws), err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "windows/s")
}
