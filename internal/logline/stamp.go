package logline

import (
	"strings"
	"time"
)

// StampTime returns the timestamp a log line starts with, else read (the
// time the line was read). Understood: syslog's "Nov 24 16:04:04" (also
// "Nov  4"), whose year is inferred from read and whose zone is read's; and
// RFC 3339 / ISO 8601 ("2024-11-24T16:04:04.123456+01:00", rsyslog's high
// precision format; "2024-11-24 16:04:04" without a zone is in read's zone).
func StampTime(line string, read time.Time) time.Time {
	if t, ok := syslogTime(line, read); ok {
		return t
	}
	if t, ok := isoTime(line, read.Location()); ok {
		return t
	}
	return read
}

const months = "JanFebMarAprMayJunJulAugSepOctNovDec"

// syslogTime parses "Mmm dd hh:mm:ss" at the start of line.
func syslogTime(line string, read time.Time) (time.Time, bool) {
	// "Nov 24 16:04:04" is 15 bytes; a space or the end must follow.
	if len(line) < 15 || (len(line) > 15 && line[15] != ' ' && line[15] != '.') {
		return time.Time{}, false
	}
	mi := strings.Index(months, line[:3])
	if mi < 0 || mi%3 != 0 || line[3] != ' ' || line[6] != ' ' || line[9] != ':' || line[12] != ':' {
		return time.Time{}, false
	}
	month := time.Month(mi/3 + 1)
	d1 := line[4]
	if d1 == ' ' {
		d1 = '0'
	}
	day, ok1 := digits2(d1, line[5])
	hour, ok2 := digits2(line[7], line[8])
	minute, ok3 := digits2(line[10], line[11])
	sec, ok4 := digits2(line[13], line[14])
	if !ok1 || !ok2 || !ok3 || !ok4 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	loc := read.Location()
	// A stamp more than a day ahead of the read time is from last year
	// (a December line read in January). A date that does not exist this
	// year (Feb 29) is from the latest year it does.
	limit := read.Unix() + 24*60*60
	for year, tries := read.Year(), 0; tries < 8; year, tries = year-1, tries+1 {
		t := time.Date(year, month, day, hour, minute, sec, 0, loc)
		// (Every month has day 28: only later days can roll over.)
		if (day > 28 && t.Day() != day) || t.Unix() > limit {
			continue
		}
		return t, true
	}
	return time.Time{}, false
}

func digits2(a, b byte) (int, bool) {
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

// isoTime parses an RFC 3339 stamp (or "date time" without a zone) at the
// start of line.
func isoTime(line string, loc *time.Location) (time.Time, bool) {
	// Cheap shape check before time.Parse: "2006-01-02".
	if len(line) < 19 || line[4] != '-' || line[7] != '-' || line[0] < '0' || line[0] > '9' {
		return time.Time{}, false
	}
	switch line[10] {
	case 'T', 't':
		end := strings.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		if t, err := time.Parse(time.RFC3339Nano, line[:end]); err == nil {
			return t, true
		}
		// ISO 8601 without a zone.
		if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", line[:end], loc); err == nil {
			return t, true
		}
	case ' ':
		end := 19
		for end < len(line) && (line[end] == '.' || line[end] >= '0' && line[end] <= '9') {
			end++
		}
		if t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", line[:end], loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
