package state

import (
	"fmt"
	"testing"
	"time"
)

// TestJailBans: a ban continued under a second jail's name still counts
// for the first; a new ban after one ended counts again; a repeat by the
// same jail while banned does not; prefixes of the two families and of
// other lengths do not mix.
func TestJailBans(t *testing.T) {
	s := mustOpen(t)
	put := func(p, jail string, since, until time.Duration) {
		t.Helper()
		b := ban(p, since, until)
		b.Jail = jail
		if _, err := s.PutBans([]Ban{b}); err != nil {
			t.Fatal(err)
		}
	}
	put("203.0.113.7/32", "postfix-sasl", 0, time.Hour)
	put("203.0.113.7/32", "postfix-sasl", time.Minute, time.Hour) // same jail, same ban
	put("203.0.113.7/32", "dovecot", 2*time.Minute, 2*time.Hour)  // continued as dovecot
	put("203.0.113.7/32", "postfix-sasl", 3*time.Hour, 4*time.Hour)
	put("203.0.113.0/24", "manual", 0, time.Hour)
	put("cb00:7107::/32", "other", 0, time.Hour) // its first bytes spell 203.0.113.7
	got, err := s.JailBans(pfx("203.0.113.7/32"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint([]JailBans{
		{"postfix-sasl", 2, t0.Add(3 * time.Hour)},
		{"dovecot", 1, t0.Add(2 * time.Minute)},
	}) {
		t.Errorf("jail bans %v", got)
	}
	if got, _ := s.JailBans(pfx("198.51.100.1/32")); len(got) != 0 {
		t.Errorf("never banned: %v", got)
	}
}
