package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemdNotify runs the daemon as systemd would with
// WatchdogSec=400ms: $NOTIFY_SOCKET is a real datagram socket, and
// $WATCHDOG_USEC and $WATCHDOG_PID name this process. It must say
// READY=1 with a status, ping the watchdog at about half the interval,
// and say STOPPING=1 when stopped.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	cfgPath := testConfigFile(t, dir)
	sock := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	t.Setenv("JOURNAL_STREAM", "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stderr bytes.Buffer // only the daemon's goroutine writes it until done
	go func() { done <- run(ctx, []string{"-config", cfgPath, "-dry-run"}, os.Stdout, &stderr) }()

	read := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			cancel()
			<-done
			t.Fatalf("no notification: %v; daemon said:\n%s", err, stderr.String())
		}
		return string(buf[:n])
	}
	if m := read(); !strings.HasPrefix(m, "READY=1\nSTATUS=1 jail, 0 bans, 1 source, lag ") {
		t.Errorf("first message %q, want READY=1 and the status", m)
	}
	var pings []time.Time
	for len(pings) < 3 {
		if m := read(); strings.HasPrefix(m, "WATCHDOG=1\n") {
			pings = append(pings, time.Now())
		}
	}
	// 200ms apart; a busy machine may be late, never much early.
	if gap := pings[2].Sub(pings[1]); gap < 100*time.Millisecond {
		t.Errorf("pings %v apart, want about 200ms (half of WatchdogSec)", gap)
	}
	cancel()
	for {
		if m := read(); strings.HasPrefix(m, "STOPPING=1") {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
