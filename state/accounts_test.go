package state

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccountsDurable: account records and alerts survive a reopen; a
// deleted record stays deleted; one account's alerts are its own.
func TestAccountsDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smtpban.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Accounts(); err != nil || len(got) != 0 {
		t.Fatalf("Accounts on a new database = %v, %v", got, err)
	}
	if a, err := s.Alerts("alice", 10); err != nil || len(a) != 0 {
		t.Fatalf("Alerts on a new database = %v, %v", a, err)
	}
	if err := s.PutAccounts(map[string][]byte{"alice": []byte(`{"held":true}`), "al": []byte(`{}`), "bob": []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccounts(nil, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, u := range []string{"alice", "al", "alice", "alice"} {
		if err := s.PutAlert(t0.Add(time.Duration(i%2)*time.Minute), u, []byte(u+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Accounts()
	if err != nil || len(got) != 2 || string(got["alice"]) != `{"held":true}` {
		t.Errorf("Accounts after reopen = %q, %v", got, err)
	}
	alerts, err := s.Alerts("alice", 10)
	var names []string
	for _, a := range alerts {
		names = append(names, string(a))
	}
	// Newest first; the two at the same instant both kept.
	if err != nil || strings.Join(names, " ") != "alice3 alice2 alice0" {
		t.Errorf("alice's alerts = %q, %v; want alice3 alice2 alice0", names, err)
	}
	if a, _ := s.Alerts("alice", 1); len(a) != 1 || string(a[0]) != "alice3" {
		t.Errorf("alice's last alert = %q", a)
	}
	if a, _ := s.Alerts("al", 10); len(a) != 1 || string(a[0]) != "al1" {
		t.Errorf("al's alerts = %q", a)
	}
}

// TestAlertsPruned: an alert past AlertMaxAge goes at the next write;
// past keep, the oldest go whatever their account; the rest stay.
func TestAlertsPruned(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "smtpban.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	old := t0.Add(-AlertMaxAge - time.Minute)
	if err := s.PutAlert(old, "alice", []byte("ancient")); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Alerts("alice", 10); len(a) != 1 {
		t.Fatalf("before the next write alice has %q", a)
	}
	if err := s.PutAlert(t0, "bob", []byte("bob0")); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Alerts("alice", 10); len(a) != 0 {
		t.Errorf("alert older than %v kept: %q", AlertMaxAge, a)
	}
	// Alerts of three accounts, interleaved in time: bob0 (t0), then
	// carol1, al2, carol3, al4 a minute apart.
	for i, u := range []string{"carol", "al", "carol", "al"} {
		if err := s.PutAlert(t0.Add(time.Duration(i+1)*time.Minute), u, fmt.Appendf(nil, "%s%d", u, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneAlerts(t0.Add(-AlertMaxAge), 3)
	if err != nil || n != 2 {
		t.Errorf("PruneAlerts = %d, %v; want 2 (bob0, carol1)", n, err)
	}
	var names []string
	for _, u := range []string{"al", "bob", "carol"} {
		a, err := s.Alerts(u, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range a {
			names = append(names, string(v))
		}
	}
	if got := strings.Join(names, " "); got != "al4 al2 carol3" {
		t.Errorf("alerts kept = %q, want the newest three: al4 al2 carol3", got)
	}
	// A write dated in the future does not age out the others.
	if err := s.PutAlert(time.Now().Add(AlertMaxAge+24*time.Hour), "mallory", []byte("future")); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Alerts("al", 10); len(a) != 2 {
		t.Errorf("after a future-dated alert al has %q, want al4 al2", a)
	}
}
