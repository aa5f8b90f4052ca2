package daemon

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const crashConfig = `
state_dir = %q
socket    = %q
include   = []

source "file" "mail" {
  path = %q
}

jail "postfix-sasl" {
  source    = "mail"
  programs  = ["postfix/smtpd"]
  failregex = ["warning: [^\\s\\[]+\\[<HOST>\\]: SASL \\S+ authentication failed"]
  maxretry  = 5
  findtime  = "1h"
  bantime   = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}

firewall "dryrun" {}
`

// TestCrashRightAfterBan: a daemon that dies in the second after a ban,
// before its next checkpoint, reads the tipping line again at the next
// start, on top of the failures saved before it. That is the same ban
// decided twice, not a second offence: it must not escalate (1h became 2h).
// The crash is a copy of the database taken while the daemon runs: every
// bbolt commit is fsynced, so the copy is what a kill -9 leaves.
func TestCrashRightAfterBan(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "first line\n")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	writeTestFile(t, cfgPath, fmt.Sprintf(crashConfig, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), logPath))
	d, _ := runTest(t, cfgPath, time.Hour) // checkpoints only when asked
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fail := func(addr string) {
		fmt.Fprintf(f, "%s mx1 postfix/smtpd[1]: warning: unknown[%s]: SASL LOGIN authentication failed: x\n", time.Now().Format(time.Stamp), addr)
	}
	eventually(t, "the source to read", func() bool {
		fmt.Fprintf(f, "%s mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]\n", time.Now().Format(time.Stamp))
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.sources) == 1 && d.sources[0].src.Stats().Read > 0
	})
	for range 4 {
		fail("203.0.113.8")
	}
	eventually(t, "4 failures counted", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.jailStats["postfix-sasl"].failures == 4
	})
	if err := d.checkpoint(); err != nil {
		t.Fatal(err)
	}
	fail("203.0.113.8") // the 5th: the ban
	key := netip.MustParsePrefix("203.0.113.8/32")
	eventually(t, "the ban", func() bool {
		_, ok, _ := d.store.Ban(key)
		return ok
	})
	first, _, _ := d.store.Ban(key)

	// The crash: the database as it is on disk now, and the same log.
	crashed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(crashed, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(dir, "state", "smtpban.db"), filepath.Join(crashed, "state", "smtpban.db"))
	cfg2 := filepath.Join(crashed, "smtpban.hcl")
	writeTestFile(t, cfg2, fmt.Sprintf(crashConfig, filepath.Join(crashed, "state"), filepath.Join(crashed, "s.sock"), logPath))
	d2, _ := runTest(t, cfg2, time.Hour)
	// A marker after the tipping line: once it is banned, the restarted
	// daemon has read the tipping line again.
	for range 5 {
		fail("198.51.100.8")
	}
	eventually(t, "the marker ban", func() bool {
		_, ok, _ := d2.store.Ban(netip.MustParsePrefix("198.51.100.8/32"))
		return ok
	})
	again, ok, err := d2.store.Ban(key)
	if err != nil || !ok {
		t.Fatalf("the ban after the crash: %v %v", ok, err)
	}
	if d := again.Until.Sub(first.Until); d > time.Minute {
		t.Errorf("the ban was extended by %s after the crash (until %s, was %s): the tipping line escalated it again", d, again.Until, first.Until)
	}
	if again.Count != first.Count {
		t.Errorf("ban count %d after the crash, was %d", again.Count, first.Count)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
