package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"smtpban/internal/logline"
)

// entry is what we take from one `journalctl -o json` line.
type entry struct {
	Cursor string
	Time   time.Time // __REALTIME_TIMESTAMP: when journald received it
	Line   logline.Line
	// Skip says why the entry is not passed on: "" to pass it on, "empty"
	// for no MESSAGE (not counted), anything else is counted as skipped.
	Skip string
}

// trust is a journal source's trusted-field matches: an entry is read only
// if one of its fields has one of the values listed for it.
type trust map[string][]string

// parseTrust reads "_FIELD=value" matches (the config checked their form).
func parseTrust(ms []string) trust {
	t := trust{}
	for _, m := range ms {
		if f, v, ok := strings.Cut(m, "="); ok && strings.HasPrefix(f, "_") {
			t[f] = append(t[f], v)
		}
	}
	return t
}

// allows reports whether the entry m was written by a trusted sender. An
// empty trust allows nothing: a source must say whom it trusts.
func (t trust) allows(m map[string]json.RawMessage) bool {
	for f, vs := range t {
		if v, ok := fieldBytes(m[f]); ok && slices.Contains(vs, string(v)) {
			return true
		}
	}
	return false
}

// parseEntry decodes one journal entry into a line, its fields taken as
// they are: the program is SYSLOG_IDENTIFIER and the message MESSAGE,
// never re-parsed out of rebuilt text. journalctl writes a field as a JSON
// string, as null (too large without --all), as an array of byte values
// (not printable UTF-8), or as an array of those when the field repeats.
// An entry from a sender t does not trust is skipped.
func parseEntry(b []byte, t trust) (entry, error) {
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
	if !t.allows(m) {
		e.Skip = "untrusted sender"
		return e, nil
	}
	msg = bytes.TrimRight(msg, "\n")
	if len(msg) > MaxLineBytes {
		e.Skip = "too long"
		return e, nil
	}
	l := logline.Line{
		Host:    fieldString(m, "_HOSTNAME"),
		Program: fieldString(m, "SYSLOG_IDENTIFIER"),
		PID:     fieldString(m, "SYSLOG_PID"),
		Message: logline.CleanBytes(msg),
	}
	if l.PID == "" {
		l.PID = fieldString(m, "_PID")
	}
	l.Raw = l.Message
	if l.Program != "" {
		tag := l.Program
		if l.PID != "" {
			tag += "[" + l.PID + "]"
		}
		l.Raw = tag + ": " + l.Message
	}
	e.Line = l
	return e, nil
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
