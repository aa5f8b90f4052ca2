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
// from ident; extra fields follow.
func ent(sec int, ident, msg string, extra ...field) jentry {
	e := jentry{
		{"__REALTIME_TIMESTAMP", fmt.Sprint(1_700_000_000_000_000 + int64(sec)*1_000_000)},
		{"_HOSTNAME", "mx1"},
		{"MESSAGE", msg},
	}
	if ident != "" {
		e = append(e, field{"SYSLOG_IDENTIFIER", ident})
	}
	return append(e, extra...)
}

// writeJournal appends entries to a journal file with systemd-journal-remote
// reading the export format.
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
	}
	tests := []struct {
		name    string
		match   []string
		want    []string
		skipped uint64
	}{
		{"all", nil, []string{
			"mx1 postfix/smtpd[123]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed",
			"mx1 dovecot: auth: pam(bob,192.0.2.2): unknown user",
			"mx1 postfix/smtpd[125]: " + long,
			"mx1 no ident",
			"mx1 postfix/smtpd[126]: trailing newline",
		}, 1},
		// The resume cursor's entry does not pass these matches: journalctl
		// 252's --after-cursor would drop the first matching entry.
		{"one field", []string{"SYSLOG_IDENTIFIER=dovecot"}, []string{
			"mx1 dovecot: auth: pam(bob,192.0.2.2): unknown user",
		}, 0},
		{"same field ORed", []string{"SYSLOG_IDENTIFIER=dovecot", "SYSLOG_IDENTIFIER=postfix/smtpd", "_PID=126"}, []string{
			"mx1 postfix/smtpd[126]: trailing newline",
		}, 0},
	}
	path := filepath.Join(t.TempDir(), "test.journal")
	writeJournal(t, path, entries...)
	first := cursors(t, path)[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newTestJournal(t, JournalConfig{Files: []string{path}, Match: tc.match, Resume: []byte(first)})
			r := runSource(t, src)
			r.waitLines(len(tc.want))
			waitFor(t, func() bool { return src.Stats().Skipped == tc.skipped }, "skipped count")
			time.Sleep(100 * time.Millisecond) // nothing more may come
			got := r.got()
			if texts := r.texts(); !slices.Equal(texts, tc.want) {
				t.Errorf("got %q\nwant %q", trunc(texts), trunc(tc.want))
			}
			if len(got) > 0 {
				if want := time.UnixMicro(1_700_000_000_000_000 + 1_000_000); tc.name == "all" && !got[0].Time.Equal(want) {
					t.Errorf("Time = %v, want %v", got[0].Time, want)
				}
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
			return JournalConfig{Files: []string{path}}
		}, func(dir, path string) string { return path }},
		{"directory, same file appended", func(dir, path string) JournalConfig {
			return JournalConfig{Directory: dir}
		}, func(dir, path string) string { return path }},
		{"directory, new file added", func(dir, path string) JournalConfig {
			return JournalConfig{Directory: dir}
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
			want := []string{"mx1 new: new 10", "mx1 new: new 11", "mx1 new: new 12"}
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
	r := runSource(t, newTestJournal(t, JournalConfig{Files: []string{path}, Resume: []byte(first)}))
	lines := r.waitLines(29)
	r.stop()
	writeJournal(t, path, ent(40, "postfix/smtpd", "msg 40"), ent(41, "postfix/smtpd", "msg 41"))
	r2 := runSource(t, newTestJournal(t, JournalConfig{Files: []string{path}, Resume: lines[len(lines)-1].Pos}))
	r2.waitLines(2)
	time.Sleep(200 * time.Millisecond)
	want := []string{"mx1 postfix/smtpd: msg 40", "mx1 postfix/smtpd: msg 41"}
	if got := r2.texts(); !slices.Equal(got, want) {
		t.Errorf("after resume got %q, want %q", got, want)
	}
	if got := r.texts(); len(got) != 29 || got[0] != "mx1 postfix/smtpd: msg 01" || got[28] != "mx1 postfix/smtpd: msg 29" {
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
	src := newTestJournal(t, JournalConfig{Files: []string{path}, Resume: []byte(cursors(t, path)[0]), Command: script, Backoff: 50 * time.Millisecond})
	r := runSource(t, src)
	var want []string
	for i := range 6 {
		writeJournal(t, path, ent(10+i, "x", fmt.Sprintf("m%d", i)))
		want = append(want, fmt.Sprintf("mx1 x: m%d", i))
		time.Sleep(200 * time.Millisecond)
	}
	r.waitLines(len(want))
	time.Sleep(500 * time.Millisecond)
	if got := r.texts(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
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
