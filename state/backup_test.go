package state

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestExportMerge: an export read back and merged into another store: the
// later until wins, expired entries are skipped, a history keeps the higher
// count, and a bad line is reported, not fatal.
func TestExportMerge(t *testing.T) {
	a, b := mustOpen(t), mustOpen(t)
	now := t0.Add(10 * time.Minute)
	if _, err := a.PutBans([]Ban{ban("203.0.113.1", 0, time.Hour), ban("203.0.113.2", 0, 2*time.Hour), ban("203.0.113.3", 0, 5*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutAllow(pfx("192.0.2.0/24"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	// b has .2 ending later than the export, .1 ending earlier.
	if _, err := b.PutBans([]Ban{ban("203.0.113.1", 0, 30*time.Minute), ban("203.0.113.2", 0, 3*time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := a.Export(&buf, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2+1+3 { // .3 expired at now: left out; three histories
		t.Errorf("exported %d records, want 6:\n%s", n, buf.String())
	}
	in := buf.String() + "{not json\n" + `{"type":"ban","jail":"x"}` + "\n" +
		fmt.Sprintf(`{"type":"ban","prefix":"198.51.100.1/32","jail":"x","since":%q,"until":%q}`+"\n",
			t0.Add(-time.Hour).Format(time.RFC3339), t0.Add(-30*time.Minute).Format(time.RFC3339))
	m, bad, err := ReadExport(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 {
		t.Errorf("bad lines %v, want 2", bad)
	}
	res, err := b.Merge(m, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Bans) != 1 || res.Bans[0].Prefix != pfx("203.0.113.1") || res.Kept != 1 || res.Expired != 1 || res.Allows != 1 {
		t.Errorf("merge result %+v, want .1 written, .2 kept, one expired, one allow", res)
	}
	for p, want := range map[string]time.Time{"203.0.113.1": t0.Add(time.Hour), "203.0.113.2": t0.Add(3 * time.Hour)} {
		got, ok, _ := b.Ban(pfx(p))
		if !ok || !got.Until.Equal(want) {
			t.Errorf("%s after merge: %+v, want until %v", p, got, want)
		}
	}
	if c, _, _ := b.BanHistory(pfx("203.0.113.3")); c != 1 {
		t.Errorf("history of .3 = %d, want 1 (imported)", c)
	}
	if _, _, err := ReadExport(strings.NewReader(`{"type":"header","format":"smtpban-export","version":99}` + "\n")); err == nil {
		t.Error("a newer export version was read")
	}
	if _, _, err := ReadExport(strings.NewReader("hello\n")); err == nil {
		t.Error("a file that is not an export was read")
	}
}
