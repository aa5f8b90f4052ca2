package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// memory appends one SASL failure for each of o.addrs distinct addresses
// and reads the daemon's resident memory before and after; then the same
// lines through `smtpban replay`, whose counter has no cap.
func memory(ctx context.Context, o options) error {
	e, err := runningEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	time.Sleep(500 * time.Millisecond)
	before, err := procMem(e.pid(), "VmRSS")
	if err != nil {
		return err
	}
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
	time.Sleep(time.Second)
	after, err := procMem(e.pid(), "VmRSS")
	if err != nil {
		return err
	}
	hwm, _ := procMem(e.pid(), "VmHWM")
	fmt.Printf("smtpband: %d distinct addresses, one failure each (read in %s): RSS %.1f MiB before, %.1f MiB after (peak %.1f MiB): %.0f bytes per address appended; the counter keeps at most jails.DefaultMaxKeys = 262144 windows, so that is %.0f bytes per window held\n",
		o.addrs, took.Round(time.Millisecond), mib(before), mib(after), mib(hwm), float64(after-before)/float64(o.addrs), float64(after-before)/float64(min(o.addrs, 262144)))

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
	perAddr := float64((ru.Maxrss-ru0.Maxrss)<<10) / float64(o.addrs)
	fmt.Printf("smtpban replay (no cap): max RSS %.1f MiB for %d addresses, %.1f MiB for an empty file: %.0f bytes per address held\n",
		mib(ru.Maxrss<<10), o.addrs, mib(ru0.Maxrss<<10), perAddr)
	fmt.Printf("RESULT daemon_bytes_per_addr=%.0f daemon_bytes_per_window=%.0f replay_bytes_per_addr=%.0f\n",
		float64(after-before)/float64(o.addrs), float64(after-before)/float64(min(o.addrs, 262144)), perAddr)
	return nil
}

// addrN is the n-th of a run of distinct public-looking IPv4 addresses.
func addrN(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(20 + n>>24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
