package source

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smtpban/internal/logline"
)

// TestReadJournal reads a real journal file once, as `smtpban replay
// -journal -since` does: only entries received at or after since, only
// those the matches select and a trusted sender wrote, in order, with
// journald's receive time as their time; untrusted ones are counted as
// skipped. An error from the callback stops the read and is returned.
func TestReadJournal(t *testing.T) {
	needJournal(t)
	path := filepath.Join(t.TempDir(), "mail.journal")
	writeJournal(t, path,
		ent(0, "postfix/smtpd", "too old", field{"_SYSTEMD_UNIT", "postfix@-.service"}),
		ent(10, "postfix/smtpd", "warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: x", field{"_SYSTEMD_UNIT", "postfix@-.service"}, field{"SYSLOG_PID", "42"}),
		ent(11, "postfix/smtpd", "forged by a local user", field{"_SYSTEMD_UNIT", "postfix@-.service"}, field{"_UID", "1000"}),
		ent(12, "cron", "not selected", field{"_SYSTEMD_UNIT", "cron.service"}),
		ent(13, "dovecot", "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, rip=203.0.113.8", field{"_SYSTEMD_UNIT", "dovecot.service"}),
	)
	epoch := time.UnixMicro(1_700_000_000_000_000)
	cfg := JournalConfig{
		Files: []string{path},
		Match: []string{"_SYSTEMD_UNIT=postfix@-.service", "_SYSTEMD_UNIT=dovecot.service"},
		Trust: root,
	}
	var got []logline.Line
	skipped, err := ReadJournal(context.Background(), cfg, epoch.Add(5*time.Second), func(l logline.Line) error {
		got = append(got, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, l := range got {
		msgs = append(msgs, l.Program+": "+l.Message)
	}
	want := []string{
		"postfix/smtpd: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: x",
		"dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, rip=203.0.113.8",
	}
	if !slices.Equal(msgs, want) {
		t.Fatalf("lines %q, want %q", msgs, want)
	}
	if skipped != 1 {
		t.Errorf("skipped %d, want 1 (the untrusted entry)", skipped)
	}
	if !got[0].Read.Equal(epoch.Add(10*time.Second)) || got[0].PID != "42" || got[0].Raw != "postfix/smtpd[42]: "+want[0][len("postfix/smtpd: "):] {
		t.Errorf("first line %+v", got[0])
	}

	stop := errors.New("stop")
	n := 0
	_, err = ReadJournal(context.Background(), cfg, epoch, func(logline.Line) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("callback error: err %v after %d lines, want %v after 1", err, n, stop)
	}

	cfg.Command = "/nonexistent/journalctl"
	if _, err := ReadJournal(context.Background(), cfg, epoch, func(logline.Line) error { return nil }); err == nil {
		t.Error("missing journalctl: no error")
	}
}
