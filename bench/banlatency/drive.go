package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchAddr is the i-th fresh address, in 198.18.0.0/15 (benchmarking).
func benchAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

// saslLine is a Postfix SMTP AUTH failure in the syslog layout, stamped
// now (local time, as syslog writes it): what fail2ban's postfix[mode=auth]
// filter and sshguard's parser both read.
func saslLine(now time.Time, a netip.Addr) string {
	return fmt.Sprintf("%s bench postfix/smtpd[4242]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
		now.Format(time.Stamp), a)
}

// trial is one timed ban.
type trial struct {
	addr   netip.Addr
	wrote  time.Time // just before the write of the tipping line
	action time.Time // the time the tool's action recorded
}

// drive makes warm-up + o.bans bans: for each fresh address, after a
// random idle time, o.attacks-1 failure lines (one write each), a pause,
// then the tipping line in one write; it waits until the records file
// names the address. The random idle (uniform in [0, o.idle), fixed seed)
// keeps the bans from falling in step with a tool's own polling cycle:
// with a fixed schedule every ban lands at the same phase of it.
func drive(ctx context.Context, o options, logPath, recordsPath string) ([]trial, error) {
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log: %w", err)
	}
	defer log.Close()
	recs := &records{path: recordsPath, seen: map[netip.Addr]time.Time{}}
	trials := make([]trial, 0, o.bans)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range o.bans + 1 {
		a := benchAddr(i)
		if o.idle > 0 {
			if err := sleep(ctx, time.Duration(rnd.Int64N(int64(o.idle)))); err != nil {
				return nil, err
			}
		}
		for range o.attacks - 1 {
			if _, err := log.WriteString(saslLine(time.Now(), a)); err != nil {
				return nil, fmt.Errorf("appending to the log: %w", err)
			}
		}
		if err := sleep(ctx, o.pause); err != nil {
			return nil, err
		}
		if err := recs.read(); err != nil {
			return nil, err
		}
		if _, early := recs.seen[a]; early {
			return nil, fmt.Errorf("%s was banned before failure %d", a, o.attacks)
		}
		line := saslLine(time.Now(), a)
		wrote := time.Now()
		if _, err := log.WriteString(line); err != nil {
			return nil, fmt.Errorf("appending to the log: %w", err)
		}
		at, err := recs.wait(ctx, a, o.timeout)
		if err != nil {
			return nil, fmt.Errorf("ban %d (%s): %w", i, a, err)
		}
		if at.Before(wrote) {
			return nil, fmt.Errorf("%s was banned before failure %d was written", a, o.attacks)
		}
		if i > 0 { // the first ban warms the tool up
			trials = append(trials, trial{addr: a, wrote: wrote, action: at})
		}
	}
	return trials, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// records follows the file the tools' actions append "<addr> <unix
// seconds with fraction>" lines to.
type records struct {
	path    string
	off     int64
	partial []byte
	seen    map[netip.Addr]time.Time
}

// wait polls the file every 0.5 ms until a line for a appears. The poll
// interval costs nothing in the figures: the time is the one the action wrote.
func (r *records) wait(ctx context.Context, a netip.Addr, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if err := r.read(); err != nil {
			return time.Time{}, err
		}
		if t, ok := r.seen[a]; ok {
			return t, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no action recorded in %s after %s", r.path, timeout)
		}
		if err := sleep(ctx, 500*time.Microsecond); err != nil {
			return time.Time{}, err
		}
	}
}

func (r *records) read() error {
	f, err := os.Open(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening the records: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, err := f.ReadAt(buf, r.off)
	if n == 0 {
		return nil // io.EOF or nothing new
	}
	r.off += int64(n)
	data := append(r.partial, buf[:n]...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		a, t, perr := parseRecord(string(data[:i]))
		if perr != nil {
			return perr
		}
		r.seen[a] = t
		data = data[i+1:]
	}
	r.partial = append([]byte(nil), data...)
	_ = err // a short read at the end of the file is expected
	return nil
}

// parseRecord reads "<addr> <seconds>[.<fraction>]" (date +%s.%N: 9
// digits; bash's EPOCHREALTIME: 6).
func parseRecord(line string) (netip.Addr, time.Time, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return netip.Addr{}, time.Time{}, fmt.Errorf("record %q: want \"<addr> <time>\"", line)
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, time.Time{}, fmt.Errorf("record %q: %w", line, err)
	}
	secStr, fracStr, _ := strings.Cut(f[1], ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return netip.Addr{}, time.Time{}, fmt.Errorf("record %q: seconds: %w", line, err)
	}
	var nsec int64
	if fracStr != "" {
		if len(fracStr) > 9 {
			fracStr = fracStr[:9]
		}
		fracStr += strings.Repeat("0", 9-len(fracStr))
		if nsec, err = strconv.ParseInt(fracStr, 10, 64); err != nil {
			return netip.Addr{}, time.Time{}, fmt.Errorf("record %q: fraction: %w", line, err)
		}
	}
	return a, time.Unix(sec, nsec), nil
}

// summary is "p50 X  p90 X  p99 X  max X" in milliseconds.
type summary struct{ p50, p90, p99, max time.Duration }

func summarize(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{pct(s, 50), pct(s, 90), pct(s, 99), pct(s, 100)}
}

// pct is the nearest-rank percentile of sorted ds.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[max(i, 1)-1]
}

func (s summary) String() string {
	return fmt.Sprintf("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms", ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max))
}

// row is a markdown table row: what, p50, p90, p99, max, bans.
func (s summary) row(what string, n int) string {
	return fmt.Sprintf("| %s | %.2f | %.2f | %.2f | %.2f | %d |", what, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max), n)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencies(ts []trial) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.action.Sub(t.wrote)
	}
	return out
}

// startGroup starts cmd in a process group of its own, its output in
// dir/name.out (returned), and writes the group's id to dir/name.pgid, for
// a caller's cleanup should this process be killed; stop kills the whole
// group (TERM, then KILL after a grace period), reaps cmd and removes the
// pgid file.
func startGroup(cmd *exec.Cmd, dir, name string) (stop func(), outPath string, err error) {
	outPath = filepath.Join(dir, name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		return nil, "", fmt.Errorf("creating %s's output file: %w", name, err)
	}
	// The child has its own copy of the descriptor once started.
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	pgidFile := filepath.Join(dir, name+".pgid")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	pgid := cmd.Process.Pid
	if err := os.WriteFile(pgidFile, []byte(strconv.Itoa(pgid)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, "", fmt.Errorf("writing the process group id: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	return func() { once.Do(func() { killGroup(pgid, done, pgidFile) }) }, outPath, nil
}

// killGroup stops a group startGroup made: TERM, KILL after 5 s, then
// KILL again for stages that outlived the leader (a pipeline's).
func killGroup(pgid int, done <-chan struct{}, pgidFile string) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = os.Remove(pgidFile)
}
