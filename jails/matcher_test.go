package jails

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"smtpban/internal/logline"
)

type wantHit struct {
	jail, addr, user string
}

func TestMatchTestdata(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	// Every line of each file not listed here must give no hit.
	tests := []struct {
		file string
		hits map[int]wantHit // 1-based line number
		bad  []int           // lines counted as bad host
		ign  []int           // lines suppressed by ignoreregex
	}{
		{
			file: "postfix.log",
			hits: map[int]wantHit{
				2:  {"postfix-sasl", "192.0.2.10", ""},
				5:  {"postfix-sasl", "203.0.113.45", "info@example.com"},
				6:  {"postfix-sasl", "2001:db8:85a3::8a2e:370:7334", "admin"},
				7:  {"postfix-sasl", "198.51.100.99", ""}, // ::ffff: mapped, unmapped
				10: {"postfix-relay", "198.51.100.7", ""},
				11: {"postfix-relay", "2001:db8:dead::1", ""},
				23: {"postfix-sasl", "45.227.254.8", "test"},
			},
			bad: []int{8, 24}, // unknown[unknown], 999.1.2.3
			ign: []int{9},     // monitor account
		},
		{
			file: "dovecot.log",
			hits: map[int]wantHit{
				1: {"dovecot", "203.0.113.5", "bob@example.com"},
				2: {"dovecot", "2001:db8:1:2::beef", "admin"},
				3: {"dovecot", "198.51.100.20", "carol"},
				4: {"dovecot", "203.0.113.6", "dave"},
				5: {"dovecot", "2001:db8:ffff::6", "erin"},
			},
			bad: []int{11}, // rip=mail.example.com
		},
		{
			file: "exim.log",
			hits: map[int]wantHit{
				4: {"exim", "192.0.2.77", "admin"},
				5: {"exim", "2001:db8:1::5", "test@example.com"},
				6: {"exim", "198.51.100.60", ""},
				7: {"exim", "198.51.100.23", ""},
				8: {"exim", "203.0.113.200", ""},
				9: {"exim", "192.0.2.78", "root"},
			},
		},
		{
			file: "sendmail.log",
			hits: map[int]wantHit{
				1: {"sendmail", "192.0.2.200", ""},
				2: {"sendmail", "192.0.2.201", "admin"},
				3: {"sendmail", "2001:db8::7", "webmaster"}, // [IPv6:...]
				4: {"sendmail", "198.51.100.44", ""},
				5: {"sendmail", "198.51.100.45", ""},
			},
			bad: []int{10}, // relay=[localhost]
		},
	}
	for _, tt := range tests {
		for _, prefilter := range []bool{true, false} {
			name := tt.file
			if !prefilter {
				name += "/noprefilter"
			}
			t.Run(name, func(t *testing.T) {
				m := newMatcher(mailJails(t), prefilter)
				lines := readLines(t, tt.file)
				var nbad, nign uint64
				for i, line := range lines {
					n := i + 1
					before := m.Stats()
					hits := match(m, "", line, read, nil)
					after := m.Stats()
					want, ok := tt.hits[n]
					switch {
					case !ok && len(hits) > 0:
						t.Errorf("line %d: unexpected hits %+v", n, hits)
					case ok && len(hits) != 1:
						t.Errorf("line %d: got %d hits, want 1 (%+v)", n, len(hits), want)
					case ok:
						h := hits[0]
						if h.Jail.Name != want.jail || h.Addr != netip.MustParseAddr(want.addr) || h.User != want.user {
							t.Errorf("line %d: got {%s %s %q}, want %+v", n, h.Jail.Name, h.Addr, h.User, want)
						}
						if h.Addr.Is4In6() || h.Line != line {
							t.Errorf("line %d: hit addr %s mapped or line not kept", n, h.Addr)
						}
					}
					isBad := after.BadHost > before.BadHost
					if isBad != slices.Contains(tt.bad, n) {
						t.Errorf("line %d: bad host counted = %v", n, isBad)
					}
					isIgn := after.Ignored > before.Ignored
					if isIgn != slices.Contains(tt.ign, n) {
						t.Errorf("line %d: ignored counted = %v", n, isIgn)
					}
					if isBad {
						nbad++
					}
					if isIgn {
						nign++
					}
				}
				st := m.Stats()
				if st.Matched != uint64(len(tt.hits)) || st.Hits != uint64(len(tt.hits)) {
					t.Errorf("stats %+v, want %d matched", st, len(tt.hits))
				}
				if st.BadHost != nbad || st.Ignored != nign {
					t.Errorf("stats %+v, want %d bad, %d ignored", st, nbad, nign)
				}
			})
		}
	}
}

func TestMatchSources(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	postfix := "Nov 24 16:04:04 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.10]: SASL LOGIN authentication failed: x"
	exim := "2024-11-24 16:06:07 login authenticator failed for (User) [192.0.2.77]:56789: 535 Incorrect authentication data"
	tests := []struct {
		name, source, line string
		want               []string // jail names
	}{
		{"replay reaches every jail", "", postfix, []string{"postfix-sasl"}},
		{"shared source", "mail", postfix, []string{"postfix-sasl"}},
		{"own source", "postfix", postfix, []string{"postfix-sasl"}},
		{"other jail's source", "dovecot", postfix, nil},
		{"unknown source", "nope", postfix, nil},
		{"exim on its source", "exim", exim, []string{"exim"}},
		{"exim line on mail", "mail", exim, nil},
	}
	m := NewMatcher(mailJails(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, h := range match(m, tt.source, tt.line, read, nil) {
				got = append(got, h.Jail.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchSeveralJailsFirstRegexWins(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	a := testJail(t, "a", []string{"s"}, []string{`fail from (?P<user>first) <HOST>`, `fail from \w+ <HOST>`}, nil)
	b := testJail(t, "b", []string{"s"}, []string{`\w+ from \w+ <HOST>$`}, []string{`\w+ from first 192\.0\.2\.9`})
	m := NewMatcher([]*Jail{a, b})
	tests := []struct {
		name, line string
		want       []wantHit
	}{
		{"both jails, first regex of a", "fail from first 192.0.2.1", []wantHit{{"a", "192.0.2.1", "first"}, {"b", "192.0.2.1", ""}}},
		{"second regex of a", "fail from other 192.0.2.2", []wantHit{{"a", "192.0.2.2", ""}, {"b", "192.0.2.2", ""}}},
		{"ignoreregex of b only", "fail from first 192.0.2.9", []wantHit{{"a", "192.0.2.9", "first"}}},
		{"bracketed", "fail from x [2001:db8::2]", []wantHit{{"a", "2001:db8::2", ""}, {"b", "2001:db8::2", ""}}},
		{"mapped", "fail from x ::ffff:192.0.2.3", []wantHit{{"a", "192.0.2.3", ""}, {"b", "192.0.2.3", ""}}},
		{"no match", "success from first 192.0.2.1 ok", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []wantHit
			for _, h := range match(m, "s", tt.line, read, nil) {
				got = append(got, wantHit{h.Jail.Name, h.Addr.String(), h.User})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchHitTime(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	m := NewMatcher(mailJails(t))
	lines := readLines(t, "exim.log")
	tests := []struct {
		name string
		line string
		want time.Time
	}{
		{"syslog", readLines(t, "postfix.log")[1], time.Date(2024, 11, 24, 16, 4, 4, 0, time.UTC)},
		{"exim local", lines[3], time.Date(2024, 11, 24, 16, 6, 7, 0, time.UTC)},
		{"rsyslog RFC 3339", lines[8], time.Date(2024, 11, 24, 15, 6, 12, 123456000, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits := match(m, "", tt.line, read, nil)
			if len(hits) != 1 {
				t.Fatalf("got %d hits", len(hits))
			}
			if !hits[0].Time.Equal(tt.want) {
				t.Errorf("time %v, want %v", hits[0].Time, tt.want)
			}
		})
	}
}

func TestMatchNoAllocs(t *testing.T) {
	m := NewMatcher(mailJails(t))
	read := time.Now()
	dst := make([]Hit, 0, 4)
	lines := []string{
		"Nov 24 16:04:18 mx1 postfix/qmgr[801]: 4Y1ZQk3Fz1z9vN: removed",                                          // no jail's program
		"Nov 24 16:04:20 mx1 postfix/smtpd[12409]: connect from mail-wr1-f44.google.com[209.85.221.44]",           // a jail's program, no literal
		"Nov 24 16:04:20 mx1 postfix/smtpd[12409]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failur", // literals, no match
		"Nov 24 16:04:20 mx1 evil[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x",           // a match, from another program
		"2024-11-24 16:06:15 Start queue run: pid=4444",
	}
	for _, text := range lines {
		l := decode(text, read)
		if n := testing.AllocsPerRun(100, func() { dst = m.Match("mail", &l, dst[:0]) }); n != 0 {
			t.Errorf("%q: %v allocs per non-matching line", text, n)
		}
		if len(dst) != 0 {
			t.Errorf("%q: hits %+v", text, dst)
		}
	}
}

// TestMatcherManyLiterals runs a group of more literals than one bitset
// word (ids past 64 have no mask) and than the on-stack bitset holds: each
// line must hit its own jail and no other.
func TestMatcherManyLiterals(t *testing.T) {
	const n = 600 // 600 literals: 10 words, past seenWords
	var js []*Jail
	for i := range n {
		j := testJail(t, fmt.Sprintf("svc%d", i), []string{"mail"}, []string{fmt.Sprintf(`service%03d refused client <HOST>`, i)}, nil)
		js = append(js, withPrograms(j, "app"))
	}
	m := NewMatcher(js)
	if g := m.all; g.nlit != n {
		t.Fatalf("%d literals in the group, want %d", g.nlit, n)
	}
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += 7 {
		line := fmt.Sprintf("Nov 25 08:59:59 mx1 app[1]: service%03d refused client 192.0.2.%d", i, i%250+1)
		hits := match(m, "mail", line, read, nil)
		if len(hits) != 1 || hits[0].Jail != js[i] || hits[0].Addr != netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)}) {
			t.Fatalf("line for jail %d: hits %+v", i, hits)
		}
	}
	if hits := match(m, "mail", "Nov 25 08:59:59 mx1 app[1]: service refused client 192.0.2.1", read, nil); len(hits) != 0 {
		t.Fatalf("a line no jail wants hit %+v", hits)
	}
	// Past 64 jails the program masks stop: those jails check their
	// programs one by one, and must still refuse other programs' lines.
	for _, i := range []int{3, 63, 64, 65, 599} {
		line := fmt.Sprintf("Nov 25 08:59:59 mx1 other[1]: service%03d refused client 192.0.2.1", i)
		if hits := match(m, "mail", line, read, nil); len(hits) != 0 {
			t.Fatalf("jail %d read another program's line: hits %+v", i, hits)
		}
	}
}

// TestMatchProgramBound checks that a jail reads only its programs' lines:
// another program's line whose message its pattern matches (a local user's
// `logger -t`, a program quoting a client) gives no hit, whatever the
// prefilter, the source or the jails' count.
func TestMatchProgramBound(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	const msg = "warning: unknown[192.0.2.10]: SASL LOGIN authentication failed: x"
	tests := []struct {
		line string
		want bool
	}{
		{"Nov 24 16:04:04 mx1 postfix/smtpd[1]: " + msg, true},
		{"Nov 24 16:04:04 mx1 postfix/submission/smtpd[1]: " + msg, true},
		{"Nov 24 16:04:04 mx1 postfix-out/smtpd: " + msg, true},
		{"Nov 24 16:04:04 mx1 postfix/smtp[1]: " + msg, false},
		{"Nov 24 16:04:04 mx1 postfix[1]: " + msg, false},
		{"Nov 24 16:04:04 mx1 smtpd[1]: " + msg, false},
		{"Nov 24 16:04:04 mx1 dovecot: " + msg, false},
		{"Nov 24 16:04:04 mx1 mallory: " + msg, false},
		{"Nov 24 16:04:04 mx1 other: " + msg, false},           // a program other jails read
		{"Nov 24 16:04:04 mx1 " + msg, false},                  // no tag: program "warning"
		{msg, false},                                           // no stamp, host or tag: no program
		{"2024-11-24 16:06:07 " + msg, false},                  // Exim's log: program exim
		{"Nov 24 16:04:04 mx1 postfix/smtpd: x " + msg, false}, // right program, not at the start
	}
	sasl := mailJails(t)[0]
	// Many jails: the ones past 64 are checked without the program mask.
	many := []*Jail{}
	for i := range 70 {
		many = append(many, withPrograms(testJail(t, fmt.Sprintf("other%d", i), []string{"mail"}, []string{fmt.Sprintf(`other%d <HOST>`, i)}, nil), "other"))
	}
	for _, js := range [][]*Jail{{sasl}, append([]*Jail{sasl}, many...), append(many, sasl)} {
		for _, prefilter := range []bool{true, false} {
			m := newMatcher(js, prefilter)
			for _, source := range []string{"", "mail"} {
				for _, tt := range tests {
					hits := match(m, source, tt.line, read, nil)
					if got := len(hits) == 1 && hits[0].Jail == sasl; got != tt.want || len(hits) > 1 {
						t.Errorf("%d jails, prefilter %v, source %q: %q: hits %+v, want hit %v", len(js), prefilter, source, tt.line, hits, tt.want)
					}
				}
			}
		}
	}
	// A jail with no programs reads nothing.
	none := withPrograms(testJail(t, "none", nil, []string{`warning: \S+\[<HOST>\]`}, nil))
	if hits := match(NewMatcher([]*Jail{none}), "", tests[0].line, read, nil); len(hits) != 0 {
		t.Errorf("a jail with no programs hit %+v", hits)
	}
}

// TestMatchAnchored checks that a pattern matches only at the message's
// start: the same text later in the message, where a client's text may
// be, gives nothing, and neither does the whole line (stamp, host, tag).
func TestMatchAnchored(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	m := NewMatcher(mailJails(t))
	const fake = "warning: unknown[192.0.2.66]: SASL LOGIN authentication failed: x"
	tests := []struct {
		name, line string
		want       string // address hit, "" for none
	}{
		{"at the start", "Nov 24 16:04:04 mx1 postfix/smtpd[1]: " + fake, "192.0.2.66"},
		{"in a client's text", "Nov 24 16:04:04 mx1 postfix/smtpd[1]: warning: non-SMTP command from unknown[192.0.2.7]: " + fake, ""},
		{"after a queue id", "Nov 24 16:04:04 mx1 postfix/smtpd[1]: 4Y1ZQk3Fz1z9vN: " + fake, ""},
		{"after a space", "Nov 24 16:04:04 mx1 postfix/smtpd[1]:  " + fake, ""},
		{"in the user name", "Nov 24 16:04:09 mx1 postfix/smtpd[1]: warning: unknown[203.0.113.45]: SASL PLAIN authentication failed: x, sasl_username=" + fake, "203.0.113.45"},
		{"dovecot at the start", "Nov 24 16:05:03 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 4 secs): user=<carol>, method=LOGIN, rip=192.0.2.20, lip=192.0.2.1", "192.0.2.20"},
		{"dovecot in a message", "Nov 24 16:05:03 mx1 dovecot: lmtp(bob): msgid=<imap-login: Disconnected (auth failed, 1 attempts in 4 secs): user=<carol>, method=LOGIN, rip=192.0.2.20, lip=192.0.2.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits := match(m, "", tt.line, read, nil)
			var got string
			if len(hits) > 0 {
				got = hits[0].Addr.String()
			}
			if got != tt.want || len(hits) > 1 {
				t.Errorf("hits %+v, want address %q", hits, tt.want)
			}
		})
	}
	// The pattern itself is anchored, whoever runs it.
	p := MustCompileFailregex(`from <HOST>$`)
	if _, res := p.match("x from 192.0.2.1"); res != noMatch {
		t.Errorf("a pattern matched in the middle of a message: %d", res)
	}
	if _, res := p.match("from 192.0.2.1"); res != matched {
		t.Errorf("a pattern did not match at the start: %d", res)
	}
	for _, e := range []string{`a|from <HOST>`, `(?i)FROM <HOST>`} {
		if _, res := MustCompileFailregex(e).match("x from 192.0.2.1"); res != noMatch {
			t.Errorf("%q matched past the start (an alternation or flag escaped the anchor)", e)
		}
	}
}

// TestMatchInvalidUTF8User checks that a line whose client-chosen part
// holds an invalid byte or a NUL is cleaned, not dropped, and still hits:
// the daemon's sources clean a read buffer with logline.CleanBytes, replay
// a string with logline.Clean, and both must give the same hit.
func TestMatchInvalidUTF8User(t *testing.T) {
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	m := NewMatcher(mailJails(t))
	tests := []struct {
		line, addr, user string
	}{
		{"Nov 24 16:04:09 mx1 postfix/submission/smtpd[12401]: warning: unknown[203.0.113.45]: SASL PLAIN authentication failed: authentication failure, sasl_username=b\xffob",
			"203.0.113.45", "b\uFFFDob"},
		{"Nov 24 16:04:09 mx1 postfix/submission/smtpd[12401]: warning: unknown[203.0.113.45]: SASL PLAIN authentication failed: authentication failure, sasl_username=b\x00ob",
			"203.0.113.45", "b\uFFFDob"},
		{"Nov 24 16:05:03 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 4 secs): user=<\xc3\x28carol>, method=LOGIN, rip=198.51.100.20, lip=192.0.2.1",
			"198.51.100.20", "\uFFFD(carol"},
	}
	for _, tt := range tests {
		daemon := logline.Decode(logline.Syslog, logline.CleanBytes([]byte(tt.line)), read)
		replay := logline.Decode(logline.Syslog, logline.Clean(tt.line), read)
		if daemon != replay {
			t.Errorf("%q: the daemon decodes %+v, replay %+v", tt.line, daemon, replay)
		}
		for _, l := range []*logline.Line{&daemon, &replay} {
			hits := m.Match("mail", l, nil)
			if len(hits) != 1 || hits[0].Addr.String() != tt.addr || hits[0].User != tt.user {
				t.Errorf("%q: hits %+v, want %s user %q", tt.line, hits, tt.addr, tt.user)
				continue
			}
			if !utf8.ValidString(hits[0].Line) || strings.IndexByte(hits[0].Line, 0) >= 0 {
				t.Errorf("%q: hit line %q not clean", tt.line, hits[0].Line)
			}
		}
	}
}
