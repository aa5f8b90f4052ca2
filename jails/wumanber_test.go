package jails

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestWuManberExact compares the skip search with strings.Contains on
// random literals and lines over a small alphabet (many partial matches,
// overlaps, literals that are suffixes of others, hash collisions).
func TestWuManberExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name     string
		nlit     int
		min, max int
		alphabet string
	}{
		{"one short", 1, wmMinWin, wmMinWin, "abc: "},
		{"few", 3, 6, 12, "abc: "},
		{"many", 40, 6, 30, "abc: "},
		{"long", 5, 60, 90, "abc: "},
		// A wide alphabet: most blocks shift by the full amount, the
		// path that looks two blocks ahead.
		{"sparse", 2, 11, 16, "abcdefghijklmnopqrstuvwxyz0123456789 :[]"},
	} {
		word := func(n int) string {
			b := make([]byte, n)
			for i := range b {
				b[i] = tc.alphabet[r.IntN(len(tc.alphabet))]
			}
			return string(b)
		}
		t.Run(tc.name, func(t *testing.T) {
			checked := 0
			for range 200 {
				var lits []string
				for range tc.nlit {
					lits = append(lits, word(tc.min+r.IntN(tc.max-tc.min+1)))
				}
				w := newWuManber(lits)
				if w == nil {
					t.Fatalf("no search for literals of %d bytes or more", tc.min)
				}
				for range 50 {
					line := word(r.IntN(200))
					if r.IntN(2) == 0 {
						i := r.IntN(len(line) + 1)
						line = line[:i] + lits[r.IntN(len(lits))] + line[i:]
					}
					seen := make([]uint64, (len(lits)+63)/64)
					w.scan(line, seen)
					for id, l := range lits {
						got := seen[id>>6]&(1<<(id&63)) != 0
						if want := strings.Contains(line, l); got != want {
							t.Fatalf("literal %q in %q: found %v, want %v", l, line, got, want)
						}
						if got {
							checked++
						}
					}
				}
			}
			if checked == 0 {
				t.Fatal("no literal ever occurred: the test checks nothing")
			}
		})
	}
	if newWuManber([]string{"long enough", "abc"}) != nil {
		t.Error("a literal shorter than wmMinWin must leave the automaton in charge")
	}
}
