package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/control"
	"smtpban/internal/control/controltest"
)

var t0 = time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// daemon serves a fake daemon with one ban in postfix-sasl.
func daemon(t *testing.T) (*controltest.Fake, string) {
	t.Helper()
	f := controltest.NewFake(fixedNow, "postfix-sasl", "dovecot")
	f.AddBan(control.Ban{
		Prefix: netip.MustParsePrefix("203.0.113.7/32"), Jail: "postfix-sasl",
		Since: t0.Add(-3 * time.Minute), Until: t0.Add(42 * time.Minute),
		Count: 2, Failures: 5, Origin: "mx1", Line: "warning: unknown[203.0.113.7]: SASL LOGIN authentication failed",
	})
	return f, controltest.Serve(t, f, control.ServerOptions{Now: fixedNow})
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs smtpban in-process with the test clock.
func cli(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, configPath: filepath.Join(t.TempDir(), "missing.hcl"), now: fixedNow}
	code := e.main(t.Context(), args)
	return result{code, out.String(), errb.String()}
}

func staleSocket(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return p
}

func TestExitCodes(t *testing.T) {
	f, sock := daemon(t)
	f.ReloadErr = config.Diagnostics{{Summary: "Invalid regex", Detail: "missing closing )"}}
	none := filepath.Join(t.TempDir(), "none.sock")
	stale := staleSocket(t)
	tests := []struct {
		name       string
		args       []string
		code       int
		out, errIn string
	}{
		{"no command", nil, exitUsage, "", "usage: smtpban"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"help", []string{"help"}, exitOK, "exit codes: 0 ok", ""},
		{"unknown flag", []string{"-socket", sock, "bans", "-bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{"no socket", []string{"-socket", none, "status"}, exitNotRunning, "", "smtpband is not running (no socket at " + none + ")"},
		{"stale socket", []string{"-socket", stale, "bans"}, exitNotRunning, "", "smtpband is not running (nothing answers at " + stale + ")"},
		{"default socket when config unreadable", []string{"status"}, exitNotRunning, "", "warning: cannot use config"},
		{"status", []string{"-socket", sock, "status"}, exitOK, "postfix-sasl", ""},
		{"status unknown jail", []string{"-socket", sock, "status", "nope"}, exitError, "", `no jail named "nope"`},
		{"status two jails", []string{"-socket", sock, "status", "a", "b"}, exitUsage, "", "one jail at a time"},
		{"ban bad address", []string{"-socket", sock, "ban", "203.0.113.999"}, exitUsage, "", `"203.0.113.999" is not an IP address`},
		{"ban host bits", []string{"-socket", sock, "ban", "203.0.113.7/24"}, exitUsage, "", "did you mean 203.0.113.0/24?"},
		{"ban no address", []string{"-socket", sock, "ban"}, exitUsage, "", "missing ADDR or PREFIX"},
		{"ban two addresses", []string{"-socket", sock, "ban", "192.0.2.1", "192.0.2.2"}, exitUsage, "", "one ADDR or PREFIX at a time"},
		{"ban bad duration", []string{"-socket", sock, "ban", "192.0.2.1", "-for", "3 days"}, exitUsage, "", "invalid duration"},
		{"unban both", []string{"-socket", sock, "unban", "-all", "192.0.2.1"}, exitUsage, "", "not both"},
		{"allow list and remove", []string{"-socket", sock, "allow", "-list", "-remove", "192.0.2.1"}, exitUsage, "", "not both"},
		{"reload rejected", []string{"-socket", sock, "reload"}, exitError, "", "config has errors; the running config stays:\nInvalid regex: missing closing )"},
		{"replay without files", []string{"replay"}, exitUsage, "", "give at least one log FILE"},
		{"version without daemon", []string{"-socket", none, "version"}, exitOK, "smtpban dev\nsmtpband: smtpband is not running", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.out) {
				t.Errorf("stdout %q, want it to contain %q", r.stdout, tc.out)
			}
			if !strings.Contains(r.stderr, tc.errIn) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tc.errIn)
			}
		})
	}
	// Nothing malformed reached the daemon: only the well-formed reads and
	// the reload did.
	for _, c := range f.Calls() {
		if c != "Status" && c != "Reload" {
			t.Errorf("daemon got %s from a command that should have failed first", c)
		}
	}
}

func jsonKeys(t *testing.T, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, data)
	}
	return m
}

func sortedKeys(v any) []string {
	m, _ := v.(map[string]any)
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestJSON: -json prints the API's objects; their field names are stable.
func TestJSON(t *testing.T) {
	_, sock := daemon(t)
	banKeys := []string{"count", "failures", "jail", "line", "origin", "prefix", "since", "until"}
	tests := []struct {
		name string
		args []string
		keys []string
		// inner checks one nested object's keys: top-level key, index in
		// its array (-1: not an array) and the keys.
		inner string
		idx   int
		ikeys []string
	}{
		{"status", []string{"status", "-json"}, []string{"firewall", "jails", "sources", "started", "uptime", "version"}, "jails", 0, []string{"banned", "enabled", "failing", "name", "total_banned", "total_failures"}},
		{"status jail", []string{"status", "postfix-sasl", "-json"}, []string{"firewall", "jails", "sources", "started", "uptime", "version"}, "jails", 0, []string{"banned", "banned_list", "enabled", "failing", "name", "total_banned", "total_failures"}},
		{"bans", []string{"bans", "-json"}, []string{"bans"}, "bans", 0, banKeys},
		{"ban", []string{"ban", "-json", "192.0.2.1", "-for", "1d"}, []string{"ban"}, "ban", -1, []string{"count", "failures", "jail", "origin", "prefix", "since", "until"}},
		{"allow", []string{"allow", "-json", "198.51.100.0/24", "-for", "2h"}, []string{"allow", "lifted"}, "allow", -1, []string{"prefix", "until"}},
		{"allow list", []string{"allow", "-list", "-json"}, []string{"allow"}, "allow", 0, []string{"prefix", "until"}},
		{"allow remove", []string{"allow", "-remove", "-json", "198.51.100.0/24"}, []string{"prefix", "removed"}, "", 0, nil},
		{"unban", []string{"unban", "-json", "203.0.113.7"}, []string{"lifted"}, "lifted", 0, banKeys},
		{"reload", []string{"reload", "-json"}, []string{"reloaded"}, "", 0, nil},
		{"version", []string{"version", "-json"}, []string{"client", "daemon"}, "", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, append([]string{"-socket", sock}, tc.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			m := jsonKeys(t, r.stdout)
			if got := sortedKeys(m); !slices.Equal(got, tc.keys) {
				t.Errorf("keys %v, want %v", got, tc.keys)
			}
			if tc.inner == "" {
				return
			}
			v := m[tc.inner]
			if tc.idx >= 0 {
				a, ok := v.([]any)
				if !ok || len(a) <= tc.idx {
					t.Fatalf("%s: %v, want an array with element %d", tc.inner, v, tc.idx)
				}
				v = a[tc.idx]
			}
			if got := sortedKeys(v); !slices.Equal(got, tc.ikeys) {
				t.Errorf("%s keys %v, want %v", tc.inner, got, tc.ikeys)
			}
		})
	}
	t.Run("empty lists are [] not null", func(t *testing.T) {
		r := cli(t, "-socket", sock, "bans", "-jail", "dovecot", "-json")
		if strings.TrimSpace(r.stdout) != `{`+"\n"+`  "bans": []`+"\n}" {
			t.Errorf("empty bans: %q", r.stdout)
		}
	})
}

// TestChanges: every change says exactly what it did.
func TestChanges(t *testing.T) {
	_, sock := daemon(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"bans"}, "" +
			"ADDRESS      JAIL          SINCE   LEFT    COUNT  FAILURES  ORIGIN  LINE\n" +
			`203.0.113.7  postfix-sasl  3m ago  in 42m  2      5         mx1     "warning: unknown[203.0.113.7]: SASL LOGIN authentication failed"` + "\n"},
		{[]string{"bans", "-utc"}, "" +
			"ADDRESS      JAIL          SINCE                    UNTIL                    COUNT  FAILURES  ORIGIN  LINE\n" +
			`203.0.113.7  postfix-sasl  2025-11-24 11:57:00 UTC  2025-11-24 12:42:00 UTC  2      5         mx1     "warning: unknown[203.0.113.7]: SASL LOGIN authentication failed"` + "\n"},
		{[]string{"unban", "203.0.113.7"}, "unbanned 203.0.113.7 (jail postfix-sasl, was banned until 2025-11-24 12:42:00 UTC (in 42m))\n"},
		{[]string{"unban", "203.0.113.7"}, "203.0.113.7 was not banned\n"},
		{[]string{"unban", "-jail", "dovecot", "203.0.113.7"}, "203.0.113.7 was not banned in jail dovecot\n"},
		{[]string{"bans"}, "no active bans\n"},
		{[]string{"ban", "2001:db8::/64", "-for", "1d12h"}, "banned 2001:db8::/64 in jail manual until 2025-11-26 00:00:00 UTC (in 1d12h)\n"},
		{[]string{"ban", "-jail", "dovecot", "192.0.2.1"}, "banned 192.0.2.1 in jail dovecot until 2025-11-24 13:00:00 UTC (in 1h)\n"},
		// An address inside a banned prefix lifts the prefix ban.
		{[]string{"unban", "2001:db8::7"}, "unbanned 2001:db8::/64 (jail manual, was banned until 2025-11-26 00:00:00 UTC (in 1d12h))\n"},
		{[]string{"allow", "192.0.2.0/24", "-for", "2h"}, "" +
			"allowed 192.0.2.0/24 until 2025-11-24 14:00:00 UTC (in 2h)\n" +
			"unbanned 192.0.2.1 (jail dovecot, was banned until 2025-11-24 13:00:00 UTC (in 1h))\n"},
		{[]string{"allow", "198.51.100.7"}, "allowed 198.51.100.7 until removed (smtpban allow -remove 198.51.100.7)\n"},
		{[]string{"allow", "-list"}, "" +
			"ADDRESS       UNTIL\n" +
			"192.0.2.0/24  in 2h\n" +
			"198.51.100.7  removed\n"},
		{[]string{"allow", "-remove", "198.51.100.7"}, "removed 198.51.100.7 from the allow list\n"},
		{[]string{"allow", "-remove", "198.51.100.7"}, "198.51.100.7 was not on the allow list\n"},
		{[]string{"ban", "192.0.2.9"}, "banned 192.0.2.9 in jail manual until 2025-11-24 13:00:00 UTC (in 1h)\n"},
		{[]string{"ban", "192.0.2.10"}, "banned 192.0.2.10 in jail manual until 2025-11-24 13:00:00 UTC (in 1h)\n"},
		{[]string{"unban", "-all"}, "" +
			"unbanned 192.0.2.9 (jail manual, was banned until 2025-11-24 13:00:00 UTC (in 1h))\n" +
			"unbanned 192.0.2.10 (jail manual, was banned until 2025-11-24 13:00:00 UTC (in 1h))\n"},
		{[]string{"unban", "-all"}, "nothing was banned\n"},
		{[]string{"reload"}, "reloaded the config\n"},
	}
	for i, s := range steps {
		r := cli(t, append([]string{"-socket", sock}, s.args...)...)
		if r.code != exitOK || r.stdout != s.want {
			t.Errorf("step %d: smtpban %s: exit %d\ngot:\n%s\nwant:\n%s\nstderr: %s", i, strings.Join(s.args, " "), r.code, r.stdout, s.want, r.stderr)
		}
	}
}

func TestStatusOutput(t *testing.T) {
	_, sock := daemon(t)
	r := cli(t, "-socket", sock, "status", "postfix-sasl")
	for _, s := range []string{
		"smtpband test, up 1h (since 2025-11-24 11:00:00 UTC), firewall dryrun\n",
		"JAIL          ENABLED  FAILING  FAILURES  BANNED  BANS\n",
		"postfix-sasl  yes      2        10        1       3\n",
		"SOURCE  KIND  POSITION                LAG  READ  SKIPPED\nmail    file  /var/log/mail.log:1234  0s   100   1\n",
		"banned in postfix-sasl:\n  203.0.113.7\n",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("status output lacks %q:\n%s", s, r.stdout)
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "smtpban.hcl")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConfig = `
include = []
state_dir = "/var/lib/smtpban-test"
socket = "SOCKET"
source "file" "mail" { path = "/var/log/mail.log" }
jail "a" {
  source    = "mail"
  enabled   = true
  programs  = ["app"]
  failregex = ["auth failed from <HOST>"]
  maxretry  = 2
}
jail "b" {
  source    = "mail"
  enabled   = false
  programs  = ["app"]
  failregex = ["probe from <HOST>"]
}
firewall "dryrun" {}
`

func TestCheck(t *testing.T) {
	good := writeConfig(t, goodConfig)
	bad := writeConfig(t, strings.Replace(goodConfig, `maxretry  = 2`, `maxretry  = "many"`, 1))
	r := cli(t, "check", good)
	if want := good + ": ok (2 jails, 1 enabled, 1 sources)\n"; r.code != exitOK || r.stdout != want {
		t.Errorf("check good: exit %d, stdout %q, want %q; stderr %s", r.code, r.stdout, want, r.stderr)
	}
	r = cli(t, "-config", good, "check", "-json")
	m := jsonKeys(t, r.stdout)
	if r.code != exitOK || m["ok"] != true || m["enabled"] != 1.0 {
		t.Errorf("check -json good: exit %d %v", r.code, m)
	}
	r = cli(t, "check", bad)
	if r.code != exitError || r.stdout != "" || !strings.HasPrefix(r.stderr, bad+":11:") {
		t.Errorf("check bad: exit %d, stdout %q, stderr %q; want 1 and %s:11:col: ...", r.code, r.stdout, r.stderr, bad)
	}
	r = cli(t, "check", "-json", bad)
	m = jsonKeys(t, r.stdout)
	if ds, _ := m["diagnostics"].([]any); r.code != exitError || m["ok"] != false || len(ds) == 0 {
		t.Errorf("check -json bad: exit %d %v", r.code, m)
	}
}

// TestSocketFromConfig: without -socket the client reads the config's.
func TestSocketFromConfig(t *testing.T) {
	_, sock := daemon(t)
	cfg := writeConfig(t, strings.Replace(goodConfig, "SOCKET", sock, 1))
	r := cli(t, "-config", cfg, "bans")
	if r.code != exitOK || !strings.Contains(r.stdout, "203.0.113.7") || r.stderr != "" {
		t.Errorf("bans via the config's socket: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Global flags also work after the command.
	r = cli(t, "bans", "-config", cfg, "-json")
	if r.code != exitOK {
		t.Errorf("flags after the command: exit %d %s", r.code, r.stderr)
	}
}

func TestReplay(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	log := filepath.Join(t.TempDir(), "mail.log")
	lines := "Nov 24 11:00:00 mx app[1]: auth failed from 192.0.2.5\nNov 24 11:00:01 mx app[1]: auth failed from 192.0.2.5\nNov 24 11:00:02 mx app[1]: nothing here\n"
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "-config", cfg, "replay", "-jail", "a", "-json", log)
	if r.code != exitOK {
		t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
	}
	var events []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		events = append(events, jsonKeys(t, l))
	}
	if len(events) != 3 || events[2]["event"] != "ban" || events[2]["ip"] != "192.0.2.5/32" {
		t.Errorf("replay events: %v, want two matches and a ban of 192.0.2.5", events)
	}
	r = cli(t, "-config", cfg, "replay", "-jail", "nope", log)
	if r.code != exitError || !strings.Contains(r.stderr, `no jail named "nope"`) {
		t.Errorf("replay of an unknown jail: exit %d %s", r.code, r.stderr)
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{42 * time.Second, "42s"},
		{42 * time.Minute, "42m"},
		{3 * time.Hour, "3h"},
		{3*time.Hour + 5*time.Minute + 59*time.Second, "3h6m"},
		{36 * time.Hour, "1d12h"},
		{9 * 24 * time.Hour, "1w2d"},
		{59*time.Second + 600*time.Millisecond, "1m"},
		{59*time.Minute + 40*time.Second, "1h"},
		{48*time.Hour - time.Second, "2d"},
		{14*24*time.Hour - time.Minute, "2w"},
	}
	for _, tc := range tests {
		if got := human(tc.d); got != tc.want {
			t.Errorf("human(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := relative(t0.Add(-3*time.Hour), t0); got != "3h ago" {
		t.Errorf("relative past = %q", got)
	}
	if got := relative(t0.Add(42*time.Minute), t0); got != "in 42m" {
		t.Errorf("relative future = %q", got)
	}
}
