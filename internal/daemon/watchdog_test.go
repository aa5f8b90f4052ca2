package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smtpban/internal/sdnotify"
)

// notifySocket is a real datagram socket like systemd's $NOTIFY_SOCKET;
// it hands on each message received.
func notifySocket(t *testing.T) (path string, msgs <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return path, ch
}

// next returns the next message that starts with prefix, failing after
// a few seconds (generous: CI machines are busy).
func next(t *testing.T, msgs <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q message within 10s", prefix)
		}
	}
}

// runNotified runs a daemon on the test config that talks to sock, with
// the watchdog pinged every `every`.
func runNotified(t *testing.T, sock string, every time.Duration) (d *Daemon, logPath string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "first line\n")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	cfg := strings.Replace(testConfig, "metrics   = %q\n", "", 1)
	writeTestFile(t, cfgPath, fmt.Sprintf(cfg, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), logPath))
	d, err := New(Options{
		ConfigPath: cfgPath,
		Logger:     testLogger(t),
		Hostname:   "mx1",
		LocalAddrs: func() ([]netip.Addr, error) { return nil, nil },
		Notify: func(s string) {
			if err := sdnotify.Send(sock, s); err != nil {
				t.Errorf("notify: %v", err)
			}
		},
		WatchdogEvery: every,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, logPath, stop
}

// TestWatchdogStopsWhenLineLoopWedged: WATCHDOG=1 comes while the line
// path works, stops while a line is stuck holding the daemon's lock (as a
// jail that never returned would), and comes again once it is free.
func TestWatchdogStopsWhenLineLoopWedged(t *testing.T) {
	const every = 50 * time.Millisecond
	sock, msgs := notifySocket(t)
	d, logPath, _ := runNotified(t, sock, every)

	ready := next(t, msgs, "READY=1")
	if !strings.Contains(ready, "STATUS=1 jail, 0 bans, 1 source, lag ") {
		t.Errorf("READY message %q lacks the status line", ready)
	}
	ping := next(t, msgs, "WATCHDOG=1")
	if !strings.Contains(ping, "\nSTATUS=1 jail, ") {
		t.Errorf("WATCHDOG message %q lacks the status line", ping)
	}

	d.mu.Lock()
	// A line arrives meanwhile: its source now waits on the lock too.
	appendLine(t, logPath, "Dec  1 10:00:00 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]\n")
	// Pings sent before the wedge may still be on their way: skip them.
	drain(msgs, 5*every)
	deadline := time.After(20 * every)
wedged:
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(m, "WATCHDOG=1") {
				d.mu.Unlock()
				t.Fatalf("watchdog pinged while the line loop was wedged: %q", m)
			}
		case <-deadline:
			break wedged
		}
	}
	d.mu.Unlock()
	next(t, msgs, "WATCHDOG=1")
}

func drain(msgs <-chan string, d time.Duration) {
	t := time.After(d)
	for {
		select {
		case <-msgs:
		case <-t:
			return
		}
	}
}

// TestWatchdogSourceStuck: a source handing on one batch for longer than
// the probe's timeout fails the probe, by name.
func TestWatchdogSourceStuck(t *testing.T) {
	sock, _ := notifySocket(t)
	d, _, _ := runNotified(t, sock, time.Hour) // no pings of its own
	if err := d.alive(context.Background(), time.Second); err != nil {
		t.Fatalf("alive with nothing stuck: %v", err)
	}
	d.mu.Lock()
	d.sources[0].busy.start(d.now().Add(-2 * time.Second))
	d.mu.Unlock()
	err := d.alive(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "mail for 2") {
		t.Errorf("alive with a source stuck for 2s = %v; want it named", err)
	}
}

// TestNotifyReloadAndStop: a reload is RELOADING=1 (with MONOTONIC_USEC)
// then READY=1, a refused one too; stopping says STOPPING=1.
func TestNotifyReloadAndStop(t *testing.T) {
	sock, msgs := notifySocket(t)
	d, _, stop := runNotified(t, sock, 0)
	next(t, msgs, "READY=1")
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs, "RELOADING=1"); !strings.Contains(m, "\nMONOTONIC_USEC=") {
		t.Errorf("reload message %q lacks MONOTONIC_USEC", m)
	}
	next(t, msgs, "READY=1")
	stop()
	next(t, msgs, "STOPPING=1")
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}
