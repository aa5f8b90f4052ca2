package source

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"smtpban/internal/logline"
)

const testPoll = 20 * time.Millisecond

func newTestFile(t *testing.T, path string, resume []byte) *File {
	return NewFile(FileConfig{Name: "test", Path: path, Resume: resume, Logger: testLogger(t), Poll: testPoll})
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFileStart(t *testing.T) {
	tests := []struct {
		name    string
		before  string // file content when the source starts ("-" = no file)
		appends []string
		want    []string
	}{
		{"first sight starts at the end", "old 1\nold 2\n", []string{"new 1\nnew 2\n"}, []string{"new 1", "new 2"}},
		{"first sight mid-line keeps the whole line", "old 1\nhalf", []string{" done\nnew 2\n"}, []string{"half done", "new 2"}},
		{"partial line held until its newline", "", []string{"par", "tial\n", "next\n"}, []string{"partial", "next"}},
		{"missing file read from its start when it appears", "-", []string{"first\nsecond\n"}, []string{"first", "second"}},
		{"empty and CRLF lines", "", []string{"a\r\n\nb\n"}, []string{"a", "", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			if tc.before != "-" {
				appendFile(t, path, tc.before)
			}
			src := newTestFile(t, path, nil)
			r := runSource(t, src)
			// Let the source settle on its start position before writing.
			if tc.before != "-" {
				waitOpened(t, src)
			} else {
				time.Sleep(3 * testPoll)
			}
			for _, a := range tc.appends {
				appendFile(t, path, a)
				time.Sleep(2 * testPoll) // a partial line must survive wake-ups
			}
			r.waitLines(len(tc.want))
			time.Sleep(3 * testPoll) // nothing more may come
			if got := r.texts(); !slices.Equal(got, tc.want) {
				t.Errorf("lines = %q, want %q", got, tc.want)
			}
			if s := src.Stats(); s.Read != uint64(len(tc.want)) || s.Skipped != 0 {
				t.Errorf("stats = %+v, want Read %d Skipped 0", s, len(tc.want))
			}
		})
	}
}

// TestFileGarbage checks that an over-long line is skipped and counted,
// and that invalid UTF-8 and NUL bytes are cleaned (U+FFFD), not dropped:
// a client can put one bad byte in a user name, and dropping the line
// would hide the failure it reports.
func TestFileGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	appendFile(t, path, "")
	src := newTestFile(t, path, nil)
	r := runSource(t, src)
	waitOpened(t, src)
	var b bytes.Buffer
	b.WriteString("ok 1\n")
	b.WriteString(strings.Repeat("x", MaxLineBytes+1) + "\n") // too long by one
	b.WriteString(strings.Repeat("y", MaxLineBytes) + "\n")   // exactly the limit: kept
	b.WriteString("bad \xff\xfe utf8\n")
	b.WriteString("nul \x00 byte\n")
	b.WriteString(strings.Repeat("z", 3*MaxLineBytes) + "\n") // spans reads
	b.WriteString("Nov 24 16:04:09 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: x, sasl_username=b\xffob\n")
	b.WriteString("ok 2\n")
	appendFile(t, path, b.String())
	lines := r.waitLines(6)
	got := r.texts()
	want := []string{"ok 1", strings.Repeat("y", MaxLineBytes), "bad \uFFFD utf8", "nul \uFFFD byte",
		"Nov 24 16:04:09 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: x, sasl_username=b\uFFFDob", "ok 2"}
	if !slices.Equal(got, want) {
		t.Errorf("got %d lines %q, want %d %q", len(got), trunc(got), len(want), trunc(want))
	}
	if len(lines) == len(want) {
		if l := lines[4]; l.Program != "postfix/smtpd" || l.Message != "warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: x, sasl_username=b\uFFFDob" {
			t.Errorf("cleaned line decoded as %+v", l.Line)
		}
	}
	waitFor(t, func() bool { return src.Stats().Skipped == 2 }, "2 skipped, have %d", func() int { return int(src.Stats().Skipped) })
	time.Sleep(3 * testPoll) // nothing more may come
	if s := src.Stats(); s.Read != uint64(len(want)) || len(r.got()) != len(want) {
		t.Errorf("Read = %d, %d lines, want %d", s.Read, len(r.got()), len(want))
	}
	// The last line's position is the end of the file.
	fi, _ := os.Stat(path)
	p, err := decodePos(lines[len(lines)-1].Pos)
	if err != nil || p.Offset != fi.Size() {
		t.Errorf("last Pos = %v (%v), want offset %d", p, err, fi.Size())
	}
}

// TestFileDecodes checks that a file source decodes its lines with its
// format (syslog by default) and dates them with the time they were read.
func TestFileDecodes(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		format logline.Format
		line   string
		want   logline.Line // Read and Raw filled in
	}{
		{"syslog (the default)", logline.Syslog, "Nov 24 16:04:04 mx1 postfix/submission/smtpd[12]: warning: x",
			logline.Line{Stamp: "Nov 24 16:04:04", Host: "mx1", Program: "postfix/submission/smtpd", PID: "12", Message: "warning: x"}},
		{"dovecot", logline.Dovecot, "Nov 24 16:04:03 imap-login: Info: Disconnected",
			logline.Line{Stamp: "Nov 24 16:04:03", Program: "dovecot", Message: "imap-login: Info: Disconnected"}},
		{"exim", logline.Exim, "2024-11-24 16:06:07 [42] login authenticator failed",
			logline.Line{Stamp: "2024-11-24 16:06:07", Program: "exim", PID: "42", Message: "login authenticator failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			appendFile(t, path, tc.line+"\n")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// Resumed at the start: no race with first sight.
			start := filePos{Inode: fi.Sys().(*syscall.Stat_t).Ino, FPHash: fingerprint(nil)}.encode()
			src := NewFile(FileConfig{Name: "test", Path: path, Resume: start, Logger: testLogger(t), Poll: testPoll, Format: tc.format, Now: func() time.Time { return read }})
			r := runSource(t, src)
			got := r.waitLines(1)[0]
			want := tc.want
			want.Read, want.Raw = read, tc.line
			if got.Line != want || got.Source != "test" {
				t.Errorf("got %+v from %q\nwant %+v", got.Line, got.Source, want)
			}
		})
	}
}

func trunc(s []string) []string {
	var o []string
	for _, x := range s {
		if len(x) > 20 {
			x = x[:20] + "..."
		}
		o = append(o, x)
	}
	return o
}

func TestFileResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	appendFile(t, path, "before\n")
	r := runSource(t, newTestFile(t, path, nil))
	waitOpened(t, r.src)
	appendFile(t, path, numbered(0, 10))
	lines := r.waitLines(10)
	r.stop()
	// Resume from the 7th line: lines 7..9 come again, then what was
	// appended while stopped.
	resume := lines[6].Pos
	appendFile(t, path, numbered(10, 15))
	r2 := runSource(t, newTestFile(t, path, resume))
	r2.waitLines(8)
	time.Sleep(3 * testPoll)
	want := strings.Split(strings.TrimSuffix(numbered(7, 15), "\n"), "\n")
	if got := r2.texts(); !slices.Equal(got, want) {
		t.Errorf("after resume got %q, want %q", got, want)
	}
	if d := DescribePos(resume); !strings.Contains(d, "offset ") {
		t.Errorf("DescribePos = %q", d)
	}
}

// TestFileResumeAfterRotation stops the source, rotates while it is down and
// checks that the rest of the old file and then all of the new one arrive.
func TestFileResumeAfterRotation(t *testing.T) {
	tests := []struct {
		name   string
		rotate func(t *testing.T, path string)
		want   [2]int // numbered lines expected: [from, to)
	}{
		{"rename and create", func(t *testing.T, path string) {
			appendFile(t, path, numbered(10, 20)) // to the old file while we are down
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, numbered(20, 25))
		}, [2]int{10, 25}},
		{"copytruncate", func(t *testing.T, path string) {
			appendFile(t, path, numbered(10, 20))
			copyFile(t, path, path+".1")
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, numbered(20, 25))
		}, [2]int{10, 25}},
		{"truncated, no copy", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, numbered(20, 60)) // grows past the old offset
		}, [2]int{20, 60}},
		{"rename, then compressed (no delaycompress)", func(t *testing.T, path string) {
			appendFile(t, path, numbered(10, 20))
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			gzipFile(t, path+".1", path+".1.gz", 0)
			appendFile(t, path, numbered(20, 25))
		}, [2]int{10, 25}},
		{"dateext, compressed, beside an older compressed file", func(t *testing.T, path string) {
			appendFile(t, path, numbered(10, 20))
			if err := os.WriteFile(path+".2", []byte(numbered(100, 200)), 0o644); err != nil {
				t.Fatal(err)
			}
			gzipFile(t, path+".2", path+"-20261123.gz", 0)
			if err := os.Rename(path, path+"-20261124"); err != nil {
				t.Fatal(err)
			}
			gzipFile(t, path+"-20261124", path+"-20261124.gz", 0)
			appendFile(t, path, numbered(20, 25))
		}, [2]int{10, 25}},
		{"compressed, but another file", func(t *testing.T, path string) {
			if err := os.WriteFile(path+".1", []byte(numbered(100, 200)), 0o644); err != nil {
				t.Fatal(err)
			}
			gzipFile(t, path+".1", path+".1.gz", 0)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, numbered(20, 25))
		}, [2]int{20, 25}},
		{"rotated away, no rotated file left", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, numbered(20, 25))
		}, [2]int{20, 25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			appendFile(t, path, "")
			r := runSource(t, newTestFile(t, path, nil))
			waitOpened(t, r.src)
			appendFile(t, path, numbered(0, 10))
			lines := r.waitLines(10)
			r.stop()
			tc.rotate(t, path)
			r2 := runSource(t, newTestFile(t, path, lines[9].Pos))
			n := tc.want[1] - tc.want[0]
			r2.waitLines(n)
			time.Sleep(3 * testPoll)
			want := strings.Split(strings.TrimSuffix(numbered(tc.want[0], tc.want[1]), "\n"), "\n")
			if got := r2.texts(); !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// gzipFile compresses from into to as logrotate's compress does, and
// removes from. cut > 0 keeps only the first cut bytes of the result: a
// damaged file.
func gzipFile(t *testing.T, from, to string, cut int) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out := z.Bytes()
	if cut > 0 {
		out = out[:cut]
	}
	if err := os.WriteFile(to, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(from); err != nil {
		t.Fatal(err)
	}
}

// TestFileResumeInCompressed stops the source while it reads a compressed
// rotated file and checks that the next start goes on from there; then
// that a damaged compressed file gives what it holds, no cut line, and
// the new file after it.
func TestFileResumeInCompressed(t *testing.T) {
	path, resume := compressedWhileStopped(t, 2000, 0)
	r2 := runSource(t, newTestFile(t, path, resume))
	got := r2.waitLines(1995)
	r2.stop()
	// As if stopped half-way: resume from a position in the compressed file.
	r3 := runSource(t, newTestFile(t, path, got[999].Pos))
	r3.waitLines(995)
	time.Sleep(3 * testPoll)
	want := strings.Split(strings.TrimSuffix(numbered(1010, 2005), "\n"), "\n")
	if got := r3.texts(); !slices.Equal(got, want) {
		t.Errorf("resumed in the compressed file: got %d lines %q..., want %d from %q", len(got), trunc(got[:min(3, len(got))]), len(want), want[0])
	}

	// Damaged: only the first part of the compressed stream is there.
	path, resume = compressedWhileStopped(t, 5000, 4000)
	r4 := runSource(t, newTestFile(t, path, resume))
	// Until the new file's last line: the damaged file's lines come first.
	waitFor(t, func() bool { ts := r4.texts(); return len(ts) >= 5 && ts[len(ts)-1] == "line 005004" }, "the new file's last line (have %d lines)", func() int { return len(r4.got()) })
	time.Sleep(3 * testPoll)
	texts := r4.texts()
	if len(texts) < 5 || !slices.Equal(texts[len(texts)-5:], strings.Split(strings.TrimSuffix(numbered(5000, 5005), "\n"), "\n")) {
		t.Fatalf("damaged compressed file: the new file's lines did not follow: %q", trunc(texts[max(0, len(texts)-6):]))
	}
	old := texts[:len(texts)-5]
	if want := strings.Split(strings.TrimSuffix(numbered(10, 10+len(old)), "\n"), "\n"); len(old) == 0 || !slices.Equal(old, want) {
		t.Errorf("damaged compressed file gave %d lines, not the file's lines 10.. in order: %q", len(old), trunc(old[max(0, len(old)-2):]))
	}
}

// compressedWhileStopped runs a source over lines 0..9 of a new log and
// stops it; then lines 10..n-1 go to the log, which is rotated to .1 and
// gzip-compressed (cut to cut bytes if cut > 0), and lines n..n+4 go to a
// new log. It returns the log's path and the position after line 9.
func compressedWhileStopped(t *testing.T, n, cut int) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.log")
	appendFile(t, path, "")
	r := runSource(t, newTestFile(t, path, nil))
	waitOpened(t, r.src)
	appendFile(t, path, numbered(0, 10))
	lines := r.waitLines(10)
	r.stop()
	appendFile(t, path, numbered(10, n))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	gzipFile(t, path+".1", path+".1.gz", cut)
	appendFile(t, path, numbered(n, n+5))
	return path, lines[9].Pos
}

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	return b.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDescribePos(t *testing.T) {
	tests := []struct {
		name string
		pos  []byte
		want string
	}{
		{"file", filePos{Inode: 42, Offset: 1234, FPLen: 256, FPHash: 0xabc}.encode(), "inode 42 offset 1234 fingerprint 0000000000000abc/256B"},
		{"cursor", []byte("s=1;i=2"), `"s=1;i=2"`},
		{"empty", nil, `""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DescribePos(tc.pos); got != tc.want {
				t.Errorf("DescribePos = %q, want %q", got, tc.want)
			}
		})
	}
}
