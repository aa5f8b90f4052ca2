package sdnotify_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smtpban/internal/sdnotify"
)

// listen opens a real datagram socket like systemd's notify socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	// A deadline only so a broken Notify fails instead of hanging.
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	tests := []struct {
		name string
		sock func(t *testing.T) string
	}{
		{"path", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") }},
		{"abstract", func(t *testing.T) string { return fmt.Sprintf("@smtpban-sdnotify-test-%d", os.Getpid()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := tc.sock(t)
			c := listen(t, sock)
			t.Setenv("NOTIFY_SOCKET", sock)
			for _, state := range []string{"READY=1", "STATUS=3 bans restored\nRELOADING=1"} {
				sent, err := sdnotify.Notify(state)
				if err != nil || !sent {
					t.Fatalf("Notify(%q) = %v, %v; want true, nil", state, sent, err)
				}
				if got := read(t, c); got != state {
					t.Errorf("received %q, want %q", got, state)
				}
			}
		})
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sent, err := sdnotify.Notify("READY=1")
	if sent || err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyErrors(t *testing.T) {
	tests := []struct{ name, sock, want string }{
		{"no listener", filepath.Join(t.TempDir(), "none"), "no such file"},
		{"relative", "notify", "unsupported NOTIFY_SOCKET"},
		{"vsock", "vsock:2:1234", "unsupported NOTIFY_SOCKET"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tc.sock)
			sent, err := sdnotify.Notify("READY=1")
			if sent || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Notify = %v, %v; want false and an error containing %q", sent, err, tc.want)
			}
		})
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := fmt.Sprint(os.Getpid())
	tests := []struct {
		name, usec, pid string
		want            time.Duration
		wantErr         bool
	}{
		{name: "unset"},
		{name: "set", usec: "30000000", want: 30 * time.Second},
		{name: "for this process", usec: "2000000", pid: self, want: 2 * time.Second},
		{name: "for another process", usec: "2000000", pid: "1"},
		{name: "zero", usec: "0", wantErr: true},
		{name: "junk", usec: "30s", wantErr: true},
		{name: "bad pid", usec: "1000", pid: "me", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, err := sdnotify.WatchdogInterval()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestReloading(t *testing.T) {
	var us int64
	msg := sdnotify.Reloading()
	if _, err := fmt.Sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%d", &us); err != nil || us <= 0 {
		t.Errorf("Reloading() = %q (%v); want RELOADING=1 and a positive MONOTONIC_USEC", msg, err)
	}
}
