package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smtpban/internal/control"
	"smtpban/state"
)

// These tests run the smtpban client against the real smtpband over its
// real socket: dryrun firewall, a file source, temporary directories.

// quickExit stops race-enabled binaries (built when the tests race)
// from sleeping a second at exit, which every client call would pay.
func quickExit(t *testing.T) {
	t.Setenv("GORACE", "atexit_sleep_ms=0")
}

// clientSetup is one daemon's files.
type clientSetup struct {
	dir, logPath, config, socket string
}

// newClientSetup writes a config (one file source "mail", one jail
// "postfix-sasl" with maxretry 5 and bantime 1h, dryrun firewall) with
// extra HCL at the end, in dir.
func newClientSetup(t *testing.T, dir, extra string) *clientSetup {
	t.Helper()
	s := &clientSetup{dir: dir, logPath: filepath.Join(dir, "mail.log"), socket: filepath.Join(dir, "smtpband.sock")}
	appendLines(t, s.logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: connect from old.example[192.0.2.200]")
	s.config = writeConfig(t, dir, s.logPath, "firewall \"dryrun\" {}\n"+extra, 5, "1h")
	return s
}

// start runs smtpband on the setup and waits until its sources read.
func (s *clientSetup) start(t *testing.T, wrap ...string) *daemon {
	t.Helper()
	d := startDaemon(t, s.config, s.socket, wrap...)
	waitSourcesOpen(t, d)
	return d
}

// fail appends n SASL failures of addr to the log.
func (s *clientSetup) fail(t *testing.T, addr string, n int) {
	t.Helper()
	for range n {
		appendLines(t, s.logPath, saslFailure(addr))
	}
}

// must runs the client and fails the test unless it exits with code.
func must(t *testing.T, d *daemon, code int, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errOut, got := d.client(args...)
	if got != code {
		t.Fatalf("smtpban %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, out, errOut)
	}
	return out, errOut
}

// contains fails the test unless s holds every one of want.
func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// keys returns the sorted keys of the JSON object s.
func keys(t *testing.T, s string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// sameKeys checks that a JSON object has exactly the field names want: the
// names are part of the API, and scripts break when one changes.
func sameKeys(t *testing.T, what, s string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keys(t, s); !slices.Equal(got, want) {
		t.Errorf("%s fields = %v, want %v", what, got, want)
	}
}

// field returns the raw JSON of path (object keys, or array indexes) in s.
func field(t *testing.T, s string, path ...string) string {
	t.Helper()
	raw := json.RawMessage(s)
	for _, p := range path {
		if i, err := strconv.Atoi(p); err == nil {
			var a []json.RawMessage
			if err := json.Unmarshal(raw, &a); err != nil || i >= len(a) {
				t.Fatalf("%v: no element %d in %s", path, i, raw)
			}
			raw = a[i]
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%v: %v in %s", path, err, raw)
		}
		v, ok := m[p]
		if !ok {
			t.Fatalf("%v: no field %q in %s", path, p, raw)
		}
		raw = v
	}
	return string(raw)
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

// runClient runs smtpban without a daemon's flags.
func runClient(args ...string) (stdout, stderr string, code int) {
	return runAs(filepath.Join(binDir, "smtpban"), nil, args...)
}

// runAs runs the client binary bin, as cred if not nil.
func runAs(bin string, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(bin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return runCmd(cmd)
}

// TestClientCommands runs every client command against one daemon.
func TestClientCommands(t *testing.T) {
	quickExit(t)
	s := newClientSetup(t, t.TempDir(), "")
	d := s.start(t)

	t.Run("version", func(t *testing.T) {
		out, _ := must(t, d, 0, "version")
		contains(t, "version", out, "smtpban dev\n", "smtpband dev (at "+s.socket+")")
		out, _ = must(t, d, 0, "version", "-json")
		sameKeys(t, "version -json", out, "client", "daemon")
		if got := field(t, out, "daemon"); got != `"dev"` {
			t.Errorf("version -json daemon = %s, want \"dev\"", got)
		}
	})

	t.Run("status", func(t *testing.T) {
		out, _ := must(t, d, 0, "status")
		contains(t, "status", out, "smtpband dev, up ", "firewall dryrun", "JAIL", "FAILURES", "postfix-sasl", "SOURCE", "mail ", "file")
		out, _ = must(t, d, 0, "status", "-json")
		sameKeys(t, "status -json", out, "version", "started", "uptime", "firewall", "jails", "sources", "state")
		sameKeys(t, "status -json state", field(t, out, "state"), "writable", "pending")
		sameKeys(t, "status -json jail", field(t, out, "jails", "0"), "name", "enabled", "failing", "total_failures", "banned", "total_banned")
		sameKeys(t, "status -json source", field(t, out, "sources", "0"), "name", "kind", "position", "lag", "read", "skipped")
		if got := field(t, out, "firewall"); got != `"dryrun"` {
			t.Errorf("firewall = %s", got)
		}
	})

	// A ban from the log, with its tipping line.
	s.fail(t, "203.0.113.7", 5)
	waitFor(t, 10*time.Second, "203.0.113.7 banned from the log", func() bool {
		_, ok := d.banned(t, "203.0.113.7/32")
		return ok
	})

	t.Run("status JAIL", func(t *testing.T) {
		out, _ := must(t, d, 0, "status", "postfix-sasl")
		contains(t, "status postfix-sasl", out, "banned in postfix-sasl:", "203.0.113.7")
		out, _ = must(t, d, 0, "status", "postfix-sasl", "-json")
		j := field(t, out, "jails", "0")
		sameKeys(t, "status JAIL -json jail", j, "name", "enabled", "failing", "total_failures", "banned", "total_banned", "banned_list")
		if got := compact(t, field(t, j, "banned_list")); got != `["203.0.113.7/32"]` {
			t.Errorf("banned_list = %s", got)
		}
		if got := field(t, j, "total_failures"); got != "5" {
			t.Errorf("total_failures = %s, want 5", got)
		}
		_, errOut := must(t, d, 1, "status", "nosuchjail")
		contains(t, "status nosuchjail", errOut, `no jail named "nosuchjail"`)
	})

	t.Run("bans", func(t *testing.T) {
		out, _ := must(t, d, 0, "bans")
		contains(t, "bans", out, "ADDRESS", "JAIL", "LEFT", "ORIGIN", "LINE", "203.0.113.7", "postfix-sasl", "in 1h", `postfix/submission/smtpd[4242]: warning: unknown[203.0.113.7]`)
		out, _ = must(t, d, 0, "bans", "-utc")
		contains(t, "bans -utc", out, "UNTIL", " UTC")
		out, _ = must(t, d, 0, "bans", "-json")
		sameKeys(t, "bans -json", out, "bans")
		sameKeys(t, "bans -json ban", field(t, out, "bans", "0"), "prefix", "jail", "since", "until", "count", "failures", "origin", "line")
		out, _ = must(t, d, 0, "bans", "-jail", "manual")
		if out != "no active bans in manual\n" {
			t.Errorf("bans -jail manual = %q", out)
		}
		out, _ = must(t, d, 0, "bans", "-jail", "manual", "-json")
		if strings.TrimSpace(out) != "{\n  \"bans\": []\n}" {
			t.Errorf("bans -jail manual -json = %q, want an empty list", out)
		}
		out, _ = must(t, d, 0, "bans", "-jail", "postfix-sasl", "-json")
		if got := field(t, out, "bans", "0", "prefix"); got != `"203.0.113.7/32"` {
			t.Errorf("bans -jail postfix-sasl: prefix %s", got)
		}
	})

	t.Run("ban", func(t *testing.T) {
		out, _ := must(t, d, 0, "ban", "192.0.2.10")
		contains(t, "ban", out, "banned 192.0.2.10 in jail manual until ", "in 1h")
		out, _ = must(t, d, 0, "ban", "-for", "2d", "198.51.100.0/24", "-json")
		sameKeys(t, "ban -json", out, "ban")
		b := parseBan(t, field(t, out, "ban"))
		if b.Jail != "manual" || b.Prefix != "198.51.100.0/24" || b.Until.Sub(b.Since) != 48*time.Hour {
			t.Errorf("ban -for 2d = %+v, want manual 198.51.100.0/24 for 48h", b)
		}
		out, _ = must(t, d, 0, "ban", "-jail", "postfix-sasl", "192.0.2.55", "-json")
		if b := parseBan(t, field(t, out, "ban")); b.Jail != "postfix-sasl" || b.Until.Sub(b.Since) != time.Hour {
			t.Errorf("ban -jail postfix-sasl = %+v, want the jail's bantime 1h", b)
		}
		_, errOut := must(t, d, 1, "ban", "127.0.0.1")
		contains(t, "ban 127.0.0.1", errOut, "refusing to ban 127.0.0.1")
		_, errOut = must(t, d, 1, "ban", "-jail", "nosuchjail", "192.0.2.1")
		contains(t, "ban -jail nosuchjail", errOut, `no jail named "nosuchjail"`)
		if _, ok := d.banned(t, "198.51.100.0/24"); !ok {
			t.Error("198.51.100.0/24 not in bans after ban")
		}
	})

	t.Run("unban", func(t *testing.T) {
		// An address lifts the prefix ban that holds it.
		out, _ := must(t, d, 0, "unban", "198.51.100.7")
		contains(t, "unban 198.51.100.7", out, "unbanned 198.51.100.0/24 (jail manual, was banned until ")
		out, _ = must(t, d, 0, "unban", "198.51.100.7")
		if out != "198.51.100.7 was not banned\n" {
			t.Errorf("second unban = %q", out)
		}
		out, _ = must(t, d, 0, "unban", "-jail", "postfix-sasl", "192.0.2.10")
		if out != "192.0.2.10 was not banned in jail postfix-sasl\n" {
			t.Errorf("unban in the wrong jail = %q", out)
		}
		out, _ = must(t, d, 0, "unban", "-jail", "manual", "192.0.2.10", "-json")
		sameKeys(t, "unban -json", out, "lifted")
		if got := field(t, out, "lifted", "0", "prefix"); got != `"192.0.2.10/32"` {
			t.Errorf("unban -json lifted %s", got)
		}
		out, _ = must(t, d, 0, "unban", "192.0.2.10", "-json")
		if got := field(t, out, "lifted"); got != "[]" {
			t.Errorf("unban of nothing -json lifted = %s, want []", got)
		}
	})

	t.Run("allow", func(t *testing.T) {
		out, _ := must(t, d, 0, "allow", "203.0.113.7")
		contains(t, "allow", out, "allowed 203.0.113.7 until removed", "unbanned 203.0.113.7 (jail postfix-sasl")
		if _, ok := d.banned(t, "203.0.113.7/32"); ok {
			t.Error("203.0.113.7 still banned after allow")
		}
		out, _ = must(t, d, 0, "allow", "-for", "2h", "2001:db8::/64", "-json")
		sameKeys(t, "allow -json", out, "allow", "lifted")
		sameKeys(t, "allow -json entry", field(t, out, "allow"), "prefix", "until")
		out, _ = must(t, d, 0, "allow", "-list")
		contains(t, "allow -list", out, "ADDRESS", "UNTIL", "203.0.113.7", "removed", "2001:db8::/64", "in 2h")
		out, _ = must(t, d, 0, "allow", "-list", "-json")
		sameKeys(t, "allow -list -json", out, "allow")
		sameKeys(t, "allow -list -json permanent entry", field(t, out, "allow", "1"), "prefix")

		// Failures of an allowed address are counted but never ban.
		before := statusFailures(t, d, "postfix-sasl")
		s.fail(t, "203.0.113.7", 5)
		waitFor(t, 10*time.Second, "5 more failures counted", func() bool {
			return statusFailures(t, d, "postfix-sasl") == before+5
		})
		if _, ok := d.banned(t, "203.0.113.7/32"); ok {
			t.Error("an allowed address was banned")
		}

		out, _ = must(t, d, 0, "allow", "-remove", "203.0.113.7")
		if out != "removed 203.0.113.7 from the allow list\n" {
			t.Errorf("allow -remove = %q", out)
		}
		out, _ = must(t, d, 0, "allow", "-remove", "203.0.113.7", "-json")
		sameKeys(t, "allow -remove -json", out, "prefix", "removed")
		if got := field(t, out, "removed"); got != "false" {
			t.Errorf("second allow -remove removed = %s", got)
		}
	})

	t.Run("unban -all", func(t *testing.T) {
		must(t, d, 0, "ban", "192.0.2.20")
		must(t, d, 0, "ban", "192.0.2.21")
		out, _ := must(t, d, 0, "unban", "-all")
		// 192.0.2.55 (postfix-sasl) is still banned from the ban subtest.
		contains(t, "unban -all", out, "unbanned 192.0.2.20 ", "unbanned 192.0.2.21 ", "unbanned 192.0.2.55 (jail postfix-sasl")
		out, _ = must(t, d, 0, "bans")
		if out != "no active bans\n" {
			t.Errorf("bans after unban -all = %q", out)
		}
		out, _ = must(t, d, 0, "unban", "-all")
		if out != "nothing was banned\n" {
			t.Errorf("unban -all with nothing banned = %q", out)
		}
	})

	t.Run("check", func(t *testing.T) {
		out, _ := must(t, d, 0, "check")
		if want := s.config + ": ok (1 jails, 1 enabled, 1 sources)\n"; out != want {
			t.Errorf("check = %q, want %q", out, want)
		}
		out, _ = must(t, d, 0, "check", "-json")
		sameKeys(t, "check -json", out, "file", "ok", "jails", "enabled", "sources", "diagnostics")
		bad := filepath.Join(t.TempDir(), "bad.hcl")
		if err := os.WriteFile(bad, []byte("state_dir = \"/x\"\nmaxretry = 3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut := must(t, d, 1, "check", bad)
		contains(t, "check bad.hcl", errOut, bad+":2:1: Unsupported argument")
		out, _ = must(t, d, 1, "check", "-json", bad)
		if got := field(t, out, "ok"); got != "false" {
			t.Errorf("check -json of a bad file: ok = %s", got)
		}
	})

	t.Run("replay", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "old.log")
		for range 6 {
			appendLines(t, log, saslFailure("192.0.2.99"))
		}
		out, _ := must(t, d, 0, "replay", log)
		contains(t, "replay", out, "6 lines read, 0 skipped", "postfix-sasl", "192.0.2.99")
		out, _ = must(t, d, 0, "replay", "-json", log)
		var bans int
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev struct {
				Event    string `json:"event"`
				IP       string `json:"ip"`
				Failures int    `json:"failures"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("replay -json line %q: %v", l, err)
			}
			if ev.Event == "ban" {
				bans++
				if ev.IP != "192.0.2.99/32" || ev.Failures != 5 {
					t.Errorf("replay ban = %+v, want 192.0.2.99/32 at 5 failures", ev)
				}
			}
		}
		if bans != 1 {
			t.Errorf("replay -json: %d bans, want 1\n%s", bans, out)
		}
		// Replay is offline: the daemon banned nothing.
		if _, ok := d.banned(t, "192.0.2.99/32"); ok {
			t.Error("replay banned in the daemon")
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"ban"},
			{"ban", "not-an-address"},
			{"ban", "203.0.113.7/24"},
			{"ban", "-for", "soon", "192.0.2.1"},
			{"unban", "-all", "192.0.2.1"},
			{"allow", "-list", "-remove", "192.0.2.1"},
			{"bans", "extra"},
			{"reload", "extra"},
			{"frobnicate"},
		} {
			_, errOut, code := d.client(args...)
			if code != 2 {
				t.Errorf("smtpban %s: exit %d, want 2\n%s", strings.Join(args, " "), code, errOut)
			}
		}
		_, errOut, _ := d.client("ban", "203.0.113.7/24")
		contains(t, "ban with host bits", errOut, "did you mean 203.0.113.0/24?")
	})
}

type banJSON struct {
	Prefix string    `json:"prefix"`
	Jail   string    `json:"jail"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

func parseBan(t *testing.T, s string) banJSON {
	t.Helper()
	var b banJSON
	if err := json.Unmarshal([]byte(s), &b); err != nil {
		t.Fatalf("ban JSON: %v\n%s", err, s)
	}
	return b
}

// TestClientNotRunning: no daemon, or a dead one's socket, is exit 3 with
// a message that says so.
func TestClientNotRunning(t *testing.T) {
	quickExit(t)
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	missing := filepath.Join(dir, "none.sock")
	tests := []struct {
		name, socket, want string
	}{
		{"no socket", missing, "smtpband is not running (no socket at " + missing + ")"},
		{"stale socket", stale, "smtpband is not running (nothing answers at " + stale + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cmd := range [][]string{{"status"}, {"bans", "-json"}, {"ban", "192.0.2.1"}, {"unban", "-all"}, {"reload"}, {"allow", "-list"}} {
				_, errOut, code := runClient(append([]string{"-socket", tt.socket}, cmd...)...)
				if code != 3 {
					t.Errorf("%v: exit %d, want 3", cmd, code)
				}
				contains(t, fmt.Sprint(cmd), errOut, tt.want)
			}
			// version still answers for the client.
			out, _, code := runClient("-socket", tt.socket, "version")
			if code != 0 || !strings.Contains(out, "smtpban dev") || !strings.Contains(out, tt.want) {
				t.Errorf("version without a daemon: exit %d\n%s", code, out)
			}
		})
	}
}

// TestClientReload: an invalid config is refused with its diagnostics and
// the running one keeps banning; a valid one applies without losing bans
// or failure counts; SIGHUP reloads too.
func TestClientReload(t *testing.T) {
	quickExit(t)
	s := newClientSetup(t, t.TempDir(), "")
	base, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	d := s.start(t)
	must(t, d, 0, "ban", "192.0.2.77")
	s.fail(t, "203.0.113.50", 3)
	waitFor(t, 10*time.Second, "3 failures counted", func() bool { return statusFailures(t, d, "postfix-sasl") == 3 })

	// The broken regex's element is at this line, column 16.
	broken := "\njail \"broken\" {\n  source    = \"mail\"\n  failregex = [\"broken (<HOST>\"]\n  programs  = [\"postfix/smtpd\"]\n}\n"
	badLine := strings.Count(string(base), "\n") + 4
	writeFile(t, s.config, string(base)+broken)
	out, errOut := must(t, d, 1, "reload")
	if out != "" {
		t.Errorf("refused reload printed %q on stdout", out)
	}
	contains(t, "refused reload", errOut, "the running config stays",
		fmt.Sprintf("%s:%d:16: Invalid regular expression: failregex: missing closing )", s.config, badLine))
	out, _ = must(t, d, 0, "status", "-json")
	if n := strings.Count(out, `"name": "broken"`); n != 0 {
		t.Errorf("status shows the refused jail:\n%s", out)
	}
	// The old config still bans.
	s.fail(t, "203.0.113.60", 5)
	waitFor(t, 10*time.Second, "203.0.113.60 banned after the refused reload", func() bool {
		_, ok := d.banned(t, "203.0.113.60/32")
		return ok
	})

	// A valid config with a new jail.
	dovecot := "\njail \"dovecot\" {\n  source    = \"mail\"\n  programs  = [\"dovecot\"]\n  failregex = [\"imap-login: Disconnected \\\\(auth failed.*rip=<HOST>\"]\n}\n"
	writeFile(t, s.config, string(base)+dovecot)
	out, _ = must(t, d, 0, "reload")
	if out != "reloaded the config\n" {
		t.Errorf("reload = %q", out)
	}
	out, _ = must(t, d, 0, "reload", "-json")
	sameKeys(t, "reload -json", out, "reloaded")
	out, _ = must(t, d, 0, "status")
	contains(t, "status after reload", out, "dovecot", "postfix-sasl")
	if got := statusFailures(t, d, "postfix-sasl"); got != 8 {
		t.Errorf("postfix-sasl total failures after reload = %d, want 8 (3 + 5 before it)", got)
	}
	for _, p := range []string{"192.0.2.77/32", "203.0.113.60/32"} {
		if _, ok := d.banned(t, p); !ok {
			t.Errorf("ban on %s lost by the reload", p)
		}
	}
	// 3 failures before the reloads and 2 after make 5: the window survived.
	s.fail(t, "203.0.113.50", 2)
	waitFor(t, 10*time.Second, "203.0.113.50 banned by 3 + 2 failures", func() bool {
		_, ok := d.banned(t, "203.0.113.50/32")
		return ok
	})
	if b, _ := d.banned(t, "203.0.113.50/32"); b.Failures != 5 {
		t.Errorf("203.0.113.50 banned with %d failures, want 5", b.Failures)
	}

	t.Run("SIGHUP", func(t *testing.T) {
		exim := "\njail \"exim\" {\n  source    = \"mail\"\n  programs  = [\"exim\"]\n  failregex = [\"\\\\S+ authenticator failed for .*\\\\[<HOST>\\\\]\"]\n}\n"
		writeFile(t, s.config, string(base)+dovecot+exim)
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the exim jail after SIGHUP", func() bool {
			out, _, code := d.client("status", "exim")
			return code == 0 && strings.Contains(out, "nothing banned in exim")
		})
		// A broken config on SIGHUP is logged and changes nothing.
		writeFile(t, s.config, string(base)+broken)
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the refused SIGHUP reload in the log", func() bool {
			return strings.Contains(d.logs(), "Invalid regular expression")
		})
		if d.exited() {
			t.Fatal("smtpband exited on a broken config at SIGHUP")
		}
		must(t, d, 0, "status", "exim")
		must(t, d, 1, "status", "broken")
	})
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestClientPermissions runs the client as nobody (uid 65534): the kernel
// refuses a 0600 socket; with socket_group, members may change things and
// the daemon refuses everyone else even when the socket lets them in.
func TestClientPermissions(t *testing.T) {
	requireRoot(t)
	quickExit(t)
	grp, err := user.LookupGroup("mail")
	if err != nil {
		t.Fatalf("group mail (Debian base-passwd has it): %v", err)
	}
	gid64, err := strconv.ParseUint(grp.Gid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	gid := uint32(gid64)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	member := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{gid}}

	// t.TempDir is 0700: nobody could not even reach the socket. This
	// directory is traversable and holds a client nobody may run.
	dir, err := os.MkdirTemp("", "smtpban-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "smtpban")
	copyFile(t, filepath.Join(binDir, "smtpban"), bin, 0o755)

	t.Run("0600 socket", func(t *testing.T) {
		sub := mkdir(t, dir, "root-only")
		s := newClientSetup(t, sub, "")
		d := s.start(t)
		if fi, err := os.Stat(s.socket); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode: %v %v, want 0600", fi.Mode(), err)
		}
		for _, cmd := range [][]string{{"status"}, {"ban", "198.51.100.21"}} {
			_, errOut, code := runAs(bin, nobody, append([]string{"-socket", s.socket}, cmd...)...)
			// Not "not running" (3): the daemon runs, the caller may not talk to it.
			if code != 1 {
				t.Errorf("%v as nobody: exit %d, want 1", cmd, code)
			}
			contains(t, fmt.Sprint(cmd), errOut, "permission denied: cannot connect to "+s.socket+": run as root or as a member of the socket's group")
		}
		if _, ok := d.banned(t, "198.51.100.21/32"); ok {
			t.Error("nobody's ban went through")
		}
	})

	t.Run("socket_group", func(t *testing.T) {
		sub := mkdir(t, dir, "group")
		s := newClientSetup(t, sub, "socket_group = \"mail\"\n")
		d := s.start(t)
		fi, err := os.Stat(s.socket)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != gid {
			t.Fatalf("socket mode %v gid %d, want 0660 gid %d", fi.Mode(), st.Gid, gid)
		}
		// A member connects and may change things.
		out, errOut, code := runAs(bin, member, "-socket", s.socket, "ban", "198.51.100.22")
		if code != 0 || !strings.Contains(out, "banned 198.51.100.22 in jail manual") {
			t.Errorf("ban as a member of mail: exit %d\n%s%s", code, out, errOut)
		}
		// Anyone else is stopped by the socket's mode.
		_, errOut, code = runAs(bin, nobody, "-socket", s.socket, "unban", "198.51.100.22")
		if code != 1 || !strings.Contains(errOut, "permission denied: cannot connect") {
			t.Errorf("unban as nobody through a 0660 socket: exit %d, want 1\n%s", code, errOut)
		}
		// And by the daemon, should the socket let them in: it checks the
		// caller's credentials before any change. Reading is allowed.
		if err := os.Chmod(s.socket, 0o666); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := runAs(bin, nobody, "-socket", s.socket, "bans"); code != 0 {
			t.Errorf("bans as nobody through a 0666 socket: exit %d\n%s", code, errOut)
		}
		for _, cmd := range [][]string{{"unban", "198.51.100.22"}, {"ban", "198.51.100.23"}, {"allow", "198.51.100.24"}, {"reload"}} {
			_, errOut, code := runAs(bin, nobody, append([]string{"-socket", s.socket}, cmd...)...)
			if code != 1 {
				t.Errorf("%v as nobody: exit %d, want 1", cmd, code)
			}
			contains(t, fmt.Sprint(cmd), errOut, "permission denied: run as root or as a member of group mail")
		}
		if _, ok := d.banned(t, "198.51.100.22/32"); !ok {
			t.Error("nobody's unban went through")
		}
		if _, ok := d.banned(t, "198.51.100.23/32"); ok {
			t.Error("nobody's ban went through")
		}
	})
}

func mkdir(t *testing.T, parent, name string) string {
	t.Helper()
	p := filepath.Join(parent, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func scrape(t *testing.T, url string) (string, []sample) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v", url, resp.Status, err)
	}
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unparsable metrics line %q", l)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, lm := range labelRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[lm[1]] = lm[2]
		}
		out = append(out, s)
	}
	return string(body), out
}

// value finds the sample with name and exactly these labels.
func value(samples []sample, name string, labels map[string]string) (float64, bool) {
	for _, s := range samples {
		if s.name == name && len(s.labels) == len(labels) {
			match := true
			for k, v := range labels {
				match = match && s.labels[k] == v
			}
			if match {
				return s.value, true
			}
		}
	}
	return 0, false
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestMetricsEndpoint scrapes the daemon after a ban and an unban.
func TestMetricsEndpoint(t *testing.T) {
	quickExit(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := newClientSetup(t, t.TempDir(), fmt.Sprintf("metrics = %q\n", addr))
	d := s.start(t)
	url := "http://" + addr + "/metrics"

	_, samples := scrape(t, url)
	if v, ok := value(samples, "smtpban_bans_total", map[string]string{"jail": "postfix-sasl", "origin": host}); !ok || v != 0 {
		t.Errorf("before any ban: smtpban_bans_total = %v (present %v), want 0", v, ok)
	}

	s.fail(t, "203.0.113.7", 5)
	waitFor(t, 10*time.Second, "203.0.113.7 banned", func() bool {
		_, ok := d.banned(t, "203.0.113.7/32")
		return ok
	})
	must(t, d, 0, "ban", "192.0.2.10")
	must(t, d, 0, "unban", "192.0.2.10")
	body, samples := scrape(t, url)

	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"smtpban_bans_total", map[string]string{"jail": "postfix-sasl", "origin": host}, 1},
		{"smtpban_bans_total", map[string]string{"jail": "manual", "origin": host}, 1},
		{"smtpban_unbans_total", map[string]string{"jail": "manual", "origin": host}, 1},
		{"smtpban_unbans_total", map[string]string{"jail": "postfix-sasl", "origin": host}, 0},
		{"smtpban_matches_total", map[string]string{"jail": "postfix-sasl"}, 5},
		{"smtpban_bans_active", map[string]string{"jail": "postfix-sasl"}, 1},
		{"smtpban_bans_active", map[string]string{"jail": "manual"}, 0},
		{"smtpban_source_lines_read_total", map[string]string{"source": "mail"}, 5},
		{"smtpban_source_lines_skipped_total", map[string]string{"source": "mail"}, 0},
		{"smtpban_ban_apply_duration_seconds_count", map[string]string{}, 2},
		{"smtpban_firewall_resyncs_total", map[string]string{"why": "start"}, 1},
		{"smtpban_firewall_errors_total", map[string]string{"op": "add"}, 0},
		{"smtpban_failure_windows", map[string]string{}, 0},
		{"smtpban_build_info", map[string]string{"version": "dev", "goversion": runtimeVersion(samples)}, 1},
	}
	for _, w := range want {
		got, ok := value(samples, w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	for _, name := range []string{"smtpban_source_lag_seconds", "smtpban_state_checkpoint_duration_seconds_count"} {
		if !slices.ContainsFunc(samples, func(s sample) bool { return s.name == name }) {
			t.Errorf("no %s in the scrape", name)
		}
	}
	// Addresses are never labels, nor anywhere else in the scrape.
	for _, a := range []string{"203.0.113.7", "192.0.2.10", "alice"} {
		if strings.Contains(body, a) {
			t.Errorf("the scrape mentions %s", a)
		}
	}
	for _, s := range samples {
		if !strings.HasPrefix(s.name, "smtpban_") && !strings.HasPrefix(s.name, "go_") && !strings.HasPrefix(s.name, "process_") && !strings.HasPrefix(s.name, "promhttp_") {
			t.Errorf("metric %s has an unexpected prefix", s.name)
		}
	}
}

func runtimeVersion(samples []sample) string {
	for _, s := range samples {
		if s.name == "smtpban_build_info" {
			return s.labels["goversion"]
		}
	}
	return ""
}

// TestJSONLogs runs the daemon with -log-format json: every line is a JSON
// record, and each ban and unban is one record with jail, address,
// failures, until and origin.
func TestJSONLogs(t *testing.T) {
	quickExit(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	s := newClientSetup(t, t.TempDir(), "")
	// startDaemon passes its own flags; sh appends ours after them.
	d := s.start(t, "sh", "-c", `exec "$0" "$@" -log-format json`)
	s.fail(t, "203.0.113.7", 5)
	waitFor(t, 10*time.Second, "203.0.113.7 banned", func() bool {
		_, ok := d.banned(t, "203.0.113.7/32")
		return ok
	})
	must(t, d, 0, "unban", "203.0.113.7")
	var recs []map[string]any
	waitFor(t, 10*time.Second, "the unban's log record", func() bool {
		recs = recs[:0]
		for _, l := range strings.Split(strings.TrimSpace(d.logs()), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("log line is not JSON: %v\n%s", err, l)
			}
			recs = append(recs, r)
		}
		return slices.ContainsFunc(recs, func(r map[string]any) bool { return r["msg"] == "unban" })
	})
	for _, msg := range []string{"ban", "unban"} {
		var got []map[string]any
		for _, r := range recs {
			if r["msg"] == msg {
				got = append(got, r)
			}
		}
		if len(got) != 1 {
			t.Errorf("%d %q records, want 1", len(got), msg)
			continue
		}
		r := got[0]
		if r["jail"] != "postfix-sasl" || r["addr"] != "203.0.113.7/32" || r["failures"] != float64(5) || r["origin"] != host || r["level"] != "INFO" {
			t.Errorf("%s record = %v", msg, r)
		}
		until, err := time.Parse(time.RFC3339, fmt.Sprint(r["until"]))
		if err != nil || until.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("%s record until = %v (%v), want about an hour from now", msg, r["until"], err)
		}
	}
}

// TestReadyNotify: with NOTIFY_SOCKET set, READY=1 arrives only once the
// control socket answers and the bans are restored. The state holds 20000
// bans, so that restoring them takes long enough for a READY=1 sent early
// to be caught.
func TestReadyNotify(t *testing.T) {
	quickExit(t)
	s := newClientSetup(t, t.TempDir(), "")
	d := s.start(t)
	must(t, d, 0, "ban", "-for", "2h", "192.0.2.123")
	d.kill(syscall.SIGTERM)
	if st := d.cmd.ProcessState; st == nil || !st.Success() {
		t.Fatalf("smtpband after SIGTERM: %v\n%s", st, d.logs())
	}
	const preloaded = 20000
	addBans(t, filepath.Join(s.dir, "state", "smtpban.db"), preloaded)

	notify := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	type atReady struct {
		msgs  []string
		bans  []control.Ban
		err   error
		ready bool
	}
	got := make(chan atReady, 1)
	go func() {
		var r atReady
		defer func() { got <- r }()
		buf := make([]byte, 4096)
		for {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			r.msgs = append(r.msgs, msg)
			if slices.Contains(strings.Split(msg, "\n"), "READY=1") {
				r.ready = true
				// Right away, in process: whoever systemd tells may use
				// the daemon now.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				r.bans, r.err = control.NewClient(s.socket).Bans(ctx, "")
				return
			}
		}
	}()
	d2 := startDaemon(t, s.config, s.socket, "env", "NOTIFY_SOCKET="+notify)
	var r atReady
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no READY=1 within 30s")
	}
	if !r.ready {
		t.Fatalf("no READY=1; got %q\n%s", r.msgs, d2.logs())
	}
	if r.err != nil {
		t.Fatalf("bans at READY=1: %v", r.err)
	}
	if len(r.bans) != preloaded+1 || !slices.ContainsFunc(r.bans, func(b control.Ban) bool { return b.Prefix.String() == "192.0.2.123/32" }) {
		t.Errorf("at READY=1: %d bans, want %d with 192.0.2.123/32", len(r.bans), preloaded+1)
	}
	// And the client agrees.
	out, _ := must(t, d2, 0, "bans", "-jail", "manual")
	contains(t, "bans after restart", out, "192.0.2.123")
	logs := d2.logs()
	if !strings.Contains(logs, fmt.Sprintf("bans_added=%d", preloaded+1)) {
		t.Errorf("the restart did not restore %d bans to the firewall:\n%s", preloaded+1, logs)
	}
}

// addBans writes n bans (100.64.0.0/10 addresses, 2h) into the state
// database at path while no daemon runs.
func addBans(t *testing.T, path string, n int) {
	t.Helper()
	st, err := state.Open(path, state.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	bans := make([]state.Ban, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		bans = append(bans, state.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "postfix-sasl", Since: now, Until: now.Add(2 * time.Hour), Failures: 5, Origin: "test"})
	}
	if _, err := st.PutBans(bans); err != nil {
		t.Fatal(err)
	}
}
