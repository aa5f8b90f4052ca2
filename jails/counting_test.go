package jails

import (
	"net/netip"
	"testing"
	"time"

	"smtpban/internal/logline"
)

// step is one hit given to a counter in the counting-rule tests.
type step struct {
	addr    string
	user    string
	pass    string
	count   int
	success bool
	at      time.Duration
	ban     int // 0: no decision; else the decision's Failures
}

func runSteps(t *testing.T, j *Jail, steps []step) *Counter {
	t.Helper()
	c := NewCounter(0)
	for i, s := range steps {
		h := Hit{Jail: j, Addr: netip.MustParseAddr(s.addr), User: s.user, Pass: s.pass, Count: s.count,
			Success: s.success, Time: t0.Add(s.at), Line: "line " + s.addr + " " + s.user}
		d, ok := c.Add(h)
		switch {
		case s.ban == 0 && ok:
			t.Fatalf("step %d (%+v): unexpected ban %+v", i, s, d)
		case s.ban > 0 && !ok:
			t.Fatalf("step %d (%+v): no ban, want one with %d failures", i, s, s.ban)
		case s.ban > 0 && d.Failures != s.ban:
			t.Fatalf("step %d (%+v): ban with %d failures, want %d", i, s, d.Failures, s.ban)
		}
	}
	return c
}

func TestCounterCount(t *testing.T) {
	j := counterJail("j", 5, Key{})
	m := time.Minute
	tests := []struct {
		name  string
		steps []step
	}{
		{"one session of 5 attempts bans", []step{
			{addr: "192.0.2.1", count: 5, ban: 5},
		}},
		{"sessions add up", []step{
			{addr: "192.0.2.1", count: 3},
			{addr: "192.0.2.1", count: 1, at: m},
			{addr: "192.0.2.1", count: 2, at: 2 * m, ban: 6},
		}},
		{"a huge count is capped at maxretry", []step{
			{addr: "192.0.2.1", count: MaxCount, ban: 5},
		}},
		{"zero means one", []step{
			{addr: "192.0.2.1", count: 0},
			{addr: "192.0.2.1", count: 0},
			{addr: "192.0.2.1", count: 0},
			{addr: "192.0.2.1", count: 0},
			{addr: "192.0.2.1", count: 0, ban: 5},
		}},
		{"counted failures age out together", []step{
			{addr: "192.0.2.1", count: 4},
			{addr: "192.0.2.1", count: 1, at: 11 * m},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, j, tt.steps) })
	}
}

func TestCounterCountLinesOnce(t *testing.T) {
	j := counterJail("j", 3, Key{})
	c := NewCounter(0)
	d, ok := c.Add(Hit{Jail: j, Addr: netip.MustParseAddr("192.0.2.1"), Time: t0, Count: 3, Line: "auth failed, 3 attempts"})
	if !ok || d.Failures != 3 || len(d.Lines) != 1 || d.Lines[0] != "auth failed, 3 attempts" {
		t.Fatalf("decision %v %+v: want 3 failures and the line once", ok, d)
	}
}

func TestCounterSuccessClears(t *testing.T) {
	j := counterJail("j", 3, Key{})
	j64 := counterJail("j64", 3, Key{V4Bits: 24, V6Bits: 64})
	j4 := counterJail("j4", 4, Key{})
	m := time.Minute
	tests := []struct {
		name  string
		jail  *Jail
		steps []step
	}{
		{"success clears the user's failures", j, []step{
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.1", user: "alice", at: m},
			{addr: "192.0.2.1", user: "alice", success: true, at: 2 * m},
			{addr: "192.0.2.1", user: "alice", at: 3 * m},
			{addr: "192.0.2.1", user: "alice", at: 4 * m},
			{addr: "192.0.2.1", user: "alice", at: 5 * m, ban: 3},
		}},
		{"user names compare without case", j, []step{
			{addr: "192.0.2.1", user: "Alice"},
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.1", user: "ALICE", success: true, at: m},
			{addr: "192.0.2.1", user: "bob", at: 2 * m},
			{addr: "192.0.2.1", user: "bob", at: 3 * m},
		}},
		{"another user's success clears nothing", j, []step{
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.1", user: "alice", at: m},
			{addr: "192.0.2.1", user: "bob", success: true, at: 2 * m},
			{addr: "192.0.2.1", user: "alice", at: 3 * m, ban: 3},
		}},
		{"failures without a user stay", j, []step{
			{addr: "192.0.2.1"},
			{addr: "192.0.2.1", at: m},
			{addr: "192.0.2.1", user: "alice", success: true, at: 2 * m},
			{addr: "192.0.2.1", at: 3 * m, ban: 3},
		}},
		{"success without a user clears nothing", j, []step{
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.1", user: "alice", at: m},
			{addr: "192.0.2.1", success: true, at: 2 * m},
			{addr: "192.0.2.1", user: "alice", at: 3 * m, ban: 3},
		}},
		{"only the same address", j, []step{
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.1", user: "alice", at: m},
			{addr: "192.0.2.2", user: "alice", success: true, at: 2 * m},
			{addr: "192.0.2.1", user: "alice", at: 3 * m, ban: 3},
		}},
		{"keyed prefix: the whole /24", j64, []step{
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.7", user: "alice", at: m},
			{addr: "192.0.2.9", user: "alice", success: true, at: 2 * m},
			{addr: "192.0.2.1", user: "alice", at: 3 * m},
			{addr: "192.0.2.7", user: "alice", at: 4 * m},
			{addr: "192.0.2.1", user: "alice", at: 5 * m, ban: 3},
		}},
		{"later failures stay (out of order)", j, []step{
			{addr: "192.0.2.1", user: "alice", at: 5 * m},
			{addr: "192.0.2.1", user: "alice", at: 6 * m},
			{addr: "192.0.2.1", user: "alice", success: true, at: 4 * m},
			{addr: "192.0.2.1", user: "alice", at: 7 * m, ban: 3},
		}},
		{"a success never bans nor counts", j, []step{
			{addr: "192.0.2.1", user: "alice", success: true},
			{addr: "192.0.2.1", user: "alice", success: true},
			{addr: "192.0.2.1", user: "alice", success: true},
			{addr: "192.0.2.1", user: "alice", success: true},
		}},
		{"mixed users: only alice goes", j4, []step{
			{addr: "2001:db8::1", user: "alice"},
			{addr: "2001:db8::1", user: "bob", at: m},
			{addr: "2001:db8::1", user: "alice", at: 2 * m},
			{addr: "2001:db8::1", user: "alice", success: true, at: 3 * m},
			{addr: "2001:db8::1", user: "carol", at: 4 * m},
			{addr: "2001:db8::1", user: "dave", at: 5 * m},
			{addr: "2001:db8::1", user: "erin", at: 6 * m, ban: 4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, tt.jail, tt.steps) })
	}
}

// TestCounterNATOffice is the story: an office behind one address, a
// phone retrying alice's stale password all day, alice's laptop logging
// in fine every few minutes, colleagues logging in too. Nobody is banned;
// a guesser at bob's account from the same address still is.
func TestCounterNATOffice(t *testing.T) {
	j := &Jail{Name: "dovecot", MaxRetry: 5, FindTime: time.Hour}
	c := NewCounter(0)
	office := netip.MustParseAddr("198.51.100.20")
	for i := range 8 * 60 / 5 { // a working day, every 5 minutes
		at := t0.Add(time.Duration(i) * 5 * time.Minute)
		for _, h := range []Hit{
			{Jail: j, Addr: office, User: "alice", Time: at, Line: "phone: stale password"},
			{Jail: j, Addr: office, User: "carol", Time: at.Add(time.Second), Success: true},
			{Jail: j, Addr: office, User: "alice", Time: at.Add(2 * time.Second), Success: true},
		} {
			if d, ok := c.Add(h); ok {
				t.Fatalf("office banned at %v: %+v", at, d)
			}
		}
	}
	if got := c.Stats().Cleared; got != 8*60/5 {
		t.Errorf("Cleared = %d, want %d", got, 8*60/5)
	}
	end := t0.Add(8 * time.Hour)
	for i := range 5 {
		d, ok := c.Add(Hit{Jail: j, Addr: office, User: "bob", Time: end.Add(time.Duration(i) * time.Second)})
		if ok != (i == 4) {
			t.Fatalf("guess %d at bob: ban %v %+v", i+1, ok, d)
		}
	}
}

func TestCounterFingerprint(t *testing.T) {
	j := counterJail("j", 3, Key{}) // findtime 10m
	m := time.Minute
	tests := []struct {
		name    string
		steps   []step
		repeats uint64
	}{
		{"the same password again counts once", []step{
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c"},
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c", at: m},
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c", at: 2 * m},
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c", at: 3 * m},
		}, 3},
		{"different passwords count", []step{
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c"},
			{addr: "192.0.2.1", user: "alice", pass: "4d5e6f", at: m},
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c", at: 2 * m},
			{addr: "192.0.2.1", user: "alice", pass: "777777", at: 3 * m, ban: 3},
		}, 1},
		{"the same password for other users counts", []step{
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c"},
			{addr: "192.0.2.1", user: "bob", pass: "1a2b3c", at: m},
			{addr: "192.0.2.1", user: "carol", pass: "1a2b3c", at: 2 * m, ban: 3},
		}, 0},
		{"from another address it counts there", []step{
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c"},
			{addr: "192.0.2.2", user: "alice", pass: "1a2b3c", at: m},
			{addr: "192.0.2.2", user: "alice", pass: "1a2b3c", at: 2 * m},
		}, 1},
		{"after findtime it counts again", []step{
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c"},
			{addr: "192.0.2.1", user: "alice", pass: "4d5e6f", at: m},
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c", at: 11 * m},
			{addr: "192.0.2.1", user: "alice", pass: "4d5e6f", at: 11*m + 30*time.Second},
			{addr: "192.0.2.1", user: "alice", pass: "1a2b3c", at: 11*m + 45*time.Second},
			{addr: "192.0.2.1", user: "alice", pass: "999999", at: 12 * m, ban: 3},
		}, 1},
		{"no fingerprint: every failure counts", []step{
			{addr: "192.0.2.1", user: "alice"},
			{addr: "192.0.2.1", user: "alice", at: m},
			{addr: "192.0.2.1", user: "alice", at: 2 * m, ban: 3},
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := runSteps(t, j, tt.steps)
			if got := c.Stats().Repeats; got != tt.repeats {
				t.Errorf("Repeats = %d, want %d", got, tt.repeats)
			}
		})
	}
}

// TestCounterRestoreKeepsHashes proves a checkpoint keeps what the rules
// need: the restored failures still know their user and fingerprint (as
// hashes under the saved key, or re-derived from the lines of an old
// checkpoint), so a success still clears them and a repeated password
// still counts once.
func TestCounterRestoreKeepsHashes(t *testing.T) {
	j := testJail(t, "dovecot", nil, []string{
		`auth: (?:Info: )?passwd-file\((?P<user>[^,]*),<HOST>\): Password mismatch(?: \(SHA1 of given password: (?P<pass>\w+)\))?`,
	}, nil)
	j.Successregex = []*Pattern{MustCompileFailregex(`\w+-login: (?:Info: )?Login: user=<(?P<user>[^>]*)>, .*rip=<HOST>,`)}
	j.Programs = []string{"dovecot"}
	j.MaxRetry = 4
	m := NewMatcher([]*Jail{j})
	line := func(user, fp string) string {
		return "Nov 24 16:04:03 auth: Info: passwd-file(" + user + ",192.0.2.1): Password mismatch (SHA1 of given password: " + fp + ")"
	}
	feed := func(c *Counter, lines ...string) (Decision, bool) {
		t.Helper()
		var d Decision
		var ok bool
		for _, text := range lines {
			// Dovecot's own log_path layout.
			l := logline.Decode(logline.Dovecot, text, t0)
			hs := m.Match("", &l, nil)
			if len(hs) != 1 {
				t.Fatalf("%q: %d hits", text, len(hs))
			}
			d, ok = c.Add(hs[0])
		}
		return d, ok
	}
	first := []string{line("alice", "aaaaaa"), line("bob", "bbbbbb"), line("carol", "cccccc")}
	c := NewCounter(0, j)
	feed(c, first...)
	snap := c.Snapshot()
	if len(snap) != 1 || len(snap[0].Users) != 3 || snap[0].Users[0] == 0 || snap[0].Passes[0] == 0 {
		t.Fatalf("snapshot %+v: want one window with 3 user and fingerprint hashes", snap)
	}
	legacy := []Window{{Jail: "dovecot", Key: snap[0].Key, Times: snap[0].Times, Lines: first}}
	for _, tc := range []struct {
		name    string
		ws      []Window
		sameKey bool
	}{
		{"hashes under the saved key", snap, true},
		{"lines of an old checkpoint", legacy, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewCounter(0, j)
			if tc.sameKey {
				r.SetHashKey(c.HashKey())
			}
			if n := r.Restore(tc.ws); n != 1 {
				t.Fatalf("restored %d windows", n)
			}
			if _, ok := feed(r, line("bob", "bbbbbb")); ok {
				t.Fatal("a repeated fingerprint counted after restore")
			}
			if st := r.Stats(); st.Repeats != 1 {
				t.Fatalf("Repeats = %d, want 1", st.Repeats)
			}
			if _, ok := feed(r, "Nov 24 16:04:04 imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid=1"); ok {
				t.Fatal("a success banned")
			}
			if st := r.Stats(); st.Cleared != 1 {
				t.Fatalf("Cleared = %d, want alice's 1", st.Cleared)
			}
			// alice's failure is gone: bob, carol and two new ones make 4.
			if _, ok := feed(r, line("dave", "dddddd")); ok {
				t.Fatal("banned with alice's cleared failure still counted")
			}
			if d, ok := feed(r, line("erin", "eeeeee")); !ok || d.Failures != 4 {
				t.Fatalf("decision %v %+v, want a ban with 4 failures", ok, d)
			}
		})
	}
	// Under another key the saved hashes mean nothing: the repeat counts
	// (and is the 4th failure).
	other := NewCounter(0, j)
	other.Restore(snap)
	if _, ok := feed(other, line("bob", "bbbbbb")); !ok || other.Stats().Repeats != 0 {
		t.Fatalf("a fingerprint matched across hash keys: ban %v, repeats %d", ok, other.Stats().Repeats)
	}
}
