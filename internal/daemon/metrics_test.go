package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

const testConfig = `
state_dir = %q
socket    = %q
metrics   = %q
include   = []

source "file" "mail" {
  path = %q
}

jail "postfix-sasl" {
  source    = "mail"
  programs  = ["postfix/smtpd"]
  failregex = ["warning: [^\\s\\[]+\\[<HOST>\\]: SASL \\S+ authentication failed"]
  maxretry  = 3
  findtime  = "1h"
  bantime   = "1h"
}

firewall "dryrun" {}
`

// startTest runs a Daemon on a dryrun firewall in a temporary directory
// and returns it once it is ready, with its config and log paths.
func startTest(t *testing.T) (d *Daemon, cfgPath, logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "mail.log")
	if err := os.WriteFile(logPath, []byte("first line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "smtpban.hcl")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	writeTestFile(t, cfgPath, fmt.Sprintf(testConfig, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), addr, logPath))
	d, _ = runTest(t, cfgPath, 10*time.Millisecond)
	return d, cfgPath, logPath
}

// runTest runs a Daemon on cfgPath until the test ends or stop is called,
// and returns it once it is ready.
func runTest(t *testing.T, cfgPath string, checkpointEvery time.Duration) (d *Daemon, stop func()) {
	t.Helper()
	ready := make(chan struct{})
	d, err := New(Options{
		ConfigPath:      cfgPath,
		Logger:          testLogger(t),
		Hostname:        "mx1",
		Version:         "test",
		LocalAddrs:      func() ([]netip.Addr, error) { return nil, nil },
		Ready:           func() { close(ready) },
		CheckpointEvery: checkpointEvery,
		SweepEvery:      10 * time.Millisecond,
		RetryEvery:      10 * time.Millisecond,
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
	select {
	case <-ready:
	case err := <-done:
		done <- err // for stop, which Fatalf's cleanup runs
		t.Fatalf("Run returned before ready: %v", err)
	}
	return d, stop
}

func writeTestFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// metric reads one series from the daemon's registry; labels as
// "k=v,k=v", "" for none.
func metric(t *testing.T, d *Daemon, name, labels string) float64 {
	t.Helper()
	mfs, err := d.metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(ls, ",") == labels {
				return value(m)
			}
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetricsWiring checks that each daemon event reaches its metric.
func TestMetricsWiring(t *testing.T) {
	d, cfgPath, logPath := startTest(t)
	ctx := context.Background()

	if got := metric(t, d, "smtpban_firewall_resyncs_total", "why=start"); got != 1 {
		t.Errorf("resyncs at start = %v, want 1", got)
	}
	if got := metric(t, d, "smtpban_bans_total", "jail=postfix-sasl,origin=mx1"); got != 0 {
		t.Errorf("bans_total before any ban = %v, want 0 (initialised)", got)
	}

	// A short manual ban: applied, timed, then expired by the sweeper.
	// (Long enough to outlast its own fsync on a loaded machine.)
	if _, err := d.Ban(ctx, netip.MustParsePrefix("198.51.100.1/32"), "", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, d, "smtpban_bans_total", "jail=manual,origin=mx1"); got != 1 {
		t.Errorf("manual bans_total = %v, want 1", got)
	}
	if got := metric(t, d, "smtpban_ban_apply_duration_seconds", ""); got != 1 {
		t.Errorf("ban apply observations = %v, want 1", got)
	}
	eventually(t, "the manual ban to expire", func() bool {
		return metric(t, d, "smtpban_bans_expired_total", "jail=manual,origin=mx1") == 1
	})

	// A ban lifted by hand.
	p := netip.MustParsePrefix("203.0.113.9/32")
	if _, err := d.Ban(ctx, p, "postfix-sasl", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, d, "smtpban_bans_active", "jail=postfix-sasl"); got != 1 {
		t.Errorf("active bans = %v, want 1", got)
	}
	// Status counts the same bans, with and without naming the jail.
	for _, jail := range []string{"", "postfix-sasl"} {
		st, err := d.Status(ctx, jail)
		if err != nil {
			t.Fatal(err)
		}
		for _, js := range st.Jails {
			if want := map[string]int{"postfix-sasl": 1}[js.Name]; js.Banned != want {
				t.Errorf("status %q: jail %s banned %d, want %d", jail, js.Name, js.Banned, want)
			}
		}
	}
	if _, err := d.Unban(ctx, p, "", false); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, d, "smtpban_unbans_total", "jail=postfix-sasl,origin=mx1"); got != 1 {
		t.Errorf("unbans_total = %v, want 1", got)
	}
	if got := metric(t, d, "smtpban_bans_active", "jail=postfix-sasl"); got != 0 {
		t.Errorf("active bans after unban = %v, want 0", got)
	}

	// A failure from the log: a match, a window, a checkpoint.
	eventually(t, "the source to open its file", func() bool {
		st, err := d.Status(ctx, "")
		return err == nil && len(st.Sources) == 1 && st.Sources[0].Position != "" && !strings.Contains(st.Sources[0].Position, "waiting")
	})
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Stamped now: an old line's window would be expired by the sweeper.
	fmt.Fprintf(f, "%s mx1 postfix/smtpd[1]: warning: unknown[192.0.2.50]: SASL LOGIN authentication failed: x\n", time.Now().Format(time.Stamp))
	f.Close()
	eventually(t, "the match", func() bool { return metric(t, d, "smtpban_matches_total", "jail=postfix-sasl") == 1 })
	if got := metric(t, d, "smtpban_failure_windows", ""); got != 1 {
		t.Errorf("failure windows = %v, want 1", got)
	}
	if got := metric(t, d, "smtpban_source_lines_read_total", "source=mail"); got != 1 {
		t.Errorf("lines read = %v, want 1", got)
	}
	eventually(t, "a checkpoint", func() bool { return metric(t, d, "smtpban_state_checkpoint_duration_seconds", "") >= 1 })

	// Reloads, refused and applied.
	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, cfgPath, string(good)+"\nbogus = 1\n")
	if err := d.Reload(ctx); err == nil {
		t.Fatal("a config with an unknown attribute was applied")
	}
	writeTestFile(t, cfgPath, string(good))
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := metric(t, d, "smtpban_config_reloads_total", "result=refused"), metric(t, d, "smtpban_config_reloads_total", "result=ok"); r != 1 || ok != 1 {
		t.Errorf("reloads refused, ok = %v, %v; want 1, 1", r, ok)
	}
	if got := metric(t, d, "smtpban_build_info", "goversion="+goVersion(t, d)+",version=test"); got != 1 {
		t.Errorf("build_info = %v", got)
	}
}

func goVersion(t *testing.T, d *Daemon) string {
	t.Helper()
	mfs, _ := d.metrics.Gatherer().Gather()
	for _, mf := range mfs {
		if mf.GetName() == "smtpban_build_info" {
			for _, l := range mf.GetMetric()[0].GetLabel() {
				if l.GetName() == "goversion" {
					return l.GetValue()
				}
			}
		}
	}
	return ""
}

// testLogger discards the daemon's log, or with SMTPBAN_TEST_LOG=1 sends it
// to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SMTPBAN_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
