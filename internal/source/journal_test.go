package source

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"smtpban/internal/logline"
)

const journalRemote = "/lib/systemd/systemd-journal-remote"

// needJournal skips (fails in CI) without journalctl and systemd-journal-remote.
func needJournal(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("journalctl"); err != nil {
		skipOrFatal(t, "journalctl not installed: %v", err)
	}
	if _, err := os.Stat(journalRemote); err != nil {
		skipOrFatal(t, "systemd-journal-remote not installed (apt-get install systemd-journal-remote): %v", err)
	}
}

// field is one journal field; values that are not plain one-line UTF-8 are
// written in the export format's binary form.
type field struct{ name, value string }

type jentry []field

// ent builds an entry at second sec (after a fixed epoch) with a message
// from ident; extra fields follow. It is root's (_UID=0, which trustRoot
// trusts) unless extra gives a _UID.
func ent(sec int, ident, msg string, extra ...field) jentry {
	e := jentry{
		{"__REALTIME_TIMESTAMP", fmt.Sprint(1_700_000_000_000_000 + int64(sec)*1_000_000)},
		{"_HOSTNAME", "mx1"},
		{"MESSAGE", msg},
	}
	if ident != "" {
		e = append(e, field{"SYSLOG_IDENTIFIER", ident})
	}
	if !slices.ContainsFunc(extra, func(f field) bool { return f.name == "_UID" }) {
		e = append(e, field{"_UID", "0"})
	}
	return append(e, extra...)
}

// root trusts the entries ent makes by default.
var root = []string{"_UID=0"}

// writeJournal appends entries to a journal file with systemd-journal-remote
// reading the export format. It writes the fields as given, the trusted
// ones (_UID, _SYSTEMD_UNIT...) included: it is the receiving end of a
// trusted transport and takes them from the stream.
func writeJournal(t *testing.T, path string, entries ...jentry) {
	t.Helper()
	var b bytes.Buffer
	for _, e := range entries {
		for _, f := range e {
			if utf8.ValidString(f.value) && !strings.ContainsAny(f.value, "\n\x00") {
				fmt.Fprintf(&b, "%s=%s\n", f.name, f.value)
				continue
			}
			b.WriteString(f.name + "\n")
			binary.Write(&b, binary.LittleEndian, uint64(len(f.value)))
			b.WriteString(f.value + "\n")
		}
		b.WriteString("\n")
	}
	cmd := exec.Command(journalRemote, "--output="+path, "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, out)
	}
}

// cursors lists the cursors of a journal file's entries, oldest first.
func cursors(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("journalctl", "--file="+path, "-o", "json", "--no-pager").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	var cs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m struct {
			Cursor string `json:"__CURSOR"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, m.Cursor)
	}
	return cs
}

func newTestJournal(t *testing.T, cfg JournalConfig) *Journal {
	cfg.Name = "journal"
	cfg.Logger = testLogger(t)
	return NewJournal(cfg)
}

func TestJournalRead(t *testing.T) {
	needJournal(t)
	long := strings.Repeat("L", 5000) // null without --all
	entries := []jentry{
		ent(0, "start", "first entry: the test resumes after it"),
		ent(1, "postfix/smtpd", "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed", field{"_PID", "123"}),
		ent(2, "dovecot", "auth: pam(bob,192.0.2.2): unknown user"),
		ent(3, "postfix/smtpd", "bad \xff\xfe bytes", field{"_PID", "124"}),
		ent(4, "postfix/smtpd", long, field{"SYSLOG_PID", "125"}),
		ent(5, "", "no ident"),
		ent(6, "postfix/smtpd", "trailing newline\n", field{"_PID", "126"}),
		ent(7, "postfix/smtpd", "warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: forged", field{"_UID", "1000"}, field{"_PID", "127"}),
	}
	tests := []struct {
		name    string
		match   []string
		want    []string
		skipped uint64
	}{
		// Invalid UTF-8 is cleaned, not skipped; the untrusted entry (a
		// user's) is skipped.
		{"all", nil, []string{
			"postfix/smtpd[123]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed",
			"dovecot: auth: pam(bob,192.0.2.2): unknown user",
			"postfix/smtpd[124]: bad \uFFFD bytes",
			"postfix/smtpd[125]: " + long,
			"no ident",
			"postfix/smtpd[126]: trailing newline",
		}, 1},
		// The resume cursor's entry does not pass these matches: journalctl
		// 252's --after-cursor would drop the first matching entry.
		{"one field", []string{"SYSLOG_IDENTIFIER=dovecot"}, []string{
			"dovecot: auth: pam(bob,192.0.2.2): unknown user",
		}, 0},
		{"same field ORed", []string{"SYSLOG_IDENTIFIER=dovecot", "SYSLOG_IDENTIFIER=postfix/smtpd", "_PID=126"}, []string{
			"postfix/smtpd[126]: trailing newline",
		}, 0},
	}
	path := filepath.Join(t.TempDir(), "test.journal")
	writeJournal(t, path, entries...)
	first := cursors(t, path)[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newTestJournal(t, JournalConfig{Files: []string{path}, Match: tc.match, Trust: root, Resume: []byte(first)})
			r := runSource(t, src)
			r.waitLines(len(tc.want))
			waitFor(t, func() bool { return src.Stats().Skipped == tc.skipped }, "skipped count")
			time.Sleep(100 * time.Millisecond) // nothing more may come
			got := r.got()
			if texts := r.texts(); !slices.Equal(texts, tc.want) {
				t.Errorf("got %q\nwant %q", trunc(texts), trunc(tc.want))
			}
			if len(got) > 0 && tc.name == "all" {
				// The fields as journald has them, not re-parsed.
				want := logline.Line{
					Read: time.UnixMicro(1_700_000_000_000_000 + 1_000_000), Host: "mx1", Program: "postfix/smtpd", PID: "123",
					Message: "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed",
					Raw:     "postfix/smtpd[123]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed",
				}
				if l := got[0].Line; !l.Read.Equal(want.Read) || l.Stamp != "" || l.Host != want.Host || l.Program != want.Program || l.PID != want.PID || l.Message != want.Message || l.Raw != want.Raw {
					t.Errorf("line %+v\nwant %+v", l, want)
				}
				if !got[0].Time().Equal(want.Read) || got[0].Source != "journal" {
					t.Errorf("Time() = %v, Source %q", got[0].Time(), got[0].Source)
				}
				if l := got[4].Line; l.Program != "" || l.PID != "" || l.Message != "no ident" {
					t.Errorf("entry without ident: %+v", l)
				}
			}
			if len(got) > 0 {
				if !strings.HasPrefix(string(got[0].Pos), "s=") {
					t.Errorf("Pos = %q, want a cursor", got[0].Pos)
				}
			}
		})
	}
}

func TestJournalFirstSightAndFollow(t *testing.T) {
	needJournal(t)
	tests := []struct {
		name string
		cfg  func(dir, path string) JournalConfig
		// next is where follow-up entries go
		next func(dir, path string) string
	}{
		{"file, appended to", func(dir, path string) JournalConfig {
			return JournalConfig{Files: []string{path}, Trust: root}
		}, func(dir, path string) string { return path }},
		{"directory, same file appended", func(dir, path string) JournalConfig {
			return JournalConfig{Directory: dir, Trust: root}
		}, func(dir, path string) string { return path }},
		{"directory, new file added", func(dir, path string) JournalConfig {
			return JournalConfig{Directory: dir, Trust: root}
		}, func(dir, path string) string { return filepath.Join(dir, "second.journal") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "first.journal")
			writeJournal(t, path, ent(0, "old", "old 0"), ent(1, "old", "old 1"))
			src := newTestJournal(t, tc.cfg(dir, path))
			r := runSource(t, src)
			time.Sleep(300 * time.Millisecond) // let journalctl reach the end
			writeJournal(t, tc.next(dir, path), ent(10, "new", "new 10"), ent(11, "new", "new 11"))
			r.waitLines(2)
			writeJournal(t, tc.next(dir, path), ent(12, "new", "new 12"))
			r.waitLines(3)
			time.Sleep(100 * time.Millisecond)
			want := []string{"new: new 10", "new: new 11", "new: new 12"}
			if got := r.texts(); !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
			if s := src.Stats(); s.Read != 3 || !strings.HasPrefix(s.Position, "cursor s=") {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestJournalResumeNoDuplicates(t *testing.T) {
	needJournal(t)
	path := filepath.Join(t.TempDir(), "test.journal")
	var es []jentry
	for i := range 30 { // more than journalctl's default 10 in follow mode
		es = append(es, ent(i, "postfix/smtpd", fmt.Sprintf("msg %02d", i)))
	}
	writeJournal(t, path, es...)
	first := cursors(t, path)[0]
	r := runSource(t, newTestJournal(t, JournalConfig{Files: []string{path}, Trust: root, Resume: []byte(first)}))
	lines := r.waitLines(29)
	r.stop()
	writeJournal(t, path, ent(40, "postfix/smtpd", "msg 40"), ent(41, "postfix/smtpd", "msg 41"))
	r2 := runSource(t, newTestJournal(t, JournalConfig{Files: []string{path}, Trust: root, Resume: lines[len(lines)-1].Pos}))
	r2.waitLines(2)
	time.Sleep(200 * time.Millisecond)
	want := []string{"postfix/smtpd: msg 40", "postfix/smtpd: msg 41"}
	if got := r2.texts(); !slices.Equal(got, want) {
		t.Errorf("after resume got %q, want %q", got, want)
	}
	if got := r.texts(); len(got) != 29 || got[0] != "postfix/smtpd: msg 01" || got[28] != "postfix/smtpd: msg 29" {
		t.Errorf("first run got %d lines %q...", len(got), got[:min(3, len(got))])
	}
}

// TestJournalRestart runs journalctl under timeout(1), so it exits every
// 300ms; the source must restart it from its cursor, losing and repeating
// nothing.
func TestJournalRestart(t *testing.T) {
	needJournal(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec timeout 0.3 journalctl \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "test.journal")
	writeJournal(t, path, ent(0, "x", "start"))
	src := newTestJournal(t, JournalConfig{Files: []string{path}, Trust: root, Resume: []byte(cursors(t, path)[0]), Command: script, Backoff: 50 * time.Millisecond})
	r := runSource(t, src)
	var want []string
	for i := range 6 {
		writeJournal(t, path, ent(10+i, "x", fmt.Sprintf("m%d", i)))
		want = append(want, fmt.Sprintf("x: m%d", i))
		time.Sleep(200 * time.Millisecond)
	}
	r.waitLines(len(want))
	time.Sleep(500 * time.Millisecond)
	if got := r.texts(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := src.Stats().Restarts; n == 0 {
		t.Errorf("Stats().Restarts = 0 after journalctl exited and was started again")
	}
}

// TestJournalTrust writes a real journal file in which a local user
// (_UID=1000, from a user service or a login session) logs as
// postfix/smtpd, beside entries from Postfix's and Dovecot's units: only
// those the source trusts are passed on, the others are skipped and
// counted, whatever their SYSLOG_IDENTIFIER or sender-set fields say.
func TestJournalTrust(t *testing.T) {
	needJournal(t)
	const fail = "warning: unknown[192.0.2.%d]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
	user := func(sec int, unit string) jentry {
		return ent(sec, "postfix/smtpd", fmt.Sprintf(fail, sec), field{"_UID", "1000"}, field{"_SYSTEMD_UNIT", unit}, field{"_PID", "4242"})
	}
	entries := []jentry{
		ent(0, "start", "first entry: the test resumes after it"),
		user(1, "user@1000.service"),
		user(2, "session-1.scope"),
		ent(3, "postfix/smtpd", fmt.Sprintf(fail, 3), field{"_UID", "107"}, field{"_SYSTEMD_UNIT", "postfix@-.service"}, field{"_PID", "300"}),
		ent(4, "dovecot", "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, rip=192.0.2.4, lip=192.0.2.1", field{"_UID", "0"}, field{"_SYSTEMD_UNIT", "dovecot.service"}),
		// A user can set fields that lack the '_', not those with it.
		ent(5, "postfix/smtpd", fmt.Sprintf(fail, 5), field{"_UID", "1000"}, field{"_SYSTEMD_UNIT", "session-1.scope"}, field{"SYSTEMD_UNIT", "postfix@-.service"}),
	}
	path := filepath.Join(t.TempDir(), "trust.journal")
	writeJournal(t, path, entries...)
	// systemd-journal-remote keeps the trusted fields of the export
	// stream as written: the file holds them for journalctl to match.
	out, err := exec.Command("journalctl", "--file="+path, "-o", "json", "--no-pager", "_SYSTEMD_UNIT=postfix@-.service").Output()
	if err != nil || !strings.Contains(string(out), `"_UID":"107"`) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("journal-remote did not keep _SYSTEMD_UNIT and _UID: %v: %s", err, out)
	}
	units := []string{"_SYSTEMD_UNIT=postfix@-.service", "_SYSTEMD_UNIT=dovecot.service"}
	tests := []struct {
		name    string
		trust   []string
		want    []string
		skipped uint64
	}{
		{"units", units, []string{"postfix/smtpd[300]: " + fmt.Sprintf(fail, 3), "dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, rip=192.0.2.4, lip=192.0.2.1"}, 3},
		{"postfix's uid", []string{"_UID=107"}, []string{"postfix/smtpd[300]: " + fmt.Sprintf(fail, 3)}, 4},
		{"the ident is the sender's", []string{"SYSLOG_IDENTIFIER=postfix/smtpd"}, nil, 5},
		{"a field without '_' is the sender's", []string{"SYSTEMD_UNIT=postfix@-.service"}, nil, 5},
		{"no trust reads nothing", nil, nil, 5},
	}
	first := cursors(t, path)[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newTestJournal(t, JournalConfig{Files: []string{path}, Trust: tc.trust, Resume: []byte(first)})
			r := runSource(t, src)
			waitFor(t, func() bool { return src.Stats().Skipped == tc.skipped }, "%d skipped (have %d)", tc.skipped, func() int { return int(src.Stats().Skipped) })
			r.waitLines(len(tc.want))
			time.Sleep(100 * time.Millisecond) // nothing more may come
			if got := r.texts(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
			for _, l := range r.got() {
				if l.PID == "4242" || strings.Contains(l.Message, "[192.0.2.1]") || strings.Contains(l.Message, "[192.0.2.2]") || strings.Contains(l.Message, "[192.0.2.5]") {
					t.Errorf("a user's entry was passed on: %+v", l.Line)
				}
			}
			if s := src.Stats(); s.Read != uint64(len(tc.want)) || s.Skipped != tc.skipped {
				t.Errorf("stats %+v, want Read %d Skipped %d", s, len(tc.want), tc.skipped)
			}
		})
	}
}

func TestJournalErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  JournalConfig
		want string
	}{
		{"bad match", JournalConfig{Match: []string{"--since=yesterday"}}, "want FIELD=value"},
		{"directory and files", JournalConfig{Directory: "/x", Files: []string{"/y"}}, "exclusive"},
		{"no journalctl", JournalConfig{Command: "/nonexistent/journalctl"}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newTestJournal(t, tc.cfg)
			err := src.Run(t.Context(), func([]Line) {})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want error containing %q", err, tc.want)
			}
		})
	}
}
