package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		line string
		want time.Time
	}{
		{"198.18.0.1 1795548588.099690396", time.Unix(1795548588, 99690396)}, // date +%s.%N
		{"198.18.0.1 1795548588.099690", time.Unix(1795548588, 99690000)},    // bash EPOCHREALTIME
		{"198.18.0.1 1795548588", time.Unix(1795548588, 0)},
	} {
		a, got, err := parseRecord(tc.line)
		if err != nil {
			t.Fatalf("parseRecord(%q): %v", tc.line, err)
		}
		if a != netip.MustParseAddr("198.18.0.1") || !got.Equal(tc.want) {
			t.Errorf("parseRecord(%q) = %s %s, want 198.18.0.1 %s", tc.line, a, got, tc.want)
		}
	}
	for _, bad := range []string{"198.18.0.1", "x 1.5", "198.18.0.1 1.x"} {
		if _, _, err := parseRecord(bad); err == nil {
			t.Errorf("parseRecord(%q): no error", bad)
		}
	}
}

func TestPct(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i))
	}
	s := summarize(ds)
	if s.p50 != 100 || s.p90 != 180 || s.p99 != 198 || s.max != 200 {
		t.Errorf("summarize(1..200) = %+v, want p50 100 p90 180 p99 198 max 200", s)
	}
}

func TestRecordsSeesLinesAcrossReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r")
	r := &records{path: path, seen: map[netip.Addr]time.Time{}}
	if err := r.read(); err != nil { // no file yet
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("198.18.0.1 10.5\n198.18.0.2 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.read(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.seen[netip.MustParseAddr("198.18.0.2")]; ok {
		t.Fatal("a partial line was taken as a record")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("1.25\n")
	f.Close()
	if err := r.read(); err != nil {
		t.Fatal(err)
	}
	if got := r.seen[netip.MustParseAddr("198.18.0.2")]; !got.Equal(time.Unix(11, 250000000)) {
		t.Errorf("198.18.0.2 at %s, want 11.25 s", got)
	}
}

func TestParseF2bLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fail2ban.log")
	log := `2026-11-24 19:29:48,100 fail2ban.filter         [1]: INFO    [bench] Found 198.18.0.1 - 2026-11-24 19:29:48
2026-11-24 19:29:48,200 fail2ban.filter         [1]: INFO    [bench] Found 198.18.0.1 - 2026-11-24 19:29:48
2026-11-24 19:29:48,567 fail2ban.actions        [1]: NOTICE  [bench] Ban 198.18.0.1
2026-11-24 19:29:50,368 fail2ban.actions        [1]: NOTICE  [bench] Unban 198.18.0.1
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	found, banned, err := parseF2bLog(path)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("198.18.0.1")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05,000", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	if !found[a].Equal(at("2026-11-24 19:29:48,200")) {
		t.Errorf("found = %s, want the last Found line", found[a])
	}
	if !banned[a].Equal(at("2026-11-24 19:29:48,567")) {
		t.Errorf("banned = %s, want the Ban line (not Unban)", banned[a])
	}
}
