package jails

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
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
					hits := m.Match("", line, read, nil)
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
			for _, h := range m.Match(tt.source, tt.line, read, nil) {
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
	b := testJail(t, "b", []string{"s"}, []string{`from \w+ <HOST>$`}, []string{`from first 192\.0\.2\.9`})
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
			for _, h := range m.Match("s", tt.line, read, nil) {
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
			hits := m.Match("", tt.line, read, nil)
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
		"Nov 24 16:04:18 mx1 postfix/qmgr[801]: 4Y1ZQk3Fz1z9vN: removed",
		"Nov 24 16:04:20 mx1 postfix/smtpd[12409]: connect from mail-wr1-f44.google.com[209.85.221.44]",
		"2024-11-24 16:06:15 Start queue run: pid=4444",
	}
	for _, line := range lines {
		if n := testing.AllocsPerRun(100, func() { dst = m.Match("mail", line, read, dst[:0]) }); n != 0 {
			t.Errorf("%q: %v allocs per non-matching line", line, n)
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
		js = append(js, testJail(t, fmt.Sprintf("svc%d", i), []string{"mail"}, []string{fmt.Sprintf(`service%03d refused client <HOST>`, i)}, nil))
	}
	m := NewMatcher(js)
	if g := m.all; g.nlit != n {
		t.Fatalf("%d literals in the group, want %d", g.nlit, n)
	}
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += 7 {
		line := fmt.Sprintf("Nov 25 08:59:59 mx1 app[1]: service%03d refused client 192.0.2.%d", i, i%250+1)
		hits := m.Match("mail", line, read, nil)
		if len(hits) != 1 || hits[0].Jail != js[i] || hits[0].Addr != netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)}) {
			t.Fatalf("line for jail %d: hits %+v", i, hits)
		}
	}
	if hits := m.Match("mail", "Nov 25 08:59:59 mx1 app[1]: service refused client 192.0.2.1", read, nil); len(hits) != 0 {
		t.Fatalf("a line no jail wants hit %+v", hits)
	}
}
