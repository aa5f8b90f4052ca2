package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJournalPriorities runs the daemon with stderr on a file that
// $JOURNAL_STREAM names, as systemd connects it to journald: every line
// starts with its priority and carries no time of its own (the start-up
// lines are <6>; journalstream's tests cover every level). With
// JOURNAL_STREAM naming another file (stderr redirected) no line has a
// prefix.
func TestJournalPriorities(t *testing.T) {
	for _, tc := range []struct {
		name    string
		connect bool
	}{{"journal", true}, {"redirected", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := testConfigFile(t, dir)
			stderr, err := os.Create(filepath.Join(dir, "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			var st syscall.Stat_t
			if err := syscall.Fstat(int(stderr.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			ino := st.Ino
			if !tc.connect {
				ino++
			}
			t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, ino))
			t.Setenv("NOTIFY_SOCKET", "")

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"-config", cfgPath, "-dry-run"}, os.Stdout, stderr) }()
			var out string
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out, "smtpband running"); {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("daemon not running after 20s; stderr:\n%s", out)
				}
				time.Sleep(10 * time.Millisecond)
				b, _ := os.ReadFile(stderr.Name())
				out = string(b)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
			b, _ := os.ReadFile(stderr.Name())
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			for _, ln := range lines {
				if !tc.connect {
					if strings.HasPrefix(ln, "<") || !strings.HasPrefix(ln, "time=") {
						t.Errorf("redirected stderr: line %q has a prefix or no time", ln)
					}
					continue
				}
				want := "<6>level=INFO "
				if strings.Contains(ln, "level=WARN") {
					want = "<4>level=WARN "
				}
				if !strings.HasPrefix(ln, want) || strings.Contains(ln, "time=") {
					t.Errorf("line %q: want it to start with %q and have no time", ln, want)
				}
			}
			if tc.connect && !strings.Contains(string(b), "<6>level=INFO msg=\"smtpband running\" version=dev firewall=dryrun") {
				t.Errorf("no running line with its attributes in:\n%s", b)
			}
		})
	}
}

// testConfigFile writes a config for a daemon on the dryrun firewall
// with its state, socket and log in dir, and returns its path.
func testConfigFile(t *testing.T, dir string) string {
	t.Helper()
	logPath := filepath.Join(dir, "mail.log")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	writeFile(t, logPath, "")
	writeFile(t, cfgPath, fmt.Sprintf(`
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
  bantime   = "1h"
}
firewall "dryrun" {}
`, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), logPath))
	return cfgPath
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
