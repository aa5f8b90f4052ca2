package logline

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

func TestDecode(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		format Format
		raw    string
		want   Line // Read and Raw are filled in
	}{
		// Syslog, traditional stamps.
		{"syslog with pid", Syslog, "Nov 24 16:04:04 mx1 postfix/smtpd[1234]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed",
			Line{Stamp: "Nov 24 16:04:04", Host: "mx1", Program: "postfix/smtpd", PID: "1234", Message: "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed"}},
		{"syslog without pid", Syslog, "Nov 24 16:05:01 mx1 dovecot: imap-login: Login: user=<bob>",
			Line{Stamp: "Nov 24 16:05:01", Host: "mx1", Program: "dovecot", Message: "imap-login: Login: user=<bob>"}},
		{"syslog padded day", Syslog, "Nov  4 06:04:04 mx1 sm-mta[2345]: x",
			Line{Stamp: "Nov  4 06:04:04", Host: "mx1", Program: "sm-mta", PID: "2345", Message: "x"}},
		{"postfix submission ident", Syslog, "Nov 24 16:04:09 mx1 postfix/submission/smtpd[12401]: warning: a[192.0.2.1]: x",
			Line{Stamp: "Nov 24 16:04:09", Host: "mx1", Program: "postfix/submission/smtpd", PID: "12401", Message: "warning: a[192.0.2.1]: x"}},
		{"postfix instance ident", Syslog, "Nov 24 16:04:09 mx1 postfix-out/smtps/smtpd[7]: m",
			Line{Stamp: "Nov 24 16:04:09", Host: "mx1", Program: "postfix-out/smtps/smtpd", PID: "7", Message: "m"}},
		// Syslog, RFC 3339 stamps (rsyslog's high precision format).
		{"rfc3339 with pid", Syslog, "2024-11-24T16:06:12.123456+01:00 mx2 exim[3333]: 2024-11-24 16:06:12 +0100 login authenticator failed",
			Line{Stamp: "2024-11-24T16:06:12.123456+01:00", Host: "mx2", Program: "exim", PID: "3333", Message: "2024-11-24 16:06:12 +0100 login authenticator failed"}},
		{"rfc3339 utc without pid", Syslog, "2024-11-24T16:04:04Z mx1 postfix/submission/smtpd: m",
			Line{Stamp: "2024-11-24T16:04:04Z", Host: "mx1", Program: "postfix/submission/smtpd", Message: "m"}},
		// Syslog, odd shapes.
		{"no tag", Syslog, "Nov 24 16:04:04 mx1 last message repeated 3 times",
			Line{Stamp: "Nov 24 16:04:04", Message: "mx1 last message repeated 3 times"}},
		{"no stamp: host and tag", Syslog, "mx1 postfix/smtpd[1]: m",
			Line{Host: "mx1", Program: "postfix/smtpd", PID: "1", Message: "m"}},
		{"no stamp, no tag", Syslog, "hello world",
			Line{Message: "hello world"}},
		{"one word", Syslog, "hello", Line{Message: "hello"}},
		{"only a stamp", Syslog, "Nov 24 16:04:04", Line{Stamp: "Nov 24 16:04:04"}},
		{"empty", Syslog, "", Line{}},
		{"stamp glued to text", Syslog, "Nov 24 16:04:04x mx1 a: b",
			Line{Message: "Nov 24 16:04:04x mx1 a: b"}},
		{"pid not digits", Syslog, "Nov 24 16:04:04 mx1 postfix/smtpd[12a]: m",
			Line{Stamp: "Nov 24 16:04:04", Message: "mx1 postfix/smtpd[12a]: m"}},
		{"pid without colon", Syslog, "Nov 24 16:04:04 mx1 postfix/smtpd[12] m",
			Line{Stamp: "Nov 24 16:04:04", Message: "mx1 postfix/smtpd[12] m"}},
		{"pid of 10 digits", Syslog, "Nov 24 16:04:04 mx1 p[1234567890]: m",
			Line{Stamp: "Nov 24 16:04:04", Host: "mx1", Program: "p", PID: "1234567890", Message: "m"}},
		{"pid of 11 digits", Syslog, "Nov 24 16:04:04 mx1 p[12345678901]: m",
			Line{Stamp: "Nov 24 16:04:04", Message: "mx1 p[12345678901]: m"}},
		{"empty message", Syslog, "Nov 24 16:04:04 mx1 postfix/smtpd[1]:",
			Line{Stamp: "Nov 24 16:04:04", Host: "mx1", Program: "postfix/smtpd", PID: "1"}},
		{"no space after the tag", Syslog, "Nov 24 16:04:04 mx1 prog:msg",
			Line{Stamp: "Nov 24 16:04:04", Host: "mx1", Program: "prog", Message: "msg"}},
		{"a tag in the message stays in it", Syslog, "Nov 24 16:04:04 mx1 postfix/smtpd[1]: connect from x: dovecot[2]: y",
			Line{Stamp: "Nov 24 16:04:04", Host: "mx1", Program: "postfix/smtpd", PID: "1", Message: "connect from x: dovecot[2]: y"}},
		// Dovecot's log_path.
		{"dovecot login", Dovecot, "Nov 24 16:04:03 imap-login: Info: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, rip=192.0.2.1",
			Line{Stamp: "Nov 24 16:04:03", Program: "dovecot", Message: "imap-login: Info: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, rip=192.0.2.1"}},
		{"dovecot auth", Dovecot, "Nov 24 16:04:03 auth: Info: passwd-file(alice,10.77.0.2): Password mismatch",
			Line{Stamp: "Nov 24 16:04:03", Program: "dovecot", Message: "auth: Info: passwd-file(alice,10.77.0.2): Password mismatch"}},
		{"dovecot without stamp", Dovecot, "imap-login: x", Line{Program: "dovecot", Message: "imap-login: x"}},
		// Exim's main log.
		{"exim with pid", Exim, "2024-11-24 16:06:07 [1234] H=(x) [192.0.2.1]:25 F=<a@b> rejected RCPT <c@d>: relay not permitted",
			Line{Stamp: "2024-11-24 16:06:07", Program: "exim", PID: "1234", Message: "H=(x) [192.0.2.1]:25 F=<a@b> rejected RCPT <c@d>: relay not permitted"}},
		{"exim fraction and zone", Exim, "2024-11-24 16:06:07.123 +0100 login authenticator failed for (x) [192.0.2.1]",
			Line{Stamp: "2024-11-24 16:06:07.123", Program: "exim", Message: "login authenticator failed for (x) [192.0.2.1]"}},
		{"exim zone and pid", Exim, "2024-11-24 16:06:07 -0500 [99] Start queue run",
			Line{Stamp: "2024-11-24 16:06:07", Program: "exim", PID: "99", Message: "Start queue run"}},
		{"exim plain", Exim, "2024-11-24 16:06:02 1tF3aB-000Abc-12 Completed",
			Line{Stamp: "2024-11-24 16:06:02", Program: "exim", Message: "1tF3aB-000Abc-12 Completed"}},
		{"exim without stamp keeps a zone-like start", Exim, "+0100 x",
			Line{Program: "exim", Message: "+0100 x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			want.Read, want.Raw = read, tt.raw
			if got := Decode(tt.format, tt.raw, read); got != want {
				t.Errorf("Decode(%v, %q)\n got %+v\nwant %+v", tt.format, tt.raw, got, want)
			}
		})
	}
}

func TestLineTime(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, berlin)
	tests := []struct {
		name   string
		format Format
		raw    string
		want   time.Time
	}{
		{"syslog stamp", Syslog, "Nov 24 16:04:04 mx1 a: m", time.Date(2024, 11, 24, 16, 4, 4, 0, berlin)},
		{"rfc3339 stamp", Syslog, "2024-11-24T16:04:04.5Z mx1 a: m", time.Date(2024, 11, 24, 16, 4, 4, 500000000, time.UTC)},
		{"exim stamp in read's zone", Exim, "2024-11-24 16:06:07 m", time.Date(2024, 11, 24, 16, 6, 7, 0, berlin)},
		{"dovecot stamp", Dovecot, "Nov 24 16:04:03 auth: m", time.Date(2024, 11, 24, 16, 4, 3, 0, berlin)},
		{"no stamp", Syslog, "mx1 a: m", read},
		{"unparsable stamp", Syslog, "2024-13-45T16:04:04Z mx1 a: m", read},
		{"an ISO stamp of 2099 is read", Syslog, "2099-01-01T00:00:00Z mx1 a: m", read},
		{"an Exim stamp of 2099 is read", Exim, "2099-01-01 00:00:00 m", read},
		{"a syslog stamp hours ahead is read", Syslog, "Nov 25 20:00:00 mx1 a: m", read},
		{"a stamp at read is kept", Syslog, "Nov 25 09:00:00 mx1 a: m", read},
		{"a second before read", Syslog, "Nov 25 08:59:59 mx1 a: m", read.Add(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := Decode(tt.format, tt.raw, read)
			got := l.Time()
			if !got.Equal(tt.want) {
				t.Errorf("Time() = %v, want %v", got, tt.want)
			}
			if got.After(l.Read) {
				t.Errorf("Time() %v after Read %v", got, l.Read)
			}
		})
	}
	// A line made by hand, without a stamp: its Read.
	if l := (Line{Read: read, Message: "m"}); !l.Time().Equal(read) {
		t.Errorf("no stamp: Time() = %v, want %v", l.Time(), read)
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{"caf\u00e9 \u2713 \U0001F600", "caf\u00e9 \u2713 \U0001F600"},
		{"user=<b\xffob>", "user=<b\uFFFDob>"},
		{"a\xff\xfeb", "a\uFFFDb"}, // a run of invalid bytes is one U+FFFD
		{"a\x00b", "a\uFFFDb"},
		{"\x00\x00", "\uFFFD\uFFFD"},
		{"\xff\x00\xff", "\uFFFD\uFFFD\uFFFD"},
		{"truncated \xc3", "truncated \uFFFD"},
		{"surrogate \xed\xa0\x80", "surrogate \uFFFD"},
		{"overlong \xc0\xaf", "overlong \uFFFD"},
		{"kept \uFFFD", "kept \uFFFD"},
	}
	for _, tt := range tests {
		got := Clean(tt.in)
		if got != tt.want {
			t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Errorf("Clean(%q) = %q: not clean", tt.in, got)
		}
		if got == tt.in && len(got) > 0 && unsafe.StringData(got) != unsafe.StringData(tt.in) {
			t.Errorf("Clean(%q) copied clean text", tt.in)
		}
		buf := []byte(tt.in)
		gotBytes := CleanBytes(buf)
		if gotBytes != tt.want {
			t.Errorf("CleanBytes(%q) = %q, want %q", tt.in, gotBytes, tt.want)
		}
		for i := range buf {
			buf[i] = 'x' // a reused read buffer
		}
		if gotBytes != tt.want {
			t.Errorf("CleanBytes(%q) shares the buffer: %q after it changed", tt.in, gotBytes)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Clean("plain text") }); n != 0 {
		t.Errorf("Clean of clean text: %v allocs", n)
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range []Format{Syslog, Dovecot, Exim} {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	if f, err := ParseFormat(""); err != nil || f != Syslog {
		t.Errorf(`ParseFormat("") = %v, %v; want syslog`, f, err)
	}
	for _, s := range []string{"Syslog", "json", "journal"} {
		if _, err := ParseFormat(s); err == nil || !strings.Contains(err.Error(), Formats) {
			t.Errorf("ParseFormat(%q): error %v, want one naming %s", s, err, Formats)
		}
	}
}

// FuzzDecode checks that Decode never panics, whatever the bytes, and that
// its fields are cut from the line where a jail expects them: Message is
// the line's end, Stamp its start, and a syslog program holds no space,
// '[' or ':'. Time never passes Read.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"Nov 24 16:04:04 mx1 postfix/smtpd[1234]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed",
		"2024-11-24T16:06:12.123456+01:00 mx2 exim[3333]: 2024-11-24 16:06:12 +0100 login",
		"Nov 24 16:04:03 imap-login: Info: Disconnected",
		"2024-11-24 16:06:07.123 +0100 [12] login authenticator failed",
		"2024-11-24 16:06:07.",
		"Nov 24 16:04:04",
		"Nov  4 16:04:04  mx1  p[]: x",
		"x[1]:",
		"a[1",
		"[1] [2] +0100",
		"2099-01-01T00:00:00Z mx1 a: m",
		"\xff\x00 b[1]: \xfe",
		"",
	} {
		f.Add(s)
	}
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, in := range []string{raw, Clean(raw)} {
			for _, format := range []Format{Syslog, Dovecot, Exim} {
				l := Decode(format, in, read)
				if l.Raw != in || !l.Read.Equal(read) {
					t.Fatalf("%v %q: Raw %q Read %v", format, in, l.Raw, l.Read)
				}
				if !strings.HasSuffix(l.Raw, l.Message) {
					t.Fatalf("%v %q: Message %q is not a suffix of Raw", format, in, l.Message)
				}
				if !strings.HasPrefix(l.Raw, l.Stamp) {
					t.Fatalf("%v %q: Stamp %q is not a prefix of Raw", format, in, l.Stamp)
				}
				if strings.Trim(l.PID, "0123456789") != "" {
					t.Fatalf("%v %q: PID %q", format, in, l.PID)
				}
				switch format {
				case Syslog:
					if strings.ContainsAny(l.Program, " [:") || strings.ContainsAny(l.Host, " ") {
						t.Fatalf("%q: Program %q Host %q", in, l.Program, l.Host)
					}
					if l.Program == "" && (l.Host != "" || l.PID != "") {
						t.Fatalf("%q: no program, but Host %q PID %q", in, l.Host, l.PID)
					}
				case Dovecot:
					if l.Program != "dovecot" {
						t.Fatalf("%q: Program %q", in, l.Program)
					}
				case Exim:
					if l.Program != "exim" {
						t.Fatalf("%q: Program %q", in, l.Program)
					}
				}
				if tm := l.Time(); tm.After(read) {
					t.Fatalf("%v %q: Time %v after Read", format, in, tm)
				}
			}
		}
	})
}

// BenchmarkDecode decodes a syslog line, beside strings.Cut on ": " (the
// least a decoder can do) as the baseline in the same run.
func BenchmarkDecode(b *testing.B) {
	const line = "Nov 24 16:04:04 mx1 postfix/smtpd[1234]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	b.Run("Decode", func(b *testing.B) {
		for b.Loop() {
			if l := Decode(Syslog, line, read); l.Program != "postfix/smtpd" {
				b.Fatal(l.Program)
			}
		}
	})
	b.Run("baseline-Cut", func(b *testing.B) {
		for b.Loop() {
			if _, msg, ok := strings.Cut(line, ": "); !ok || msg == "" {
				b.Fatal("no cut")
			}
		}
	})
}
