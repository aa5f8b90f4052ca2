package replay

import (
	"encoding/json"
	"strconv"
	"time"
)

// appendMatch appends m as json.Encoder writes it: the fields in order,
// omitempty, HTML-safe string escaping, a newline. Replay writes one per
// match, and encoding/json's reflection cost more than matching the
// lines; strings that need any escaping still go through json.Marshal.
func appendMatch(b []byte, m match) []byte {
	b = append(b, '{')
	if m.Event != "" {
		b = append(b, `"event":`...)
		b = appendString(b, m.Event)
		b = append(b, ',')
	}
	b = append(b, `"file":`...)
	b = appendString(b, m.File)
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, int64(m.Line), 10)
	b = append(b, `,"jail":`...)
	b = appendString(b, m.Jail)
	b = append(b, `,"ip":`...)
	b = appendString(b, m.IP)
	if m.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, m.User)
	}
	b = append(b, `,"time":"`...)
	b = m.Time.AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}

// appendString appends s as a JSON string, exactly as encoding/json
// writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
