package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

// benchWindowSet makes n windows of one failure each, IPv4 and IPv6, a
// third with user hashes: what a botnet flood leaves in the counter.
func benchWindowSet(n int) []Window {
	ws := make([]Window, n)
	times := make([]time.Time, n)
	for i := range ws {
		a := netip.AddrFrom4([4]byte{20 + byte(i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
		if i%4 == 3 {
			a = benchAddr(i).Addr()
		}
		times[i] = t0.Add(time.Duration(i) * time.Millisecond)
		ws[i] = Window{Jail: "postfix-sasl", Key: netip.PrefixFrom(a, a.BitLen()), Times: times[i : i+1 : i+1]}
		if i%3 == 0 {
			ws[i].Users, ws[i].Passes = []uint32{uint32(i) | 1}, []uint32{0}
		}
	}
	return ws
}

func benchShardOf(w Window, bits int) uint16 {
	b := w.Key.Addr().As16()
	h := binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:])*0xc2b2ae3d27d4eb4f
	return uint16(h >> (64 - bits))
}

// BenchmarkCheckpoint saves 1M windows' changes per op, with 200 (the
// daemon at 5000 lines/s, a few hits a second), 1% and 100% of them
// changed, encoding included. "shards" is Checkpoint as the daemon calls
// it, at two shard counts per jail (jails.ShardBits 13 and 16): each
// changed shard re-encoded whole; "key-per-window" is the design not
// taken: one bbolt key per window, only the changed ones put;
// "replace-all" rewrites every window each time, as schema 1 did.
func BenchmarkCheckpoint(b *testing.B) {
	const n = 1_000_000
	ws := benchWindowSet(n)
	type sharding struct {
		bits    int
		members [][]int
	}
	var shardings []sharding
	for _, bits := range []int{13, 16} {
		sh := sharding{bits: bits, members: make([][]int, 1<<bits)}
		for i, w := range ws {
			s := benchShardOf(w, bits)
			sh.members[s] = append(sh.members[s], i)
		}
		shardings = append(shardings, sh)
	}
	encode := func(sh sharding, s uint16, buf []Window) Shard {
		buf = buf[:0]
		for _, i := range sh.members[s] {
			buf = append(buf, ws[i])
		}
		return Shard{Jail: "postfix-sasl", N: s, Value: AppendWindows(nil, buf)}
	}
	all := func(sh sharding) []Shard {
		var out []Shard
		for s := range sh.members {
			out = append(out, encode(sh, uint16(s), nil))
		}
		return out
	}
	pos := map[string][]byte{"mail.log": []byte("ino=1 off=123456")}
	// touch changes the times of k random windows and returns them.
	r := rand.New(rand.NewPCG(1, 2))
	touch := func(k int) []int {
		idx := make([]int, k)
		for j := range idx {
			i := j
			if k < n {
				i = r.IntN(n)
			}
			idx[j] = i
			ws[i].Times[0] = ws[i].Times[0].Add(time.Second)
		}
		return idx
	}
	for _, dirty := range []int{200, n / 100, n} {
		for _, sh := range shardings {
			b.Run(fmt.Sprintf("shards=%d/dirty=%d", 1<<sh.bits, dirty), func(b *testing.B) {
				s := mustOpen(b)
				if err := s.Checkpoint(Checkpoint{Shards: all(sh), Replace: true}); err != nil {
					b.Fatal(err)
				}
				var written int
				var buf []Window
				b.ReportAllocs()
				for b.Loop() {
					seen := map[uint16]bool{}
					var shards []Shard
					written = 0
					for _, i := range touch(dirty) {
						if k := benchShardOf(ws[i], sh.bits); !seen[k] {
							seen[k] = true
							shards = append(shards, encode(sh, k, buf))
							written += len(shards[len(shards)-1].Value)
						}
					}
					if err := s.Checkpoint(Checkpoint{Positions: pos, Shards: shards, KeepWindows: true}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(written)/(1<<20), "MiB/op")
				b.StopTimer()
				if got, err := s.Windows(); err != nil || len(got) != n {
					b.Fatalf("read back %d windows, %v; want %d", len(got), err, n)
				}
			})
		}
		b.Run(fmt.Sprintf("key-per-window/dirty=%d", dirty), func(b *testing.B) {
			s := mustOpen(b)
			name := []byte("windows-per-key")
			key := func(w Window) []byte { k, _ := w.Key.MarshalBinary(); return append([]byte("postfix-sasl\x00"), k...) }
			// Put in key order: bbolt builds a big tree fast only that way.
			order := make([]int, n)
			keys := make([][]byte, n)
			for i := range order {
				order[i], keys[i] = i, key(ws[i])
			}
			slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
			err := s.db.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucket(name)
				if err != nil {
					return err
				}
				bk.FillPercent = 0.9
				for _, i := range order {
					if err := bk.Put(keys[i], AppendWindows(nil, ws[i:i+1])); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			var written int
			b.ReportAllocs()
			for b.Loop() {
				idx := touch(dirty)
				written = 0
				err := s.db.Update(func(tx *bolt.Tx) error {
					if err := tx.Bucket(bucketPositions).Put([]byte("mail.log"), pos["mail.log"]); err != nil {
						return err
					}
					bk := tx.Bucket(name)
					for _, i := range idx {
						v := AppendWindows(nil, ws[i:i+1])
						written += len(v)
						if err := bk.Put(key(ws[i]), v); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(written)/(1<<20), "MiB/op")
		})
	}
	b.Run("replace-all", func(b *testing.B) {
		s := mustOpen(b)
		b.ReportAllocs()
		for b.Loop() {
			touch(n / 100)
			if err := s.Checkpoint(Checkpoint{Positions: pos, Shards: all(shardings[0]), Replace: true}); err != nil {
				b.Fatal(err)
			}
		}
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

// BenchmarkActiveBanCounts counts the bans in force per jail among 20,000,
// as a metrics scrape and a status do; the baseline is what they did
// before, Bans and a count over the decoded bans.
func BenchmarkActiveBanCounts(b *testing.B) {
	s := mustOpen(b)
	bans := make([]Ban, 20_000)
	for i := range bans {
		bans[i] = benchBan(i)
	}
	if _, err := s.PutBans(bans); err != nil {
		b.Fatal(err)
	}
	now := t0.Add(time.Minute)
	b.Run("counts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, err := s.ActiveBanCounts(now)
			if err != nil || n["postfix-sasl"] != len(bans) {
				b.Fatalf("counts %v, %v", n, err)
			}
		}
	})
	b.Run("baseline-Bans", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			all, err := s.Bans()
			n := map[string]int{}
			for _, x := range all {
				if x.Until.After(now) {
					n[x.Jail]++
				}
			}
			if err != nil || n["postfix-sasl"] != len(bans) {
				b.Fatalf("counts %v, %v", n, err)
			}
		}
	})
}

// BenchmarkOpen100k opens a database of 100,000 bans: healthy (the
// baseline: Open's read-only check of every record), and damaged (8 KiB
// overwritten in the middle), which Open with Salvage moves aside and
// rebuilds. The figure to read is the ratio of the two.
func BenchmarkOpen100k(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src.db")
	s, err := Open(src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	bans := make([]Ban, 100_000)
	for i := range bans {
		bans[i] = benchBan(i)
	}
	if _, err := s.PutBans(bans); err != nil {
		b.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	ps := os.Getpagesize()
	damaged := bytes.Clone(data)
	off := len(damaged) / 2 / ps * ps
	copy(damaged[off:off+8<<10], bytes.Repeat([]byte{0xA5}, 8<<10))
	for _, bc := range []struct {
		name string
		data []byte
	}{{"healthy", data}, {"damaged", damaged}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "smtpban.db")
			var kept int
			for b.Loop() {
				b.StopTimer()
				matches, _ := filepath.Glob(path + "*")
				for _, m := range matches {
					os.Remove(m)
				}
				if err := os.WriteFile(path, bc.data, 0o600); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s, err := Open(path, Options{Salvage: true})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				kept, _ = banCount(s)
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(kept), "bans-kept")
		})
	}
}

func banCount(s *Store) (int, error) {
	bs, err := s.Bans()
	return len(bs), err
}
