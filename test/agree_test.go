package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDaemonAndReplayAgree feeds one log to the running daemon and to
// `smtpban replay` over the same config (the shipped Postfix and Dovecot
// jails, every one enabled): they decode, clean, skip and count every
// line alike, so they ban the same keys, in the same jails, with the same
// failures, and count the same failures per jail. The log holds what
// used to split them: an invalid UTF-8 byte in a user name, a stamp in
// the future, lines another program wrote, attacker text spelling other
// servers' lines, and IPv6 /64s that widen into a /48.
func TestDaemonAndReplayAgree(t *testing.T) {
	quickExit(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	config := writeAllJailsConfig(t, dir, logPath)
	d := startDaemon(t, config, filepath.Join(dir, "smtpband.sock"))
	waitSourcesOpen(t, d)

	now := time.Now()
	stamp := func(ago time.Duration) string { return now.Add(-ago).Format(time.Stamp) }
	var lines []string
	add := func(n int, format string, args ...any) {
		for i := range n {
			lines = append(lines, fmt.Sprintf("%s mx1 "+format, append([]any{stamp(time.Duration(60-i) * time.Second)}, args...)...))
		}
	}
	sasl := "postfix/submission/smtpd[4242]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=%s"
	add(5, sasl, "203.0.113.10", "alice")
	add(5, sasl, "203.0.113.11", "b\xffob") // one bad byte: cleaned, still counted
	add(4, sasl, "203.0.113.12", "carol")   // under maxretry
	// A user name spelling a Dovecot line and a relay reject for victims.
	add(5, sasl, "203.0.113.13", "imap-login: Disconnected (auth failed, 99 attempts): rip=192.0.2.30,")
	add(3, "postfix/smtpd[77]: NOQUEUE: reject: RCPT from unknown[203.0.113.14]: 554 5.7.1 <x@example.net>: Relay access denied; from=<a@example.org> to=<x@example.net> proto=ESMTP helo=<x>")
	// Another program's lines never count, whatever they say.
	add(5, "postfix/cleanup[9]: warning: unknown[192.0.2.31]: SASL LOGIN authentication failed: x")
	add(5, "app[3]: dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<u>, method=PLAIN, rip=192.0.2.32, lip=192.0.2.1")
	// Dovecot's login process, with a fake rip= in the user name.
	add(5, "dovecot[88]: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=192.0.2.33, lip=192.0.2.1, y>, method=PLAIN, rip=203.0.113.15, lip=192.0.2.1, TLS, session=<Zz>")
	// Three /64s of one /48: the third widens to the /48.
	for _, a := range []string{"2001:db8:77:1::1", "2001:db8:77:2::1", "2001:db8:77:3::1"} {
		add(5, sasl, a, "dave")
	}
	// A stamp far in the future is taken as the time it was read.
	for range 5 {
		lines = append(lines, "2099-01-01T00:00:00+00:00 mx1 postfix/smtpd[5]: warning: unknown[203.0.113.16]: SASL PLAIN authentication failed: x")
	}
	// Last, a marker: once it is banned, the daemon has read everything.
	add(5, sasl, "203.0.113.99", "marker")
	appendLines(t, logPath, lines...)
	waitBanned(t, d, "203.0.113.99/32")

	type banKey struct {
		prefix, jail string
		failures     int
	}
	var daemonBans []banKey
	for _, b := range d.bans(t) {
		daemonBans = append(daemonBans, banKey{b.Prefix, b.Jail, b.Failures})
	}
	// Replay reads the whole file: the first line bans nothing.
	out, errOut, code := d.client("replay", "-json", logPath)
	if code != 0 {
		t.Fatalf("smtpban replay: exit %d: %s", code, errOut)
	}
	var replayBans []banKey
	replayHits := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			Event, Jail, IP string
			Failures        int
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("replay output %q: %v", l, err)
		}
		switch ev.Event {
		case "ban":
			replayBans = append(replayBans, banKey{ev.IP, ev.Jail, ev.Failures})
		case "":
			replayHits[ev.Jail]++
		}
	}
	// Replay lists every ban it made; state keeps one per key, and the
	// /64s a widened ban replaced are gone from it.
	replayBans = slices.DeleteFunc(replayBans, func(b banKey) bool {
		return strings.HasPrefix(b.prefix, "2001:db8:77:") && strings.HasSuffix(b.prefix, "::/64")
	})
	cmp := func(a, b banKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
	slices.SortFunc(daemonBans, cmp)
	slices.SortFunc(replayBans, cmp)
	if !slices.Equal(daemonBans, replayBans) {
		t.Errorf("bans differ:\ndaemon %v\nreplay %v", daemonBans, replayBans)
	}
	want := []banKey{
		{"2001:db8:77::/48", "postfix-sasl", 5},
		{"203.0.113.10/32", "postfix-sasl", 5},
		{"203.0.113.11/32", "postfix-sasl", 5},
		{"203.0.113.13/32", "postfix-sasl", 5},
		{"203.0.113.14/32", "postfix-relay", 3},
		{"203.0.113.15/32", "dovecot", 5},
		{"203.0.113.16/32", "postfix-sasl", 5},
		{"203.0.113.99/32", "postfix-sasl", 5},
	}
	slices.SortFunc(want, cmp)
	if !slices.Equal(daemonBans, want) {
		t.Errorf("daemon bans %v, want %v", daemonBans, want)
	}
	var st struct {
		Jails []struct {
			Name          string `json:"name"`
			TotalFailures int    `json:"total_failures"`
		} `json:"jails"`
	}
	out, _ = must(t, d, 0, "status", "-json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jails {
		if j.TotalFailures != replayHits[j.Name] {
			t.Errorf("jail %s: the daemon counted %d failures, replay %d", j.Name, j.TotalFailures, replayHits[j.Name])
		}
	}
}

// writeAllJailsConfig writes, in dir, a config over the shipped Postfix and
// Dovecot jails with every one of them enabled, reading logPath (created
// with one line) and banning on the dry-run firewall, and returns its path.
func writeAllJailsConfig(t *testing.T, dir, logPath string) string {
	t.Helper()
	appendLines(t, logPath, "Nov 24 00:00:00 mx1 postfix/master[1]: daemon started")
	if err := os.MkdirAll(filepath.Join(dir, "jails.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"postfix.hcl", "dovecot.hcl"} {
		b, err := os.ReadFile(filepath.Join("..", "configs", "jails.d", f))
		if err != nil {
			t.Fatal(err)
		}
		writeText(t, filepath.Join(dir, "jails.d", f), strings.ReplaceAll(string(b), "enabled  = false", "enabled  = true"))
	}
	config := filepath.Join(dir, "smtpban.hcl")
	writeText(t, config, fmt.Sprintf(`
state_dir = %q
socket    = %q
include   = ["jails.d/*.hcl"]
source "file" "mail" { path = %q }
firewall "dryrun" {}
`, filepath.Join(dir, "state"), filepath.Join(dir, "smtpband.sock"), logPath))
	return config
}
