package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// entry is what we take from one `journalctl -o json` line.
type entry struct {
	Cursor string
	Time   time.Time
	Text   string
	// Skip says why the entry is not passed on: "" to pass it on, "empty"
	// for no MESSAGE (not counted), anything else is counted as skipped.
	Skip string
}

// parseEntry decodes one journal entry. journalctl writes a field as a JSON
// string, as null (too large without --all), as an array of byte values (not
// printable UTF-8), or as an array of those when the field repeats.
func parseEntry(b []byte) (entry, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return entry{}, fmt.Errorf("decode journal entry: %w", err)
	}
	var e entry
	cur, _ := fieldBytes(m["__CURSOR"])
	e.Cursor = string(cur)
	if rt, ok := fieldBytes(m["__REALTIME_TIMESTAMP"]); ok {
		us, err := strconv.ParseInt(string(rt), 10, 64)
		if err != nil {
			return e, fmt.Errorf("decode journal entry %s: __REALTIME_TIMESTAMP %q: %w", e.Cursor, rt, err)
		}
		e.Time = time.UnixMicro(us)
	}
	msg, ok := fieldBytes(m["MESSAGE"])
	if !ok {
		e.Skip = "empty"
		return e, nil
	}
	msg = bytes.TrimRight(msg, "\n")
	switch {
	case len(msg) > MaxLineBytes:
		e.Skip = "too long"
		return e, nil
	case bytes.IndexByte(msg, 0) >= 0:
		e.Skip = "binary"
		return e, nil
	case !utf8.Valid(msg):
		e.Skip = "invalid UTF-8"
		return e, nil
	}
	e.Text = syslogText(m, string(msg))
	return e, nil
}

// syslogText renders an entry as a syslog line without its timestamp,
// "HOST IDENT[PID]: MESSAGE", as the jails' patterns expect; missing parts
// are left out.
func syslogText(m map[string]json.RawMessage, msg string) string {
	var sb strings.Builder
	if host := fieldString(m, "_HOSTNAME"); host != "" {
		sb.WriteString(host)
		sb.WriteByte(' ')
	}
	ident := fieldString(m, "SYSLOG_IDENTIFIER")
	if ident == "" {
		ident = fieldString(m, "_COMM")
	}
	pid := fieldString(m, "_PID")
	if pid == "" {
		pid = fieldString(m, "SYSLOG_PID")
	}
	if ident != "" {
		sb.WriteString(ident)
		if pid != "" {
			sb.WriteString("[" + pid + "]")
		}
		sb.WriteString(": ")
	}
	sb.WriteString(msg)
	return sb.String()
}

// fieldString is a field as text, or "" when absent or not clean UTF-8.
func fieldString(m map[string]json.RawMessage, name string) string {
	b, ok := fieldBytes(m[name])
	if !ok || !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return ""
	}
	return string(b)
}

// fieldBytes decodes one field value; the first value of a repeated field.
func fieldBytes(raw json.RawMessage) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	case '[':
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) != nil || len(arr) == 0 {
			return nil, false
		}
		if c := bytes.TrimSpace(arr[0]); len(c) > 0 && (c[0] == '"' || c[0] == '[' || c[0] == 'n') {
			return fieldBytes(arr[0]) // a repeated field
		}
		var nums []int
		if json.Unmarshal(raw, &nums) != nil {
			return nil, false
		}
		b := make([]byte, len(nums))
		for i, n := range nums {
			if n < 0 || n > 255 {
				return nil, false
			}
			b[i] = byte(n)
		}
		return b, true
	}
	return nil, false
}
