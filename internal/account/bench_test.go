package account

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkCheck is the policy answer's own cost, without the socket: a
// RCPT request of one of 500 accounts, each with about 20 messages in
// its last hour and 480 in its day (the clock moves with the requests),
// none over a limit.
// Baseline, same run: the request's lookup alone ("baseline=lookup"), an
// account held before any counting.
func BenchmarkCheck(b *testing.B) {
	const users, perHour = 500, 20
	names := make([]string, users)
	addrs := make([]netip.Addr, users)
	for i := range names {
		names[i] = fmt.Sprintf("user%d@example.test", i)
		addrs[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)})
	}
	insts := make([]string, 4096)
	for i := range insts {
		insts[i] = fmt.Sprintf("%x.%x.0", i, i*7)
	}
	run := func(b *testing.B, held bool) {
		var calls int64
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		step := time.Hour / (users * perHour)
		w := New(Options{Settings: DefaultSettings(), Now: func() time.Time { calls++; return t0.Add(time.Duration(calls) * step) }})
		if held {
			for _, u := range names {
				w.mu.Lock()
				a := w.get(u, 0)
				a.Held, a.HeldAction = true, "hold"
				w.mu.Unlock()
			}
		}
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			i := n % users
			v := w.Check(Request{User: names[i], Addr: addrs[i], State: "RCPT", Instance: insts[n%len(insts)]})
			if v.Held != held {
				b.Fatalf("request %d: held %v", n, v.Held)
			}
			n++
		}
	}
	b.Run("baseline=lookup", func(b *testing.B) { run(b, true) })
	b.Run("count", func(b *testing.B) { run(b, false) })
}
