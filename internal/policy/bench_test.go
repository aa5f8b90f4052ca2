package policy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smtpban/internal/account"
)

// benchClients is how many connections ask at once: Postfix keeps one per
// smtpd process, and a busy small server runs a few dozen.
const benchClients = 32

// BenchmarkPolicy measures the policy service with benchClients
// concurrent clients on loopback, against a bare server that answers
// DUNNO without reading what it is asked (the baseline, same run: what
// the protocol, loopback and this machine cost alone).
//
// "saturated": each client asks again as soon as it has its answer, the
// most answers per second the service gives. "paced": the clients
// together ask pacedRate times a second, as smtpd processes do between
// their clients' commands; p50 and p99 there are the latency Postfix
// sees.
//
//	go test -run '^$' -bench BenchmarkPolicy -benchtime 20000x ./internal/policy/
func BenchmarkPolicy(b *testing.B) {
	for _, mode := range []struct {
		name string
		rate int
	}{{"saturated", 0}, {"paced", pacedRate}} {
		b.Run(mode.name+"/baseline=bare-dunno", func(b *testing.B) {
			ln := bareServer(b)
			drive(b, ln.Addr().String(), mode.rate)
		})
		b.Run(mode.name+"/smtpband", func(b *testing.B) {
			// 500 accounts, each with about 20 messages in its last
			// hour: a small organisation's busy day, none over its
			// limits. The clock moves with the requests so that the
			// windows hold that many.
			const users, perHour = 500, 20
			var calls atomic.Int64
			t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			step := time.Hour / (users * perHour)
			w := account.New(account.Options{
				Settings: account.DefaultSettings(),
				Now:      func() time.Time { return t0.Add(time.Duration(calls.Add(1)) * step) },
			})
			s := startServer(b, "127.0.0.1:0", w)
			drive(b, s.Addr().String(), mode.rate)
			if n := s.Stats.Held.Load(); n != 0 {
				b.Fatalf("%d answers held: the benchmark should measure the counting path", n)
			}
		})
	}
}

// pacedRate is the paced runs' requests per second, all clients together:
// 2,000 recipients a second is far beyond what a small organisation's
// server sees.
const pacedRate = 2000

// bareServer answers action=DUNNO to every request, reading only up to
// the empty line.
func bareServer(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 1 {
						if _, err := io.WriteString(c, "action=DUNNO\n\n"); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln
}

// drive sends b.N requests over benchClients connections, each waiting
// for its answer before the next, as smtpd does, rate a second in all (0:
// as fast as answered), and reports answers/s and latency percentiles.
func drive(b *testing.B, addr string, rate int) {
	const users = "user"
	var interval time.Duration // per client
	if rate > 0 {
		interval = time.Second * benchClients / time.Duration(rate)
	}
	conns := make([]net.Conn, benchClients)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	lat := make([][]time.Duration, benchClients)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchClients)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(c)
			var buf []byte
			// Paced clients start spread over one interval.
			due := time.Now().Add(interval * time.Duration(i) / benchClients)
			for {
				if interval > 0 {
					time.Sleep(time.Until(due))
					due = due.Add(interval)
				}
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				buf = fmt.Appendf(buf[:0], "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"+
					"client_address=192.0.2.%d\nclient_name=unknown\nreverse_client_name=unknown\nhelo_name=laptop\n"+
					"sender=%s%d@example.test\nrecipient=friend@example.org\nrecipient_count=0\nqueue_id=\n"+
					"instance=%x.%x.0\nsize=0\nsasl_method=PLAIN\nsasl_username=%s%d@example.test\n\n",
					n%250+1, users, n%500, i, n, users, n%500)
				t := time.Now()
				if _, err := c.Write(buf); err != nil {
					errs <- err
					return
				}
				line, err := r.ReadSlice('\n')
				if err != nil {
					errs <- err
					return
				}
				if string(line) != "action=DUNNO\n" {
					errs <- fmt.Errorf("answer %q", line)
					return
				}
				if _, err := r.ReadSlice('\n'); err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) != b.N {
		b.Fatalf("%d answers, want %d", len(all), b.N)
	}
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "answers/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(0, "ns/op") // per-op time is the wrong figure for concurrent clients
}
