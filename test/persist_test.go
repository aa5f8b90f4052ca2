package test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// saslRegex matches Postfix SASL failures; the tests' own, so that they do
// not change when the shipped jails do.
const saslRegex = `warning: [^\s\[]+\[<HOST>\]: SASL \S+ authentication failed`

// writeConfig writes a config for one file source and one SASL jail and
// returns its path. fw is the firewall block.
func writeConfig(t *testing.T, dir, logPath, fw string, maxretry int, bantime string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
state_dir = %q
socket    = %q

source "file" "mail" {
  path = %q
}

jail "postfix-sasl" {
  source    = "mail"
  programs  = ["postfix*/*smtpd"]
  failregex = [%q]
  maxretry  = %d
  findtime  = "1h"
  bantime   = %q
}

%s
`, filepath.Join(dir, "state"), filepath.Join(dir, "smtpband.sock"), logPath, saslRegex, maxretry, bantime, fw)
	path := filepath.Join(dir, "smtpban.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKill9KeepsBansAndCountsNothingTwice runs the real daemon, kills it
// with SIGKILL and starts it again: bans survive, and failures counted
// before the kill are neither lost nor counted again.
func TestKill9KeepsBansAndCountsNothingTwice(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: connect from old.example[192.0.2.200]")
	config := writeConfig(t, dir, logPath, `firewall "dryrun" {}`, 5, "1h")
	socket := filepath.Join(dir, "smtpband.sock")

	d := startDaemon(t, config, socket)
	waitSourcesOpen(t, d)
	// 5 failures ban 203.0.113.7; 4 leave 198.51.100.9 one short.
	for range 5 {
		appendLines(t, logPath, saslFailure("203.0.113.7"))
	}
	for range 4 {
		appendLines(t, logPath, saslFailure("198.51.100.9"))
	}
	waitFor(t, 10*time.Second, "203.0.113.7 to be banned", func() bool {
		_, ok := d.banned(t, "203.0.113.7/32")
		return ok
	})
	waitFor(t, 10*time.Second, "the 4 failures of 198.51.100.9 to be counted", func() bool {
		return statusFailures(t, d, "postfix-sasl") == 9
	})
	// A checkpoint runs every second; give it two.
	time.Sleep(2500 * time.Millisecond)
	d.kill(syscall.SIGKILL)

	d2 := startDaemon(t, config, socket)
	b, ok := d2.banned(t, "203.0.113.7/32")
	if !ok {
		t.Fatalf("ban on 203.0.113.7 lost across kill -9; bans now: %+v", d2.bans(t))
	}
	if b.Failures != 5 || b.Jail != "postfix-sasl" {
		t.Errorf("ban after restart = %+v, want 5 failures in postfix-sasl", b)
	}
	// Were the 4 earlier lines counted again, 198.51.100.9 would now have 8
	// failures and be banned already.
	time.Sleep(1500 * time.Millisecond)
	if _, ok := d2.banned(t, "198.51.100.9/32"); ok {
		t.Fatal("198.51.100.9 banned after restart: lines were counted twice")
	}
	appendLines(t, logPath, saslFailure("198.51.100.9"))
	waitFor(t, 10*time.Second, "198.51.100.9 banned by its 5th failure", func() bool {
		_, ok := d2.banned(t, "198.51.100.9/32")
		return ok
	})
	if b, _ := d2.banned(t, "198.51.100.9/32"); b.Failures != 5 {
		t.Errorf("198.51.100.9 banned with %d failures, want 5 (4 saved + 1 new)", b.Failures)
	}
}

// statusFailures reads a jail's total failures from `smtpban status -json`.
func statusFailures(t *testing.T, d *daemon, jail string) uint64 {
	t.Helper()
	var st struct {
		Jails []struct {
			Name          string `json:"name"`
			TotalFailures uint64 `json:"total_failures"`
		} `json:"jails"`
	}
	out, _, code := d.client("status", "-json")
	if code != 0 {
		return 0
	}
	if err := jsonUnmarshal(out, &st); err != nil {
		t.Fatalf("status -json: %v\n%s", err, out)
	}
	for _, j := range st.Jails {
		if j.Name == jail {
			return j.TotalFailures
		}
	}
	return 0
}
