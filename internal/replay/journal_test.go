package replay_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smtpban/internal/replay"
)

const journalRemote = "/lib/systemd/systemd-journal-remote"

// TestReplayJournal replays a real journal file through the shipped
// config's "mail" journal source, as `smtpban replay -journal -since 7d`
// does on a Debian 12 host without mail.log: the source's matches and
// trusted senders apply (a local user's "logger -t postfix/smtpd" is not read),
// and entries older than since are left out.
func TestReplayJournal(t *testing.T) {
	for _, bin := range []string{"journalctl", journalRemote} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing: .ci/run installs systemd and systemd-journal-remote", bin)
			}
			t.Skipf("%s missing (apt-get install systemd-journal-remote)", bin)
		}
	}
	epoch := time.Unix(1_700_000_000, 0)
	type entry struct {
		sec        int
		unit, uid  string
		ident, msg string
	}
	sasl := func(ip string) string {
		return "warning: unknown[" + ip + "]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
	}
	entries := []entry{
		{0, "postfix@-.service", "0", "postfix/smtpd", sasl("203.0.113.1")}, // before since
		{100, "postfix@-.service", "0", "postfix/smtpd", sasl("203.0.113.2")},
		{101, "session-4.scope", "1000", "postfix/smtpd", sasl("192.0.2.66")}, // logger -t postfix/smtpd by a local user
		{102, "cron.service", "0", "postfix/smtpd", sasl("192.0.2.67")},       // another unit
		{103, "dovecot.service", "0", "dovecot", "imap-login: Disconnected (auth failed, 2 attempts in 4 secs): user=<bob>, method=PLAIN, rip=203.0.113.3, lip=198.51.100.1"},
	}
	var b bytes.Buffer
	for i, e := range entries {
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mx1\n_SYSTEMD_UNIT=%s\n_UID=%s\nSYSLOG_IDENTIFIER=%s\nSYSLOG_PID=%d\nMESSAGE=%s\n\n",
			epoch.Add(time.Duration(e.sec)*time.Second).UnixMicro(), 1000+i, e.unit, e.uid, e.ident, 100+i, e.msg)
	}
	path := filepath.Join(t.TempDir(), "mail.journal")
	cmd := exec.Command(journalRemote, "--output="+path, "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, out)
	}

	c := loadShipped(t)
	for i := range c.Sources {
		if c.Sources[i].Name == "mail" {
			c.Sources[i].Files = []string{path}
		}
	}
	var got []string
	for _, m := range replayJSON(t, replay.Options{Config: c, Journal: &replay.Journal{Source: "mail", Since: epoch.Add(50 * time.Second)}}) {
		if m["event"] == "ban" {
			continue
		}
		got = append(got, fmt.Sprintf("%v %v %v %v", m["file"], m["jail"], m["ip"], m["time"]))
	}
	want := []string{
		"journal:mail postfix-sasl 203.0.113.2 " + epoch.Add(100*time.Second).Format(time.RFC3339),
		"journal:mail dovecot 203.0.113.3 " + epoch.Add(103*time.Second).Format(time.RFC3339),
	}
	if !slices.Equal(got, want) {
		t.Errorf("replayed %q, want %q", got, want)
	}
	if _, err := exec.LookPath("journalctl"); err == nil {
		err := replay.Run(t.Context(), replay.Options{Config: c, Journal: &replay.Journal{Source: "nope"}, Out: &bytes.Buffer{}})
		if err == nil {
			t.Error("unknown journal source: no error")
		}
	}
}
