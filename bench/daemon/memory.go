package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// memFields are the /proc/PID/status lines memory reports: resident set,
// its peak, and the resident set split into anonymous memory (the Go heap
// and stacks) and file pages (the bbolt map, the binary).
var memFields = []string{"VmRSS", "VmHWM", "RssAnon", "RssFile"}

// memory appends one SASL failure for each of o.addrs distinct addresses
// and reads the daemon's resident memory before and after, and its Go heap
// from the runtime's GC trace; then the same lines through `smtpban
// replay`, whose counter has no cap.
func memory(ctx context.Context, o options) error {
	o.gctrace = true
	e, err := runningEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	time.Sleep(500 * time.Millisecond)
	before, err := procMems(e.pid())
	if err != nil {
		return err
	}
	heapBefore, _ := e.gcHeap()
	// Write the lines in chunks so the daemon reads as they come.
	f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	for i := range o.addrs {
		fmt.Fprintln(w, saslLine(now, addrN(i).String()))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	t0 := time.Now()
	if err := e.waitRead(ctx, o.addrs, 5*time.Minute); err != nil {
		return err
	}
	took := time.Since(t0)
	// Two checkpoints' time: the last windows are saved too.
	time.Sleep(2 * time.Second)
	after, err := procMems(e.pid())
	if err != nil {
		return err
	}
	heapAfter, goal := e.gcHeap()
	n := float64(o.addrs)
	fmt.Printf("smtpband: %d distinct addresses, one failure each (read in %s)\n", o.addrs, took.Round(time.Millisecond))
	for _, k := range memFields {
		fmt.Printf("  %-8s %7.1f MiB before, %7.1f MiB after: %4.0f bytes per address\n", k, mib(before[k]), mib(after[k]), float64(after[k]-before[k])/n)
	}
	fmt.Printf("  Go heap  %7.1f MiB live before, %7.1f MiB live at the last GC (goal %.1f MiB): %4.0f bytes per address\n",
		mib(heapBefore), mib(heapAfter), mib(goal), float64(heapAfter-heapBefore)/n)

	// The replay keeps every window (cap 1<<30): all o.addrs are held.
	cmd := exec.CommandContext(ctx, filepath.Join(o.bin, "smtpban"), "-config", e.config, "replay", "-jail", "postfix-sasl", e.logPath)
	cmd.Stdout = nil
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	base := exec.CommandContext(ctx, filepath.Join(o.bin, "smtpban"), "-config", e.config, "replay", "-jail", "postfix-sasl", "/dev/null")
	if err := base.Run(); err != nil {
		return fmt.Errorf("replay /dev/null: %w", err)
	}
	ru0 := base.ProcessState.SysUsage().(*syscall.Rusage)
	perAddr := float64((ru.Maxrss-ru0.Maxrss)<<10) / n
	fmt.Printf("smtpban replay (no cap): max RSS %.1f MiB for %d addresses, %.1f MiB for an empty file: %.0f bytes per address held\n",
		mib(ru.Maxrss<<10), o.addrs, mib(ru0.Maxrss<<10), perAddr)
	fmt.Printf("RESULT daemon_bytes_per_addr=%.0f daemon_hwm_bytes_per_addr=%.0f daemon_anon_bytes_per_addr=%.0f daemon_heap_bytes_per_addr=%.0f replay_bytes_per_addr=%.0f\n",
		float64(after["VmRSS"]-before["VmRSS"])/n, float64(after["VmHWM"]-before["VmRSS"])/n,
		float64(after["RssAnon"]-before["RssAnon"])/n, float64(heapAfter-heapBefore)/n, perAddr)
	return nil
}

func procMems(pid int) (map[string]int64, error) {
	out := map[string]int64{}
	for _, k := range memFields {
		v, err := procMem(pid, k)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// gcLine picks "A->B->C MB, D MB goal" out of a gctrace line: C is the
// live heap after that GC.
var gcLine = regexp.MustCompile(`->([0-9.]+) MB, ([0-9.]+) MB goal`)

// gcHeap returns the live heap and the heap goal of the daemon's last GC.
func (e *env) gcHeap() (live, goal int64) {
	e.bansMu.Lock()
	l := e.lastGC
	e.bansMu.Unlock()
	m := gcLine.FindStringSubmatch(l)
	if m == nil {
		return 0, 0
	}
	a, _ := strconv.ParseFloat(m[1], 64)
	b, _ := strconv.ParseFloat(m[2], 64)
	return int64(a * (1 << 20)), int64(b * (1 << 20))
}

// addrN is the n-th of a run of distinct public-looking IPv4 addresses.
func addrN(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(20 + n>>24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
