package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchAddrs returns n distinct IPv4 addresses starting at offset.
func benchAddrs(n, offset int) []Entry {
	es := make([]Entry, n)
	for i := range n {
		j := i + offset
		es[i] = Entry{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}), 32), time.Hour}
	}
	return es
}

// nftScript writes the same elements as an `nft -f` file.
func nftScript(b *testing.B, es []Entry) string {
	var sb strings.Builder
	sb.WriteString("add element inet smtpban addrs4 {\n")
	for i, e := range es {
		if i > 0 {
			sb.WriteString(",\n")
		}
		fmt.Fprintf(&sb, "%s timeout %ds", e.Prefix.Addr(), int(e.Timeout.Seconds()))
	}
	sb.WriteString("\n}\n")
	path := filepath.Join(b.TempDir(), "restore.nft")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkRestore100k loads 100,000 single-address bans into an empty set,
// through NFT.Add and, as the baseline, `nft -f` with the same elements.
func BenchmarkRestore100k(b *testing.B) {
	const count = 100_000
	ctx := context.Background()
	ns := mustNetNS(b)
	n := mustNFT(b, ns, NFTOptions{})
	es := benchAddrs(count, 0)
	script := nftScript(b, es)
	var viaAdd, viaNft time.Duration
	runs := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ns.execB(b, "nft", "flush", "set", "inet", "smtpban", "addrs4")
		b.StartTimer()
		start := time.Now()
		if err := n.Add(ctx, es); err != nil {
			b.Fatal(err)
		}
		viaAdd += time.Since(start)

		b.StopTimer()
		ns.execB(b, "nft", "flush", "set", "inet", "smtpban", "addrs4")
		start = time.Now()
		ns.execB(b, "nft", "-f", script)
		viaNft += time.Since(start)
		ns.execB(b, "nft", "flush", "set", "inet", "smtpban", "addrs4")
		b.StartTimer()
		runs++
	}
	b.StopTimer()
	// Check the result of one more Add outside the timing.
	if err := n.Add(ctx, es); err != nil {
		b.Fatal(err)
	}
	if got, err := n.List(ctx); err != nil || len(got) != count {
		b.Fatalf("after restore List has %d entries (err %v), want %d", len(got), err, count)
	}
	add, nft := viaAdd.Seconds()/float64(runs), viaNft.Seconds()/float64(runs)
	b.ReportMetric(add, "add-s/restore")
	b.ReportMetric(nft, "nft-f-s/restore")
	b.ReportMetric(add/nft, "add/nft-f")
}

// BenchmarkAddSteady adds new bans in batches of 1 and 100, against one
// `nft add element` process per batch (what fail2ban does per ban).
func BenchmarkAddSteady(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			ns := mustNetNS(b)
			n := mustNFT(b, ns, NFTOptions{})
			// Baseline first, on addresses of its own.
			const nftRuns = 20
			start := time.Now()
			for i := range nftRuns {
				var els []string
				for _, e := range benchAddrs(batch, 1<<23+i*batch) {
					els = append(els, e.Prefix.Addr().String()+" timeout 3600s")
				}
				ns.execB(b, "nft", "add", "element", "inet", "smtpban", "addrs4", "{ "+strings.Join(els, ", ")+" }")
			}
			nftRate := float64(nftRuns*batch) / time.Since(start).Seconds()

			off := 0
			b.ReportAllocs()
			for b.Loop() {
				if err := n.Add(ctx, benchAddrs(batch, off)); err != nil {
					b.Fatal(err)
				}
				off += batch
			}
			rate := float64(off) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "bans/s")
			b.ReportMetric(nftRate, "nft-bans/s")
			b.ReportMetric(rate/nftRate, "speedup")
		})
	}
}

// BenchmarkAddNew is the ban latency: one new address per Add, with the
// kernel insert. BenchmarkAddRefresh re-adds one present address (a ban
// extended), which needs a delete in the batch. Both report their p99,
// beside one `nft add element` process per ban as the baseline.
func BenchmarkAddNew(b *testing.B)     { benchAddOne(b, false) }
func BenchmarkAddRefresh(b *testing.B) { benchAddOne(b, true) }

func benchAddOne(b *testing.B, refresh bool) {
	ctx := context.Background()
	ns := mustNetNS(b)
	n := mustNFT(b, ns, NFTOptions{})
	const nftRuns = 20
	start := time.Now()
	for i := range nftRuns {
		ns.execB(b, "nft", "add", "element", "inet", "smtpban", "addrs4", "{ "+benchAddrs(1, 1<<23+i)[0].Prefix.Addr().String()+" timeout 3600s }")
	}
	nftPer := time.Since(start) / nftRuns
	present := benchAddrs(1, 1<<22)
	if err := n.Add(ctx, present); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	off := 0
	b.ReportAllocs()
	for b.Loop() {
		es := present
		if !refresh {
			es = benchAddrs(1, off)
		}
		t0 := time.Now()
		if err := n.Add(ctx, es); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		off++
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(nftPer.Microseconds())/1000, "nft-ms/ban")
	if got, err := n.List(ctx); err != nil || (!refresh && len(got) != off+1+nftRuns) {
		b.Fatalf("List has %d entries (err %v), want %d", len(got), err, off+1+nftRuns)
	}
}
