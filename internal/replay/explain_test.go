package replay_test

import (
	"path/filepath"
	"testing"
	"time"

	"smtpban/jails"
)

// TestExplainAgreesWithMatcher runs every corpus line through every
// shipped jail both ways: jails.Explain (what `smtpban test` and replay's
// per-pattern counts show) must give exactly the matcher's hit, with the
// same address, user and deciding pattern, and no hit where the matcher
// gives none.
func TestExplainAgreesWithMatcher(t *testing.T) {
	c := loadShipped(t)
	m := jails.NewMatcher(c.Jails)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	var checked, hits int
	for _, file := range corpusFiles(t) {
		for _, cl := range readCorpus(t, file) {
			l := cl.line(read)
			byJail := map[string]jails.Hit{}
			for _, h := range m.Match("", l, nil) {
				byJail[h.Jail.Name] = h
			}
			for _, j := range c.Jails {
				e := jails.Explain(j, l)
				h, hit := byJail[j.Name]
				checked++
				switch {
				case !hit && (e.Verdict == jails.VerdictFailure || e.Verdict == jails.VerdictSuccess):
					t.Errorf("%s:%d: jail %s: Explain says %s (%s %d), the matcher gives no hit\n  %s", filepath.Base(file), cl.n, j.Name, e.Verdict, e.Deciding.Kind, e.Deciding.Index, cl.text)
				case hit && (e.Verdict != map[bool]string{false: jails.VerdictFailure, true: jails.VerdictSuccess}[h.Success]):
					t.Errorf("%s:%d: jail %s: the matcher gives a hit (success=%v), Explain says %s\n  %s", filepath.Base(file), cl.n, j.Name, h.Success, e.Verdict, cl.text)
				case hit:
					hits++
					d := e.Deciding
					if d.Addr != h.Addr || d.User != h.User || d.Index != h.Pattern || d.Pass != h.Pass {
						t.Errorf("%s:%d: jail %s: Explain took %s %q pattern %d pass %q, the matcher %s %q pattern %d pass %q", filepath.Base(file), cl.n, j.Name, d.Addr, d.User, d.Index, d.Pass, h.Addr, h.User, h.Pattern, h.Pass)
					}
				}
			}
		}
	}
	if hits < 100 {
		t.Errorf("only %d hits over %d (line, jail) pairs: the corpus did not load?", hits, checked)
	}
}
