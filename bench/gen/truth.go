package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

// Truth is what each jail must find in the generated log: failure lines
// matched (a success line is not counted) and distinct addresses.
type Truth struct {
	Lines int                  `json:"lines"`
	Jails map[string]JailTruth `json:"jails"`
}

// JailTruth is one jail's share of a Truth.
type JailTruth struct {
	Matched   int `json:"matched"`
	Addresses int `json:"addresses"`
}

// tally counts, as lines are emitted, what each jail must match.
type tally struct {
	matched map[string]int
	addrs   map[string]map[string]struct{}
}

func newTally() *tally {
	return &tally{matched: map[string]int{}, addrs: map[string]map[string]struct{}{}}
}

func (t *tally) add(jail, addr string) {
	t.matched[jail]++
	s := t.addrs[jail]
	if s == nil {
		s = map[string]struct{}{}
		t.addrs[jail] = s
	}
	s[addr] = struct{}{}
}

func (t *tally) result(lines int) Truth {
	tr := Truth{Lines: lines, Jails: map[string]JailTruth{}}
	for j, m := range t.matched {
		tr.Jails[j] = JailTruth{Matched: m, Addresses: len(t.addrs[j])}
	}
	return tr
}

// replayEvent is the part of one `smtpban replay -json` object the check reads.
type replayEvent struct {
	Event string `json:"event"`
	Jail  string `json:"jail"`
	IP    string `json:"ip"`
}

// runCheck compares a replay's JSON stream with the truth file and returns
// an error naming every jail that differs.
func runCheck(truthPath string, in io.Reader, out io.Writer) error {
	b, err := os.ReadFile(truthPath)
	if err != nil {
		return fmt.Errorf("read truth: %w", err)
	}
	var want Truth
	if err := json.Unmarshal(b, &want); err != nil {
		return fmt.Errorf("decode truth %s: %w", truthPath, err)
	}
	got := newTally()
	bans := map[string]int{}
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	for {
		var ev replayEvent
		if err := dec.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("decode replay output: %w", err)
		}
		switch ev.Event {
		case "": // a failure match
			got.add(ev.Jail, ev.IP)
		case "ban":
			bans[ev.Jail]++
		}
	}
	names := map[string]bool{}
	for j := range want.Jails {
		names[j] = true
	}
	for j := range got.matched {
		names[j] = true
	}
	sorted := make([]string, 0, len(names))
	for j := range names {
		sorted = append(sorted, j)
	}
	sort.Strings(sorted)
	bad := 0
	fmt.Fprintf(out, "%-16s %10s %10s %10s %10s %8s\n", "JAIL", "MATCHED", "WANT", "ADDRS", "WANT", "BANS")
	for _, j := range sorted {
		w := want.Jails[j]
		m, a := got.matched[j], len(got.addrs[j])
		mark := ""
		if m != w.Matched || a != w.Addresses {
			mark = "  MISMATCH"
			bad++
		}
		fmt.Fprintf(out, "%-16s %10d %10d %10d %10d %8d%s\n", j, m, w.Matched, a, w.Addresses, bans[j], mark)
	}
	if bad > 0 {
		return fmt.Errorf("%d jail(s) differ from the truth file %s", bad, truthPath)
	}
	return nil
}
