package source

import (
	"strings"
	"testing"
	"time"

	"smtpban/internal/logline"
)

// trustRoot trusts entries with _UID=0, which the tests' entries carry.
var trustRoot = parseTrust([]string{"_UID=0"})

func TestParseEntry(t *testing.T) {
	tests := []struct {
		name string
		json string
		want entry // Line.Raw "" with Skip "": Raw is Message
	}{
		{"full", `{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1700000000123456","_UID":"0","_HOSTNAME":"mx1","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"42","MESSAGE":"hello"}`,
			entry{Cursor: "s=1", Time: time.UnixMicro(1700000000123456), Line: logline.Line{Host: "mx1", Program: "postfix/smtpd", PID: "42", Message: "hello", Raw: "postfix/smtpd[42]: hello"}}},
		{"syslog pid when no _PID", `{"__CURSOR":"c","_UID":"0","SYSLOG_IDENTIFIER":"x","SYSLOG_PID":"7","MESSAGE":"m"}`,
			entry{Cursor: "c", Line: logline.Line{Program: "x", PID: "7", Message: "m", Raw: "x[7]: m"}}},
		{"syslog pid before _PID", `{"__CURSOR":"c","_UID":"0","SYSLOG_IDENTIFIER":"x","SYSLOG_PID":"7","_PID":"8","MESSAGE":"m"}`,
			entry{Cursor: "c", Line: logline.Line{Program: "x", PID: "7", Message: "m", Raw: "x[7]: m"}}},
		{"_COMM is not the program", `{"__CURSOR":"c","_UID":"0","_COMM":"sshd","MESSAGE":"m"}`,
			entry{Cursor: "c", Line: logline.Line{Message: "m"}}},
		{"no host, no ident", `{"__CURSOR":"c","_UID":"0","_PID":"1","MESSAGE":"m"}`,
			entry{Cursor: "c", Line: logline.Line{PID: "1", Message: "m"}}},
		{"message is not re-parsed", `{"__CURSOR":"c","_UID":"0","SYSLOG_IDENTIFIER":"logger","MESSAGE":"mx1 postfix/smtpd[1]: warning: x"}`,
			entry{Cursor: "c", Line: logline.Line{Program: "logger", Message: "mx1 postfix/smtpd[1]: warning: x", Raw: "logger: mx1 postfix/smtpd[1]: warning: x"}}},
		{"message as bytes, valid UTF-8", `{"__CURSOR":"c","_UID":"0","MESSAGE":[104,105,27,91,109]}`,
			entry{Cursor: "c", Line: logline.Line{Message: "hi\x1b[m"}}},
		{"message as bytes, invalid UTF-8 cleaned", `{"__CURSOR":"c","_UID":"0","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":[104,255]}`,
			entry{Cursor: "c", Line: logline.Line{Program: "dovecot", Message: "h\uFFFD", Raw: "dovecot: h\uFFFD"}}},
		{"message with NUL cleaned", `{"__CURSOR":"c","_UID":"0","MESSAGE":[104,0,105]}`,
			entry{Cursor: "c", Line: logline.Line{Message: "h\uFFFDi"}}},
		{"message null", `{"__CURSOR":"c","_UID":"0","MESSAGE":null}`,
			entry{Cursor: "c", Skip: "empty"}},
		{"message missing", `{"__CURSOR":"c","_UID":"0"}`,
			entry{Cursor: "c", Skip: "empty"}},
		{"repeated field takes the first", `{"__CURSOR":"c","_UID":"0","MESSAGE":["one","two"]}`,
			entry{Cursor: "c", Line: logline.Line{Message: "one"}}},
		{"repeated binary field", `{"__CURSOR":"c","_UID":"0","MESSAGE":[[111,107],"two"]}`,
			entry{Cursor: "c", Line: logline.Line{Message: "ok"}}},
		{"hostname not UTF-8 left out", `{"__CURSOR":"c","_UID":"0","_HOSTNAME":[255],"MESSAGE":"m"}`,
			entry{Cursor: "c", Line: logline.Line{Message: "m"}}},
		{"too long", `{"__CURSOR":"c","_UID":"0","MESSAGE":"` + strings.Repeat("a", MaxLineBytes+1) + `"}`,
			entry{Cursor: "c", Skip: "too long"}},
		{"trailing newlines trimmed", `{"__CURSOR":"c","_UID":"0","MESSAGE":"m\n\n"}`,
			entry{Cursor: "c", Line: logline.Line{Message: "m"}}},
		{"untrusted", `{"__CURSOR":"c","_UID":"1000","SYSLOG_IDENTIFIER":"postfix/smtpd","MESSAGE":"m"}`,
			entry{Cursor: "c", Skip: "untrusted sender"}},
		{"no trusted field", `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtpd","MESSAGE":"m"}`,
			entry{Cursor: "c", Skip: "untrusted sender"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEntry([]byte(tc.json), trustRoot)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want.Skip == "" && want.Line.Raw == "" {
				want.Line.Raw = want.Line.Message
			}
			if got.Cursor != want.Cursor || !got.Time.Equal(want.Time) || got.Line != want.Line || got.Skip != want.Skip {
				t.Errorf("parseEntry =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// TestParseEntryTrust checks whom a journal source believes: only an entry
// with a trusted field (set by journald from the sender's credentials, not
// by the sender) of a listed value is read. SYSLOG_IDENTIFIER and the other
// fields without '_' are the sender's to choose, so naming one in trust
// trusts nobody, and an empty trust reads nothing.
func TestParseEntryTrust(t *testing.T) {
	const (
		forgedUser = `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtpd","_UID":"1000","_SYSTEMD_UNIT":"user@1000.service","MESSAGE":"m"}`
		forgedTerm = `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtpd","_UID":"1000","_SYSTEMD_UNIT":"session-1.scope","MESSAGE":"m"}`
		forgedUnit = `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtpd","_UID":"1000","SYSTEMD_UNIT":"postfix@-.service","MESSAGE":"m"}`
		postfix    = `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtpd","_UID":"107","_SYSTEMD_UNIT":"postfix@-.service","MESSAGE":"m"}`
		dovecot    = `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"dovecot","_UID":"0","_SYSTEMD_UNIT":"dovecot.service","MESSAGE":"m"}`
		repeated   = `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtpd","_UID":["1000","107"],"MESSAGE":"m"}`
	)
	units := []string{"_SYSTEMD_UNIT=postfix@-.service", "_SYSTEMD_UNIT=dovecot.service"}
	tests := []struct {
		name  string
		trust []string
		entry string
		want  bool
	}{
		{"unit: postfix", units, postfix, true},
		{"unit: dovecot", units, dovecot, true},
		{"unit: a user's service", units, forgedUser, false},
		{"unit: a user's session", units, forgedTerm, false},
		{"unit: a field without '_' is the sender's", units, forgedUnit, false},
		{"uid: postfix", []string{"_UID=107"}, postfix, true},
		{"uid: a user", []string{"_UID=107"}, forgedUser, false},
		{"uid: dovecot's root", []string{"_UID=107"}, dovecot, false},
		{"uid or unit", []string{"_UID=107", "_SYSTEMD_UNIT=dovecot.service"}, dovecot, true},
		{"a repeated field is read by its first value", []string{"_UID=107"}, repeated, false},
		{"empty trust", nil, postfix, false},
		{"SYSLOG_IDENTIFIER is not trusted", []string{"SYSLOG_IDENTIFIER=postfix/smtpd"}, postfix, false},
		{"SYSTEMD_UNIT is not trusted", []string{"SYSTEMD_UNIT=postfix@-.service"}, forgedUnit, false},
		{"no value", []string{"_UID"}, postfix, false},
		{"values are whole", []string{"_SYSTEMD_UNIT=postfix"}, postfix, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseEntry([]byte(tc.entry), parseTrust(tc.trust))
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Skip == ""; got != tc.want {
				t.Errorf("read %v (skip %q), want %v", got, e.Skip, tc.want)
			}
			if !tc.want && e.Skip != "untrusted sender" {
				t.Errorf("skip %q, want untrusted sender", e.Skip)
			}
		})
	}
}

func TestParseEntryErrors(t *testing.T) {
	tests := []struct{ name, json string }{
		{"not json", `{"MESSAGE":`},
		{"bad timestamp", `{"__REALTIME_TIMESTAMP":"soon","_UID":"0","MESSAGE":"m"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseEntry([]byte(tc.json), trustRoot); err == nil {
				t.Error("no error")
			}
		})
	}
}
