package source

import (
	"strings"
	"testing"
	"time"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		name string
		json string
		want entry
	}{
		{"full", `{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1700000000123456","_HOSTNAME":"mx1","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"42","MESSAGE":"hello"}`,
			entry{Cursor: "s=1", Time: time.UnixMicro(1700000000123456), Text: "mx1 postfix/smtpd[42]: hello"}},
		{"syslog pid when no _PID", `{"__CURSOR":"c","SYSLOG_IDENTIFIER":"x","SYSLOG_PID":"7","MESSAGE":"m"}`,
			entry{Cursor: "c", Text: "x[7]: m"}},
		{"_COMM when no identifier", `{"__CURSOR":"c","_COMM":"sshd","MESSAGE":"m"}`,
			entry{Cursor: "c", Text: "sshd: m"}},
		{"no host, no ident", `{"__CURSOR":"c","_PID":"1","MESSAGE":"m"}`,
			entry{Cursor: "c", Text: "m"}},
		{"message as bytes, valid UTF-8", `{"__CURSOR":"c","MESSAGE":[104,105,27,91,109]}`,
			entry{Cursor: "c", Text: "hi\x1b[m"}},
		{"message as bytes, invalid UTF-8", `{"__CURSOR":"c","MESSAGE":[104,255]}`,
			entry{Cursor: "c", Skip: "invalid UTF-8"}},
		{"message with NUL", `{"__CURSOR":"c","MESSAGE":[104,0,105]}`,
			entry{Cursor: "c", Skip: "binary"}},
		{"message null", `{"__CURSOR":"c","MESSAGE":null}`,
			entry{Cursor: "c", Skip: "empty"}},
		{"message missing", `{"__CURSOR":"c"}`,
			entry{Cursor: "c", Skip: "empty"}},
		{"repeated field takes the first", `{"__CURSOR":"c","MESSAGE":["one","two"]}`,
			entry{Cursor: "c", Text: "one"}},
		{"repeated binary field", `{"__CURSOR":"c","MESSAGE":[[111,107],"two"]}`,
			entry{Cursor: "c", Text: "ok"}},
		{"hostname not UTF-8 left out", `{"__CURSOR":"c","_HOSTNAME":[255],"MESSAGE":"m"}`,
			entry{Cursor: "c", Text: "m"}},
		{"too long", `{"__CURSOR":"c","MESSAGE":"` + strings.Repeat("a", MaxLineBytes+1) + `"}`,
			entry{Cursor: "c", Skip: "too long"}},
		{"trailing newlines trimmed", `{"__CURSOR":"c","MESSAGE":"m\n\n"}`,
			entry{Cursor: "c", Text: "m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEntry([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if got.Cursor != tc.want.Cursor || !got.Time.Equal(tc.want.Time) || got.Text != tc.want.Text || got.Skip != tc.want.Skip {
				t.Errorf("parseEntry = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseEntryErrors(t *testing.T) {
	tests := []struct{ name, json string }{
		{"not json", `{"MESSAGE":`},
		{"bad timestamp", `{"__REALTIME_TIMESTAMP":"soon","MESSAGE":"m"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseEntry([]byte(tc.json)); err == nil {
				t.Error("no error")
			}
		})
	}
}
