package main

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/google/nftables"
)

// latency appends 5 SASL failures (postfix-sasl's maxretry) for each of
// o.bans addresses, one address at a time, and times from the write of the
// 5th line to (a) the daemon's "ban" log line, which it writes after the
// firewall call returned, and (b) the address seen in the kernel set by a
// netlink dump in a tight loop (about 0.1 ms per poll with few elements).
func latency(ctx context.Context, o options) error {
	e, err := runningEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	c, err := e.nft()
	if err != nil {
		return err
	}
	var toLog, toSet []time.Duration
	polls := 0
	for i := range o.bans {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		set, log, n, err := e.banOnce(c, latencyAddr(i))
		if err != nil {
			return err
		}
		polls += n
		toSet = append(toSet, set)
		if log > 0 {
			toLog = append(toLog, log)
		}
	}
	fmt.Printf("ban latency over %d bans (append of the 5th failure line ->):\n", o.bans)
	fmt.Printf("  kernel set (netlink poll, %d polls): p50 %s  p90 %s  p99 %s  max %s\n", polls, pct(toSet, 50), pct(toSet, 90), pct(toSet, 99), pct(toSet, 100))
	fmt.Printf("  daemon 'ban' log line (after the nft call, n=%d): p50 %s  p90 %s  p99 %s  max %s\n", len(toLog), pct(toLog, 50), pct(toLog, 90), pct(toLog, 99), pct(toLog, 100))
	fmt.Printf("RESULT latency_p50_ms=%.3f latency_p99_ms=%.3f\n", ms(pct(toSet, 50)), ms(pct(toSet, 99)))
	return nil
}

// latencyAddr is the i-th address latency bans.
func latencyAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(1 + i&0xff)})
}

// banOnce appends 4 SASL failures for a, pauses 20 ms so that the daemon
// counts them, then appends the 5th and times from that write to a in
// the kernel set (a netlink dump of addrs4 in a tight loop: polls is how
// many) and to the daemon's "ban" log line (0 if none within 2 s).
func (e *env) banOnce(c *nftables.Conn, a netip.Addr) (toSet, toLog time.Duration, polls int, err error) {
	for range 4 {
		if err := e.appendLines(saslLine(time.Now(), a.String())); err != nil {
			return 0, 0, 0, err
		}
	}
	time.Sleep(20 * time.Millisecond)
	key := string(a.AsSlice())
	t0 := time.Now()
	if err := e.appendLines(saslLine(time.Now(), a.String())); err != nil {
		return 0, 0, 0, err
	}
	for {
		polls++
		els, err := setElements(c, "addrs4")
		if err == nil && els[key] {
			break
		}
		if time.Since(t0) > 10*time.Second {
			return 0, 0, polls, fmt.Errorf("%s not in the set 10s after its 5th failure (err %v)", a, err)
		}
	}
	toSet = time.Since(t0)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if t, ok := e.banTime(netip.PrefixFrom(a, 32).String()); ok {
			return toSet, t.Sub(t0), polls, nil
		}
		if time.Now().After(deadline) {
			return toSet, 0, polls, nil
		}
		time.Sleep(time.Millisecond)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1].Round(time.Microsecond)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
