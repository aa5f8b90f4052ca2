package fail2ban

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// now is the time testdata/gen.py wrote the database at.
var now = time.Unix(1764000000, 0)

// TestReadFail2banDatabase reads a database that Debian 12's fail2ban
// wrote itself (testdata/gen.py): 406 rows over many pages, one whose
// matches overflow onto further pages, a permanent ban, an IPv6 one.
func TestReadFail2banDatabase(t *testing.T) {
	bans, err := Read("testdata/fail2ban.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 406 {
		t.Errorf("%d rows, want 406", len(bans))
	}
	var active []string
	for _, b := range bans {
		if b.Active(now) {
			active = append(active, fmt.Sprintf("%s %s left=%v permanent=%v count=%d", b.Jail, b.ID, b.Left(now), b.Permanent, b.Count))
		}
	}
	want := []string{
		"dovecot 203.0.113.7 left=1h59m0s permanent=false count=1",
		"dovecot 2001:db8::7 left=23h59m0s permanent=false count=3",
		"postfix-sasl 203.0.113.7 left=50m0s permanent=false count=1",
		"postfix-sasl 127.0.0.1 left=59m30s permanent=false count=1",
		"recidive 203.0.113.50 left=0s permanent=true count=1",
		"sshd 192.0.2.200 left=8m20s permanent=false count=1",
	}
	if strings.Join(active, "\n") != strings.Join(want, "\n") {
		t.Errorf("active bans:\n%s\nwant:\n%s", strings.Join(active, "\n"), strings.Join(want, "\n"))
	}
}

// TestAgainstSQLite compares every row with what the sqlite3 program reads
// from the same file, when it is installed.
func TestAgainstSQLite(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sqlite3 is needed to cross-check the reader; .ci/run installs it")
		}
		t.Skip("sqlite3 not installed: the reader is not cross-checked")
	}
	out, err := exec.Command("sqlite3", "-separator", " ", "testdata/fail2ban.sqlite3",
		"SELECT jail, ip, timeofban, bantime, bancount FROM bips ORDER BY jail, timeofban, rowid").Output()
	if err != nil {
		t.Fatal(err)
	}
	bans, err := Read("testdata/fail2ban.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bans {
		bt := int64(b.For / time.Second)
		if b.Permanent {
			bt = -1
		}
		got = append(got, fmt.Sprintf("%s %s %d %d %d", b.Jail, b.ID, b.At.Unix(), bt, b.Count))
	}
	if g, w := strings.Join(got, "\n"), strings.TrimSpace(string(out)); g != w {
		t.Errorf("reader and sqlite3 differ:\n%s", diffLines(g, w))
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d: reader %q, sqlite3 %q", i+1, x, y))
		}
		if len(out) > 5 {
			break
		}
	}
	return strings.Join(out, "\n")
}

func TestPrefix(t *testing.T) {
	for id, want := range map[string]string{
		"203.0.113.7": "203.0.113.7/32", "2001:db8::7": "2001:db8::7/128", "::ffff:192.0.2.1": "192.0.2.1/32",
		"192.0.2.0/24": "192.0.2.0/24", "192.0.2.9/24": "192.0.2.0/24", "mail.example.com": "", "": "",
	} {
		p, err := Ban{ID: id}.Prefix()
		if want == "" {
			if err == nil {
				t.Errorf("Prefix(%q) = %v, want an error", id, p)
			}
			continue
		}
		if err != nil || p != netip.MustParsePrefix(want) {
			t.Errorf("Prefix(%q) = %v, %v; want %s", id, p, err, want)
		}
	}
}

// TestBadFiles: what is not a fail2ban database is refused with a reason,
// never a panic, whatever bytes it holds.
func TestBadFiles(t *testing.T) {
	good, err := os.ReadFile("testdata/fail2ban.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "header"},
		{"text", []byte(strings.Repeat("not a database\n", 20)), "no SQLite header"},
		{"truncated", good[:4096*3], "page"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// The real file with bytes changed at random: rows or an error, never
	// a panic, a hang or a huge allocation.
	rng := rand.New(rand.NewPCG(1, 2))
	p := filepath.Join(dir, "mutated")
	for range 300 {
		b := slices.Clone(good)
		for range 1 + rng.IntN(8) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		Read(p)
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file = %v, want ErrNotExist", err)
	}
}

// FuzzRead: any bytes give rows or an error, never a panic or a hang.
func FuzzRead(f *testing.F) {
	good, err := os.ReadFile("testdata/fail2ban.sqlite3")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:8192])
	f.Add(good)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "db")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		Read(p)
	})
}
