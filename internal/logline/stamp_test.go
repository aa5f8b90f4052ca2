package logline

import (
	"testing"
	"time"
)

func TestStampTime(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, berlin)
	newYear := time.Date(2025, 1, 1, 0, 5, 0, 0, time.UTC)
	leapRead := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		line string
		read time.Time
		want time.Time
	}{
		{"syslog", "Nov 24 16:04:04 mx1 postfix/smtpd[1]: x", read, time.Date(2024, 11, 24, 16, 4, 4, 0, berlin)},
		{"syslog padded day", "Nov  4 06:04:04 mx1 x", read, time.Date(2024, 11, 4, 6, 4, 4, 0, berlin)},
		{"syslog zero day", "Nov 04 06:04:04 mx1 x", read, time.Date(2024, 11, 4, 6, 4, 4, 0, berlin)},
		{"syslog within a day ahead is this year", "Nov 25 20:00:00 mx1 x", read, time.Date(2024, 11, 25, 20, 0, 0, 0, berlin)},
		{"syslog more than a day ahead is last year", "Nov 27 10:00:00 mx1 x", read, time.Date(2023, 11, 27, 10, 0, 0, 0, berlin)},
		{"december read in january", "Dec 31 23:59:58 mx1 x", newYear, time.Date(2024, 12, 31, 23, 59, 58, 0, time.UTC)},
		{"feb 29 read in a common year", "Feb 29 12:00:00 mx1 x", leapRead, time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)},
		{"syslog line is only the stamp", "Nov 24 16:04:04", read, time.Date(2024, 11, 24, 16, 4, 4, 0, berlin)},
		{"rfc3339 utc", "2024-11-24T16:04:04Z mx1 x", read, time.Date(2024, 11, 24, 16, 4, 4, 0, time.UTC)},
		{"rfc3339 fraction zone", "2024-11-24T16:04:04.123456+01:00 mx1 x", read, time.Date(2024, 11, 24, 15, 4, 4, 123456000, time.UTC)},
		{"iso without zone", "2024-11-24T16:04:04.5 mx1 x", read, time.Date(2024, 11, 24, 16, 4, 4, 500000000, berlin)},
		{"exim date time", "2024-11-24 16:06:07 login authenticator failed", read, time.Date(2024, 11, 24, 16, 6, 7, 0, berlin)},
		{"no stamp", "postfix/smtpd[1]: warning: x", read, read},
		{"bad month", "Foo 24 16:04:04 mx1 x", read, read},
		{"bad hour", "Nov 24 26:04:04 mx1 x", read, read},
		{"month name not at boundary", "ovN 24 16:04:04 mx1 x", read, read},
		{"stamp glued to text", "Nov 24 16:04:04x", read, read},
		{"bad rfc3339", "2024-13-24T16:04:04Z x", read, read},
		{"empty", "", read, read},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StampTime(tt.line, tt.read)
			if !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if got.Location() != tt.want.Location() && tt.want.Location() != time.UTC {
				t.Errorf("location %v, want %v", got.Location(), tt.want.Location())
			}
		})
	}
}

// BenchmarkStampTime parses a syslog stamp, beside time.ParseInLocation of
// the same stamp (which infers no year) as the baseline in the same run.
func BenchmarkStampTime(b *testing.B) {
	const line = "Nov 24 16:04:04 mx1 postfix/smtpd[1234]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed"
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.Local)
	b.Run("StampTime", func(b *testing.B) {
		for b.Loop() {
			if StampTime(line, read).Day() != 24 {
				b.Fatal("wrong day")
			}
		}
	})
	b.Run("baseline-ParseInLocation", func(b *testing.B) {
		for b.Loop() {
			if t, err := time.ParseInLocation(time.Stamp, line[:15], time.Local); err != nil || t.Day() != 24 {
				b.Fatal(err)
			}
		}
	})
}
