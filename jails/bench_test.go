package jails

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// mixedLog returns a realistic mixed mail log: every test line, with the
// ones no jail matches repeated so that about 1 line in 30 is a failure,
// as on a busy server under a slow brute force. It also returns how many
// hits one pass over it gives.
func mixedLog(tb testing.TB, js []*Jail) ([]string, int) {
	tb.Helper()
	m := NewMatcher(js)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	var hitting, quiet []string
	for _, line := range allTestLines(tb) {
		if len(match(m, "", line, read, nil)) > 0 {
			hitting = append(hitting, line)
		} else {
			quiet = append(quiet, line)
		}
	}
	var out []string
	for i, line := range hitting {
		out = append(out, line)
		for k := range 29 {
			out = append(out, quiet[(i*29+k)%len(quiet)])
		}
	}
	return out, len(hitting)
}

// benchMatch runs a matcher over the mixed log, decoded beforehand, one
// line per iteration, and checks after the timer that it found every failure.
func benchMatch(b *testing.B, js []*Jail, prefilter bool) {
	texts, wantHits := mixedLog(b, js)
	m := newMatcher(js, prefilter)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	lines := decodeAll(texts, read) // as a source hands them over
	dst := make([]Hit, 0, 8)
	n, hits := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		dst = m.Match("", &lines[n%len(lines)], dst[:0])
		hits += len(dst)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	b.StopTimer()
	passes := n / len(lines)
	if passes > 0 && hits < passes*wantHits {
		b.Fatalf("%d hits over %d passes, want at least %d", hits, passes, passes*wantHits)
	}
}

// BenchmarkMatch is the matcher as used: five jails behind the prefilter.
func BenchmarkMatch(b *testing.B) { benchMatch(b, mailJails(b), true) }

// BenchmarkMatchRegexOnly is the baseline: every regex on every line.
func BenchmarkMatchRegexOnly(b *testing.B) { benchMatch(b, mailJails(b), false) }

// BenchmarkMatchSuccess is BenchmarkMatch with successregexes in the
// postfix-sasl and dovecot jails, as shipped: what clearing on success
// costs the lines that are not failures.
func BenchmarkMatchSuccess(b *testing.B) { benchMatch(b, withSuccess(mailJails(b)), true) }

// BenchmarkMatchNoHit is the common case alone: a line no jail wants,
// from a program no jail reads (most of a mail log: smtp, qmgr,
// cleanup) and from one a jail reads, whose message has none of the
// jails' literals; with the prefilter off as the baseline.
func BenchmarkMatchNoHit(b *testing.B) {
	read := time.Now()
	for _, tc := range []struct{ name, line string }{
		{"other-program", "Nov 24 16:04:18 mx1 postfix/smtp[13001]: 4Y1ZQk3Fz1z9vN: to=<bob@example.net>, relay=mx.example.net[203.0.113.80]:25, delay=0.52, delays=0.01/0.01/0.3/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Y1ZQl0Abc)"},
		{"jail-program", "Nov 24 16:04:21 mx1 postfix/smtpd[12409]: disconnect from mail-wr1-f44.google.com[209.85.221.44] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7"},
	} {
		for _, prefilter := range []bool{true, false} {
			name := tc.name
			if !prefilter {
				name += "/baseline-regex-only"
			}
			b.Run(name, func(b *testing.B) {
				m := newMatcher(mailJails(b), prefilter)
				l := decode(tc.line, read)
				var dst []Hit
				b.ReportAllocs()
				for b.Loop() {
					dst = m.Match("mail", &l, dst[:0])
				}
				if len(dst) != 0 {
					b.Fatal("unexpected hit")
				}
			})
		}
	}
}

const floodLine = "Nov 24 16:04:04 mx1 postfix/smtpd[12345]: warning: unknown[192.0.2.10]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"

// floodAddr returns the i-th address of a botnet flood: IPv4 and IPv6 mixed.
func floodAddr(i int) netip.Addr {
	if i%4 == 3 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
	}
	return netip.AddrFrom4([4]byte{10 + byte(i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// BenchmarkCounterMemory measures the heap a Counter holds per tracked
// address with a single failure, with and without a log line given
// (windows keep no line now: both should cost the same), at 100k and 1M
// addresses.
func BenchmarkCounterMemory(b *testing.B) {
	for _, keys := range []int{100_000, 1_000_000} {
		for _, tc := range []struct {
			name, line string
		}{
			{"noline", ""},
			{fmt.Sprintf("line%d", len(floodLine)), floodLine},
		} {
			b.Run(fmt.Sprintf("keys=%d/%s", keys, tc.name), func(b *testing.B) {
				j := &Jail{Name: "postfix-sasl", MaxRetry: 5, FindTime: time.Hour}
				var perKey float64
				for b.Loop() {
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					c := NewCounter(keys)
					for i := range keys {
						c.Add(Hit{Jail: j, Addr: floodAddr(i), Time: t0.Add(time.Duration(i) * time.Millisecond), Line: tc.line})
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
					if c.Len() != keys {
						b.Fatalf("Len %d, want %d", c.Len(), keys)
					}
					perKey = float64(after.HeapAlloc-before.HeapAlloc) / float64(keys)
					runtime.KeepAlive(c)
				}
				b.ReportMetric(perKey, "bytes/key")
			})
		}
	}
}

// BenchmarkCounterChanges is a checkpoint's share of the counter's work:
// 1M windows, 200 of them changed, then Changes reporting their shards.
func BenchmarkCounterChanges(b *testing.B) {
	const keys = 1_000_000
	j := &Jail{Name: "postfix-sasl", MaxRetry: 5, FindTime: time.Hour}
	c := NewCounter(keys)
	for i := range keys {
		c.Add(Hit{Jail: j, Addr: floodAddr(i), Time: t0})
	}
	c.Changes(true, func(string, int, []Window) {})
	windows, i := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		for range 200 {
			c.Add(Hit{Jail: j, Addr: floodAddr(i * 7919 % keys), Time: t0.Add(time.Second)})
			i++
		}
		c.Changes(false, func(_ string, _ int, ws []Window) { windows += len(ws) })
	}
	b.ReportMetric(float64(windows)/float64(b.N), "windows/op")
	if c.Len() != keys {
		b.Fatalf("Len %d, want %d", c.Len(), keys)
	}
}

// BenchmarkCounterFlood is a flood of distinct addresses through a full
// counter: every Add evicts a window.
func BenchmarkCounterFlood(b *testing.B) {
	j := &Jail{Name: "postfix-sasl", MaxRetry: 5, FindTime: time.Hour}
	c := NewCounter(10_000)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		c.Add(Hit{Jail: j, Addr: floodAddr(i), Time: t0.Add(time.Duration(i) * time.Millisecond), Line: floodLine})
		i++
	}
	if c.Len() > 10_000 {
		b.Fatalf("Len %d beyond the bound", c.Len())
	}
}
