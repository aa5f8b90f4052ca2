package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// build is one smtpband to measure: a name and the directory holding its
// smtpband and smtpban.
type build struct{ name, bin string }

// burstRun is what one burst measured.
type burstRun struct {
	allIn    time.Duration // burst append -> every burst address in the set
	slack    time.Duration // allIn is late by at most this: since the start of the last dump that missed some
	attacker time.Duration // the late attacker's append -> his address in the set
	attLog   time.Duration // the late attacker's append -> the daemon's "ban" line for him (0: none)
	firstLog time.Duration // burst append -> the daemon's first "ban" line
	lastLog  time.Duration // burst append -> the daemon's last "ban" line for a burst address
	cpu      time.Duration // the daemon's utime+stime from the burst append to both in the set
	polls    int           // set dumps while waiting
	dump     time.Duration // mean time of one dump (the polling granularity)
}

// burst measures, for the build in o.bin and, with o.before, an earlier
// one, in the same run: idle ban latency (as latency, bans alternating
// between the two daemons, both up); then o.bursts times per build, on a
// fresh daemon and namespace each, bursts taking turns: o.addrs4 distinct
// addresses with 3 SASL failures each (postfix-sasl's maxretry set to 3),
// in rounds (every address once, then again, then a third time, as a
// botnet spreads its tries) in one write, at once followed by a second
// write of one more address's 3 failures (the late attacker). Timed: from
// the first write until every burst address is in the kernel set, and
// from the second until the attacker's is.
func burst(ctx context.Context, o options) error {
	if o.addrs4 < 1 || o.addrs4 > 65000 {
		return fmt.Errorf("-burst %d: want 1..65000 (they are taken from 198.18.0.0/16)", o.addrs4)
	}
	builds := []build{{"HEAD", o.bin}}
	if o.before != "" {
		builds = []build{{"before", o.before}, {"HEAD", o.bin}}
	}
	for _, b := range builds {
		fmt.Printf("%-7s %s\n", b.name+":", b.bin)
	}
	idle, err := idleLatency(ctx, o, builds)
	if err != nil {
		return err
	}
	runs := map[string][]burstRun{}
	fmt.Printf("\nbursts: %d addresses x 3 failures (postfix-sasl, maxretry 3) in one write of %d lines, then the late attacker's 3 lines in a second write; a fresh daemon and namespace each\n",
		o.addrs4, 3*o.addrs4)
	for r := range o.bursts {
		for k := range builds {
			// Turns alternate: neither build always goes first.
			b := builds[(r+k)%len(builds)]
			if ctx.Err() != nil {
				return ctx.Err()
			}
			run, err := burstOnce(ctx, o, b)
			if err != nil {
				return fmt.Errorf("%s, burst %d: %w", b.name, r+1, err)
			}
			runs[b.name] = append(runs[b.name], run)
			fmt.Printf("  %2d %-6s all %d in the set %9s (late <= %s) ('ban' lines %9s to %9s)  attacker %9s (his 'ban' line %9s)  daemon CPU %7s  %4d dumps of %s\n",
				r+1, b.name, o.addrs4, round(run.allIn), round(run.slack), round(run.firstLog), round(run.lastLog), round(run.attacker), round(run.attLog), round(run.cpu), run.polls, run.dump.Round(time.Microsecond))
		}
	}
	report(o, builds, idle, runs)
	return nil
}

// idleLatency starts one daemon per build (shipped jails, maxretry 5)
// and bans o.bans addresses in each as latency does, alternating between
// them, so that both see the same moments of a noisy machine.
func idleLatency(ctx context.Context, o options, builds []build) (map[string][]time.Duration, error) {
	ban := map[string]func(netip.Addr) (time.Duration, error){}
	for _, b := range builds {
		ob := o
		ob.bin = b.bin
		e, err := runningEnv(ctx, ob)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		defer e.close()
		c, err := e.nft()
		if err != nil {
			return nil, err
		}
		ban[b.name] = func(a netip.Addr) (time.Duration, error) {
			d, _, _, err := e.banOnce(c, a)
			return d, err
		}
	}
	out := map[string][]time.Duration{}
	for i := range o.bans {
		for k := range builds {
			b := builds[(i+k)%len(builds)]
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			d, err := ban[b.name](latencyAddr(i))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.name, err)
			}
			out[b.name] = append(out[b.name], d)
		}
	}
	fmt.Printf("\nidle ban latency, %d bans per build, taking turns, both daemons up (append of the 5th failure line -> kernel set):\n", o.bans)
	for _, b := range builds {
		ds := out[b.name]
		fmt.Printf("  %-6s p50 %s  p90 %s  p99 %s  max %s\n", b.name, pct(ds, 50), pct(ds, 90), pct(ds, 99), pct(ds, 100))
	}
	return out, nil
}

// burstAddr is the i-th burst address: 198.18.0.1 on.
func burstAddr(i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 198<<24|18<<16+uint32(i)+1)
	return netip.AddrFrom4(b)
}

// burstIndex is burstAddr's inverse for a set key, or -1.
func burstIndex(k []byte) int {
	if len(k) != 4 || k[0] != 198 || k[1] != 18 {
		return -1
	}
	return int(binary.BigEndian.Uint32(k)-(198<<24|18<<16)) - 1
}

// attackerAddr is the late attacker's, outside the burst's /16.
var attackerAddr = netip.AddrFrom4([4]byte{198, 19, 0, 1})

func burstOnce(ctx context.Context, o options, b build) (burstRun, error) {
	var run burstRun
	o.bin = b.bin
	o.saslRetry = 3
	e, err := runningEnv(ctx, o)
	if err != nil {
		return run, err
	}
	defer e.close()
	sc, err := e.setConn()
	if err != nil {
		return run, err
	}
	defer sc.Close()
	n0 := 0
	if err := sc.keys("addrs4", func(k []byte) { n0++ }); err != nil {
		return run, fmt.Errorf("dump addrs4 before the burst: %w", err)
	}
	if n0 != 0 {
		return run, fmt.Errorf("addrs4 holds %d elements before the burst", n0)
	}
	now := time.Now()
	var sb strings.Builder
	for range 3 {
		for i := range o.addrs4 {
			sb.WriteString(saslLine(now, burstAddr(i).String()))
			sb.WriteByte('\n')
		}
	}
	lines := sb.String()
	var att strings.Builder
	for range 3 {
		att.WriteString(saslLine(now, attackerAddr.String()))
		att.WriteByte('\n')
	}
	f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return run, err
	}
	defer f.Close()
	c0, err := procCPU(e.pid())
	if err != nil {
		return run, err
	}
	t0 := time.Now()
	if _, err := f.WriteString(lines); err != nil {
		return run, err
	}
	t1 := time.Now()
	if _, err := f.WriteString(att.String()); err != nil {
		return run, err
	}
	// Every 0.2 ms, a get of the attacker's key and one of the last burst
	// address still missing (~20 µs each); when that one is in, a dump of
	// the set (0.3-25 ms for 5,000 elements on this machine, longer while
	// the kernel is adding) says which are still missing, if any. Dumping
	// on a clock instead took most of a core from a daemon that has two
	// to share with the poller, or left "all in" up to 100 ms late.
	// "All in" is when the dump that found none missing returned; slack
	// is since the start of the last poll that found one missing.
	attKey := attackerAddr.AsSlice()
	var attAt, allAt time.Time
	missed := t0
	missing := make([]bool, o.addrs4)
	last := o.addrs4 - 1 // the highest index still missing
	seen := 0            // burst addresses in the set at the last dump
	var dumping time.Duration
	for attAt.IsZero() || allAt.IsZero() {
		if attAt.IsZero() {
			ok, err := sc.has("addrs4", attKey)
			if err != nil {
				return run, fmt.Errorf("get %s: %w", attackerAddr, err)
			}
			if ok {
				attAt = time.Now()
			}
		}
		if allAt.IsZero() {
			p0 := time.Now()
			ok, err := sc.has("addrs4", burstAddr(last).AsSlice())
			if err != nil {
				return run, fmt.Errorf("get %s: %w", burstAddr(last), err)
			}
			if ok {
				for i := range missing {
					missing[i] = true
				}
				seen = 0
				if err := sc.keys("addrs4", func(k []byte) {
					if i := burstIndex(k); i >= 0 && i < o.addrs4 && missing[i] {
						missing[i] = false
						seen++
					}
				}); err != nil {
					return run, fmt.Errorf("dump addrs4: %w", err)
				}
				dumping += time.Since(p0)
				run.polls++
				last = -1
				for i := len(missing) - 1; i >= 0; i-- {
					if missing[i] {
						last = i
						break
					}
				}
				if last < 0 {
					allAt = time.Now()
				}
			}
			if allAt.IsZero() {
				missed = p0
			}
		}
		if time.Since(t0) > 120*time.Second || ctx.Err() != nil {
			return run, fmt.Errorf("after %s: %d of %d burst addresses in the set at the last dump, %s not yet, attacker in: %v; daemon log tail:\n%s",
				time.Since(t0).Round(time.Millisecond), seen, o.addrs4, burstAddr(last), !attAt.IsZero(), strings.Join(e.tail(), "\n"))
		}
		time.Sleep(200 * time.Microsecond)
	}
	c1, err := procCPU(e.pid())
	if err != nil {
		return run, err
	}
	run.cpu = time.Duration(c1-c0) * (time.Second / 100) // CLK_TCK is 100 on Linux
	run.allIn = allAt.Sub(t0)
	run.slack = allAt.Sub(missed)
	run.attacker = attAt.Sub(t1)
	run.dump = dumping / time.Duration(max(run.polls, 1))
	// The daemon writes a "ban" line after the firewall call returned; a
	// moment more for the last of them to come through its stderr.
	deadline := time.Now().Add(2 * time.Second)
	for {
		first, last, all := time.Time{}, time.Time{}, true
		for i := range o.addrs4 {
			t, ok := e.banTime(netip.PrefixFrom(burstAddr(i), 32).String())
			if !ok {
				all = false
				break
			}
			if t.After(last) {
				last = t
			}
			if first.IsZero() || t.Before(first) {
				first = t
			}
		}
		ta, ok := e.banTime(netip.PrefixFrom(attackerAddr, 32).String())
		if all && ok {
			run.firstLog, run.lastLog, run.attLog = first.Sub(t0), last.Sub(t0), ta.Sub(t1)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return run, nil
}

// report prints the table docs/benchmarks.md takes its figures from.
func report(o options, builds []build, idle map[string][]time.Duration, runs map[string][]burstRun) {
	pick := func(name string, f func(burstRun) time.Duration) []time.Duration {
		var ds []time.Duration
		for _, r := range runs[name] {
			ds = append(ds, f(r))
		}
		return ds
	}
	allIn := func(r burstRun) time.Duration { return r.allIn }
	att := func(r burstRun) time.Duration { return r.attacker }
	cpu := func(r burstRun) time.Duration { return r.cpu }
	type row struct {
		metric, target string
		get            func(name string) []time.Duration
		p              int
	}
	rows := []row{
		{"idle ban latency p50", "", func(n string) []time.Duration { return idle[n] }, 50},
		{"idle ban latency p99", "< 5 ms", func(n string) []time.Duration { return idle[n] }, 99},
		{fmt.Sprintf("burst: all %d in the set, p50", o.addrs4), "", func(n string) []time.Duration { return pick(n, allIn) }, 50},
		{fmt.Sprintf("burst: all %d in the set, max", o.addrs4), "< 1 s", func(n string) []time.Duration { return pick(n, allIn) }, 100},
		{"late attacker p50", "", func(n string) []time.Duration { return pick(n, att) }, 50},
		{"late attacker p99", "< 100 ms", func(n string) []time.Duration { return pick(n, att) }, 99},
		{"daemon CPU per burst, p50", "", func(n string) []time.Duration { return pick(n, cpu) }, 50},
	}
	fmt.Printf("\n%d idle bans and %d bursts per build; spread: min–max over the bursts\n", o.bans, o.bursts)
	head := "| metric | target |"
	sep := "|---|---|"
	for _, b := range builds {
		head += " " + b.name + " |"
		sep += "---:|"
	}
	if len(builds) == 2 {
		head += " before / HEAD |"
		sep += "---:|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	for _, r := range rows {
		line := "| " + r.metric + " | " + r.target + " |"
		var vs []time.Duration
		for _, b := range builds {
			ds := r.get(b.name)
			v := pct(ds, r.p)
			vs = append(vs, v)
			cell := round(v)
			if r.p == 50 && len(ds) > 0 && !strings.HasPrefix(r.metric, "idle") {
				cell += fmt.Sprintf(" (%s–%s)", round(slices.Min(ds)), round(slices.Max(ds)))
			}
			line += " " + cell + " |"
		}
		if len(vs) == 2 && vs[1] > 0 {
			line += fmt.Sprintf(" %.1f× |", float64(vs[0])/float64(vs[1]))
		}
		fmt.Println(line)
	}
	res := "RESULT"
	for _, b := range builds {
		res += fmt.Sprintf(" %s_idle_p99_ms=%.3f %s_burst_all_p50_ms=%.1f %s_burst_all_max_ms=%.1f %s_attacker_p50_ms=%.1f %s_attacker_p99_ms=%.1f",
			b.name, ms(pct(idle[b.name], 99)), b.name, ms(pct(pick(b.name, allIn), 50)), b.name, ms(pct(pick(b.name, allIn), 100)),
			b.name, ms(pct(pick(b.name, att), 50)), b.name, ms(pct(pick(b.name, att), 99)))
	}
	fmt.Println(res)
}

// round keeps 3 significant figures or so: µs under 1 ms, 0.01 ms under
// 1 s, ms above.
func round(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
