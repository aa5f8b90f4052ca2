package jails

import (
	"net/netip"
	"testing"
	"time"

	"smtpban/internal/logline"
)

// successJail is a Dovecot-like jail with every group the counting rules
// use: user, count, pass, and a successregex.
func successJail(tb testing.TB) *Jail {
	tb.Helper()
	j := testJail(tb, "dovecot", []string{"mail"}, []string{
		`\w+-login: (?:Info: )?(?:Disconnected|Aborted login|Login aborted)\b.*?\(auth failed, (?P<count>\d+) attempts[^)]*\).*?: user=<(?P<user>[^>]*)>.*?, rip=<HOST>,`,
		`auth: (?:Info: )?passwd-file\((?P<user>[^,]*),<HOST>(?:,<[^>]*>)?\): (?:Password mismatch|unknown user)(?: \((?:SHA1 of )?given password: (?P<pass>[^)]*)\))?`,
	}, []string{`\w+-login: .*user=<monitor>`})
	p, err := CompileSuccessregex(`\w+-login: (?:Info: )?Login: user=<(?P<user>[^>]*)>, .*?rip=<HOST>,`)
	if err != nil {
		tb.Fatal(err)
	}
	j.Successregex = []*Pattern{p}
	return withPrograms(j, "dovecot")
}

func TestMatchCountPassSuccess(t *testing.T) {
	m := NewMatcher([]*Jail{successJail(t)})
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		format  logline.Format
		line    string
		hit     bool
		addr    string
		user    string
		count   int
		pass    string
		success bool
	}{
		{"count", logline.Syslog, "Nov 24 16:05:01 mx1 dovecot: imap-login: Disconnected (auth failed, 3 attempts in 15 secs): user=<bob>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.1", true, "203.0.113.5", "bob", 3, "", false},
		{"fingerprint", logline.Dovecot, "Nov 24 16:04:03 auth: Info: passwd-file(alice,10.77.0.2,<Xy12>): Password mismatch (SHA1 of given password: 1a2b3c)", true, "10.77.0.2", "alice", 0, "1a2b3c", false},
		{"no fingerprint", logline.Dovecot, "Nov 24 16:04:03 auth: Info: passwd-file(alice,10.77.0.2): Password mismatch", true, "10.77.0.2", "alice", 0, "", false},
		{"success", logline.Syslog, "Nov 24 16:05:06 mx1 dovecot: imap-login: Login: user=<frank>, method=PLAIN, rip=192.0.2.44, lip=192.0.2.1, mpid=5555, TLS", true, "192.0.2.44", "frank", 0, "", true},
		{"success, mapped address", logline.Syslog, "Nov 24 16:05:06 mx1 dovecot: imap-login: Login: user=<frank>, method=PLAIN, rip=::ffff:192.0.2.44, lip=192.0.2.1", true, "192.0.2.44", "frank", 0, "", true},
		{"success, bad host", logline.Syslog, "Nov 24 16:05:06 mx1 dovecot: imap-login: Login: user=<frank>, method=PLAIN, rip=localhost, lip=192.0.2.1", false, "", "", 0, "", false},
		{"ignored failure is no success", logline.Syslog, "Nov 24 16:05:01 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<monitor>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.1", false, "", "", 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := m.Stats()
			l := logline.Decode(tt.format, tt.line, read)
			hs := m.Match("mail", &l, nil)
			after := m.Stats()
			if !tt.hit {
				if len(hs) != 0 {
					t.Fatalf("hits %+v, want none", hs)
				}
				return
			}
			if len(hs) != 1 {
				t.Fatalf("%d hits, want 1", len(hs))
			}
			h := hs[0]
			if h.Addr != netip.MustParseAddr(tt.addr) || h.User != tt.user || h.Count != tt.count || h.Pass != tt.pass || h.Success != tt.success {
				t.Errorf("hit %s user %q count %d pass %q success %v; want %s %q %d %q %v",
					h.Addr, h.User, h.Count, h.Pass, h.Success, tt.addr, tt.user, tt.count, tt.pass, tt.success)
			}
			wantHits, wantSucc := uint64(1), uint64(0)
			if tt.success {
				wantHits, wantSucc = 0, 1
			}
			if after.Hits-before.Hits != wantHits || after.Successes-before.Successes != wantSucc {
				t.Errorf("stats moved hits +%d successes +%d, want +%d +%d",
					after.Hits-before.Hits, after.Successes-before.Successes, wantHits, wantSucc)
			}
		})
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int{"": 1, "0": 1, "1": 1, "20": 20, "99999999999999999999999": MaxCount} {
		if got := parseCount(in); got != want {
			t.Errorf("parseCount(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestPatternCaptures(t *testing.T) {
	p := MustCompileFailregex(`u=(?P<user>\S+) n=(?P<count>\d+) <HOST>`)
	if !p.Captures(GroupUser) || !p.Captures(GroupCount) || p.Captures(GroupPass) || p.Captures("other") {
		t.Errorf("Captures wrong for %s", p)
	}
	if _, err := CompileSuccessregex(`Login: user=<(?P<user>[^>]*)>`); err == nil {
		t.Error("a successregex without <HOST> compiled")
	}
}
