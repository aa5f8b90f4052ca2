package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	smtpband "smtpban/internal/daemon"
)

// f2bDB was written by Debian 12's fail2ban itself (see its gen.py), at
// f2bNow.
const f2bDB = "../../internal/fail2ban/testdata/fail2ban.sqlite3"

var f2bNow = time.Unix(1764000000, 0)

// TestImportFail2ban imports a real fail2ban database into a real daemon
// (dryrun firewall) over its control socket. The bans keep the time they
// had left; an address banned in two jails comes once, with the later
// end; the jails smtpband has keep their name, the others become manual;
// the ban manager refuses loopback and an address on the ignore list.
func TestImportFail2ban(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	cfg := filepath.Join(dir, "smtpban.hcl")
	logPath := filepath.Join(dir, "mail.log")
	write(t, logPath, "")
	jail := `
jail %q {
  source    = "mail"
  programs  = ["postfix/smtpd"]
  failregex = ["warning: [^\\s\\[]+\\[<HOST>\\]: SASL \\S+ authentication failed"]
  bantime   = "1h"
}
`
	write(t, cfg, fmt.Sprintf(`
state_dir = %q
socket    = %q
include   = []
ignore    = ["192.0.2.0/24"]
source "file" "mail" {
  path = %q
}
firewall "dryrun" {}
`, filepath.Join(dir, "state"), sock, logPath)+fmt.Sprintf(jail, "postfix-sasl")+fmt.Sprintf(jail, "dovecot"))
	d := runDaemon(t, cfg)

	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, configPath: cfg, now: func() time.Time { return f2bNow }}
	start := time.Now()
	code := e.main(t.Context(), []string{"import-fail2ban", f2bDB})
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"203.0.113.7   dovecot        dovecot       1h59m                       banned\n",
		"2001:db8::7   dovecot        dovecot       23h59m                      banned\n",
		"203.0.113.50  recidive       manual        4w (permanent in fail2ban)  banned\n",
		"192.0.2.200   sshd           manual        8m20s                       refused: invalid request: ban refused: refusing to ban 192.0.2.200/32: address is on the ignore list",
		"127.0.0.1     postfix-sasl   postfix-sasl  59m30s                      refused: invalid request: ban refused: refusing to ban 127.0.0.1/32: never banned: loopback\n",
		"5 active fail2ban bans in " + f2bDB + ": 3 banned, 2 refused, 0 skipped, 0 failed\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	bans, err := d.Bans(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range bans {
		left := b.Until.Sub(start)
		got[b.Prefix.String()] = b.Jail
		want := map[string]time.Duration{
			"203.0.113.7/32": time.Hour + 59*time.Minute, "2001:db8::7/128": 23*time.Hour + 59*time.Minute,
			"203.0.113.50/32": permanentDefault,
		}[b.Prefix.String()]
		// The daemon's clock runs on while the test does: allow a minute.
		if left < want-time.Minute || left > want+time.Minute {
			t.Errorf("%s banned for %v from the import, want %v", b.Prefix, left, want)
		}
	}
	wantJails := map[string]string{"203.0.113.7/32": "dovecot", "2001:db8::7/128": "dovecot", "203.0.113.50/32": "manual"}
	if fmt.Sprint(got) != fmt.Sprint(wantJails) {
		t.Errorf("daemon holds %v, want %v", got, wantJails)
	}

	// -json, -only and -dry-run: nothing more is banned, and each row
	// says what it would do.
	out.Reset()
	if code := e.main(t.Context(), []string{"import-fail2ban", "-dry-run", "-json", "-only", "sshd", f2bDB}); code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errb.String())
	}
	var rows []imported
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("-json: %v: %s", err, out.String())
	}
	if len(rows) != 1 || rows[0].Address != "192.0.2.200" || rows[0].Result != "would ban" || rows[0].Left != "8m20s" {
		t.Errorf("-dry-run -only sshd = %+v", rows)
	}
	if after, _ := d.Bans(context.Background(), ""); len(after) != len(bans) {
		t.Errorf("-dry-run changed the bans: %d, was %d", len(after), len(bans))
	}
}

// TestImportFail2banErrors: no database, or no daemon, is an error that
// says so, with the usual exit codes.
func TestImportFail2banErrors(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name string
		args []string
		code int
		errs string
	}{
		{"missing database", []string{"import-fail2ban", "/nonexistent/fail2ban.sqlite3"}, exitError, "open fail2ban database: open /nonexistent/fail2ban.sqlite3: no such file"},
		{"not a database", []string{"import-fail2ban", "importf2b_test.go"}, exitError, "no SQLite header"},
		{"no daemon", []string{"-socket", none, "import-fail2ban", f2bDB}, exitNotRunning, "smtpband is not running"},
		{"two databases", []string{"import-fail2ban", "a", "b"}, exitUsage, "one fail2ban database at a time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.errs) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.errs)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runDaemon runs a real smtpband daemon on cfg until the test ends.
func runDaemon(t *testing.T, cfg string) *smtpband.Daemon {
	t.Helper()
	ready := make(chan struct{})
	d, err := smtpband.New(smtpband.Options{
		ConfigPath: cfg,
		Logger:     slog.New(slog.DiscardHandler),
		Hostname:   "mx1",
		LocalAddrs: func() ([]netip.Addr, error) { return nil, nil },
		Ready:      func() { close(ready) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("daemon stopped before it was ready: %v", err)
	}
	return d
}
