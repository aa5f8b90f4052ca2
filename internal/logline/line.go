// Package logline turns what a log source read into fields before any jail
// sees it: time, host, program, pid and message. The program comes from the
// layout's fixed position (a syslog tag, the journal's SYSLOG_IDENTIFIER)
// and the message is everything after it, so that a jail bound to a program
// and anchored at the message's start never looks at text a client wrote
// as if the server had written it. The daemon's sources and `smtpban
// replay` decode with the same functions.
package logline

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Line is one decoded log line.
type Line struct {
	// Stamp is the line's own timestamp as written ("" if none, as for
	// the journal, whose time is Read): parsed only when a jail hits.
	Stamp string
	// Read is when the line was read (the journal: when journald got it,
	// never later than read). It is the reference that dates a syslog
	// stamp, and the latest time a line may claim.
	Read    time.Time
	Host    string
	Program string // syslog ident or SYSLOG_IDENTIFIER: "postfix/submission/smtpd", "dovecot", "exim"
	PID     string
	Message string // what the program wrote; jails' patterns are anchored at its start
	Raw     string // the whole line as read, for ban records and reports
}

// Time is when the line says it was written, taken as Read when it has no
// stamp or one after Read: a line cannot come from the future, and an
// ISO stamp of 2099 would otherwise start a ban that ends in 2099.
func (l *Line) Time() time.Time {
	if l.Stamp == "" {
		return l.Read
	}
	t := StampTime(l.Stamp, l.Read)
	if t.After(l.Read) {
		return l.Read
	}
	return t
}

// Format is a text log's layout.
type Format uint8

const (
	// Syslog is "STAMP HOST IDENT[PID]: MESSAGE" (rsyslog's traditional
	// and RFC 3339 stamps, Postfix's maillog_file).
	Syslog Format = iota
	// Dovecot is Dovecot's own log_path layout, "STAMP imap-login: Info:
	// MESSAGE": no host and no ident, so every line's program is
	// "dovecot", as its lines are named in syslog.
	Dovecot
	// Exim is Exim's main log, "YYYY-MM-DD HH:MM:SS[.fff] [+zone] [[PID]]
	// MESSAGE": program "exim".
	Exim
)

// Formats lists the names ParseFormat takes, for messages.
const Formats = `"syslog", "dovecot" or "exim"`

// ParseFormat reads a format's name.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "syslog":
		return Syslog, nil
	case "dovecot":
		return Dovecot, nil
	case "exim":
		return Exim, nil
	}
	return 0, fmt.Errorf("format %q: expected %s", s, Formats)
}

func (f Format) String() string {
	switch f {
	case Dovecot:
		return "dovecot"
	case Exim:
		return "exim"
	}
	return "syslog"
}

// Decode splits one line of a text log. It never fails: a line that does
// not fit the layout keeps its text as Message with no Program, so no jail
// reads it. raw must be clean text (see Clean).
func Decode(f Format, raw string, read time.Time) Line {
	l := Line{Read: read, Raw: raw}
	switch f {
	case Dovecot:
		n := stampLen(raw)
		l.Stamp = raw[:n]
		l.Program = "dovecot"
		l.Message = raw[skipSpace(raw, n):]
	case Exim:
		n := stampLen(raw)
		l.Stamp = raw[:n]
		rest := raw[skipSpace(raw, n):]
		if n > 0 {
			rest = skipZone(rest)
		}
		if pid, after, ok := bracketPID(rest); ok {
			l.PID, rest = pid, after
		}
		l.Program = "exim"
		l.Message = rest
	default:
		decodeSyslog(&l, raw)
	}
	return l
}

// decodeSyslog fills l from "STAMP HOST TAG: MESSAGE", where TAG is
// IDENT or IDENT[PID]. A line without a stamp is taken as "HOST TAG:
// MESSAGE" (a journal exported as text, without dates).
func decodeSyslog(l *Line, raw string) {
	n := stampLen(raw)
	l.Stamp = raw[:n]
	rest := raw[skipSpace(raw, n):]
	sp := strings.IndexByte(rest, ' ')
	if sp <= 0 {
		l.Message = rest
		return
	}
	host, tagged := rest[:sp], rest[sp+1:]
	ident, pid, msg, ok := splitTag(tagged)
	if !ok {
		l.Message = rest
		return
	}
	l.Host, l.Program, l.PID, l.Message = host, ident, pid, msg
}

// splitTag splits "IDENT[PID]: MESSAGE" or "IDENT: MESSAGE". IDENT holds
// no space, '[' or ':' (Postfix's "postfix/submission/smtpd" is one).
func splitTag(s string) (ident, pid, msg string, ok bool) {
	i := 0
	for i < len(s) && s[i] != ' ' && s[i] != '[' && s[i] != ':' {
		i++
	}
	if i == 0 || i == len(s) || s[i] == ' ' {
		return "", "", "", false
	}
	ident = s[:i]
	if s[i] == '[' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == i+1 || j-i > 11 || j+1 >= len(s) || s[j] != ']' || s[j+1] != ':' {
			return "", "", "", false
		}
		pid, i = s[i+1:j], j+1
	}
	msg = s[i+1:]
	if msg != "" && msg[0] == ' ' {
		msg = msg[1:]
	}
	return ident, pid, msg, true
}

// bracketPID reads "[digits]" at the start of s, and the one space after.
func bracketPID(s string) (pid, rest string, ok bool) {
	if len(s) < 3 || s[0] != '[' {
		return "", s, false
	}
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 1 || i == len(s) || s[i] != ']' || i > 11 {
		return "", s, false
	}
	pid, rest = s[1:i], s[i+1:]
	if rest != "" && rest[0] == ' ' {
		rest = rest[1:]
	}
	return pid, rest, true
}

// skipZone skips Exim's "+0100 " after its stamp (log_timezone).
func skipZone(s string) string {
	if len(s) >= 6 && (s[0] == '+' || s[0] == '-') && s[5] == ' ' {
		for i := 1; i < 5; i++ {
			if s[i] < '0' || s[i] > '9' {
				return s
			}
		}
		return s[6:]
	}
	return s
}

func skipSpace(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// stampLen is the length of the timestamp s starts with, 0 if none:
// syslog's "Nov 24 16:04:04", RFC 3339 up to the first space, or
// "2024-11-24 16:04:04[.fff]".
func stampLen(s string) int {
	if len(s) >= 15 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' && s[12] == ':' && isMonth(s[:3]) &&
		(len(s) == 15 || s[15] == ' ') {
		return 15
	}
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' || !isDigit(s[0]) {
		return 0
	}
	switch s[10] {
	case 'T', 't':
		if i := strings.IndexByte(s, ' '); i >= 0 {
			return i
		}
		return len(s)
	case ' ':
		n := 19
		if n < len(s) && s[n] == '.' {
			n++
			for n < len(s) && isDigit(s[n]) {
				n++
			}
		}
		return n
	}
	return 0
}

func isMonth(s string) bool {
	i := strings.Index(months, s)
	return i >= 0 && i%3 == 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Clean makes text safe to match without dropping it: invalid UTF-8 and
// NUL bytes become U+FFFD. A client can put one bad byte into a user name;
// dropping the line for it would hide every failure it reports.
func Clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// CleanBytes is Clean for a line read into a buffer: it returns a string
// that owns its memory.
func CleanBytes(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	return Clean(string(b))
}
