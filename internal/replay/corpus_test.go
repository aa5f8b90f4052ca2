package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/logline"
	"smtpban/internal/replay"
	"smtpban/jails"
)

const (
	shippedMain = "../../configs/smtpban.hcl"
	corpusDir   = "../../configs/testdata"
)

// want is what the shipped jails must make of one corpus line: a failure
// or a success of jail, address and user ("" for none).
type want struct {
	kind, jail, addr, user string
}

func (w want) String() string { return fmt.Sprintf("%s %s %s %q", w.kind, w.jail, w.addr, w.user) }

// corpusLine is a log line of a corpus file and what it must give.
type corpusLine struct {
	n      int // 1-based line number in the file
	text   string
	want   []want
	format logline.Format // the file's layout: "# format: NAME", else syslog
}

// line decodes cl as a source of its file's format would.
func (cl corpusLine) line(read time.Time) *logline.Line {
	l := logline.Decode(cl.format, logline.Clean(cl.text), read)
	return &l
}

// readCorpus reads a corpus file: every log line follows one comment
// "# hit JAIL ADDR USER", "# success JAIL ADDR USER" (several joined by
// " | "; USER "-" for none) or "# none". "# format: NAME" gives the file's
// layout (logline.ParseFormat). Other comments are free text.
func readCorpus(tb testing.TB, path string) []corpusLine {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	var pending []want
	var have bool
	var format logline.Format
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# format: "); ok {
			if format, err = logline.ParseFormat(name); err != nil {
				tb.Fatalf("%s:%d: %v", path, n, err)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			ws, isWant := parseWant(tb, path, n, rest)
			if isWant {
				if have {
					tb.Fatalf("%s:%d: two expectations in a row", path, n)
				}
				pending, have = ws, true
			}
			continue
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !have {
			tb.Fatalf("%s:%d: log line without an expectation before it", path, n)
		}
		out = append(out, corpusLine{n: n, text: line, want: pending, format: format})
		pending, have = nil, false
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func parseWant(tb testing.TB, path string, n int, s string) ([]want, bool) {
	if s == "none" {
		return nil, true
	}
	if !strings.HasPrefix(s, "hit ") && !strings.HasPrefix(s, "success ") {
		return nil, false
	}
	var ws []want
	for part := range strings.SplitSeq(s, " | ") {
		f := strings.SplitN(part, " ", 4)
		if len(f) != 4 || (f[0] != "hit" && f[0] != "success") {
			tb.Fatalf("%s:%d: bad expectation %q", path, n, part)
		}
		if f[3] == "-" {
			f[3] = ""
		}
		ws = append(ws, want{kind: f[0], jail: f[1], addr: f[2], user: f[3]})
	}
	return ws, true
}

func loadShipped(tb testing.TB) *config.Config {
	tb.Helper()
	c, ds := config.Load(shippedMain)
	if c == nil || len(ds) > 0 {
		tb.Fatalf("load %s:\n%v", shippedMain, ds)
	}
	return c
}

func corpusFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.log"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	return files
}

func sortWants(ws []want) []want {
	slices.SortFunc(ws, func(a, b want) int { return strings.Compare(a.String(), b.String()) })
	return ws
}

// TestCorpusMatcher runs every corpus line through the daemon's matcher
// over the shipped config (every jail, enabled or not) and checks each
// hit's jail, address and user, failures and successes alike.
func TestCorpusMatcher(t *testing.T) {
	c := loadShipped(t)
	m := jails.NewMatcher(c.Jails)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, file := range corpusFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, cl := range readCorpus(t, file) {
				var got []want
				for _, h := range m.Match("", cl.line(read), nil) {
					kind := "hit"
					if h.Success {
						kind = "success"
					}
					got = append(got, want{kind: kind, jail: h.Jail.Name, addr: h.Addr.String(), user: h.User})
				}
				if !slices.Equal(sortWants(got), sortWants(slices.Clone(cl.want))) {
					t.Errorf("line %d: got %v, want %v\n  %s", cl.n, got, cl.want, cl.text)
				}
			}
		})
	}
}

// replayMatch is a match object of replay's JSON output.
type replayMatch struct {
	Event string `json:"event"`
	File  string `json:"file"`
	Line  int    `json:"line"`
	Jail  string `json:"jail"`
	IP    string `json:"ip"`
	User  string `json:"user"`
}

// runReplay replays files through the named jails (all if none) and
// returns its JSON objects.
func runReplay(t *testing.T, c *config.Config, names []string, format logline.Format, files ...string) []replayMatch {
	t.Helper()
	var out bytes.Buffer
	err := replay.Run(context.Background(), replay.Options{Config: c, Jails: names, Files: files, JSON: true, Out: &out, Format: format.String()})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var ms []replayMatch
	dec := json.NewDecoder(&out)
	for dec.More() {
		var m replayMatch
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("replay output: %v", err)
		}
		ms = append(ms, m)
	}
	return ms
}

// TestCorpusReplay runs every corpus file through replay (JSON, every
// jail) and checks each reported match's file, line, jail, address and
// user; successful logins come out as "event": "success".
func TestCorpusReplay(t *testing.T) {
	c := loadShipped(t)
	for _, file := range corpusFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			wantBy := map[int][]want{}
			lines := readCorpus(t, file)
			for _, cl := range lines {
				for _, w := range cl.want {
					wantBy[cl.n] = append(wantBy[cl.n], want{kind: w.kind, jail: w.jail, addr: w.addr, user: w.user})
				}
			}
			gotBy := map[int][]want{}
			format := logline.Syslog
			if len(lines) > 0 {
				format = lines[0].format
			}
			for _, m := range runReplay(t, c, nil, format, file) {
				if m.Event == "ban" {
					continue
				}
				if m.File != file {
					t.Errorf("match names file %q, want %q", m.File, file)
				}
				kind := "hit"
				if m.Event == "success" {
					kind = "success"
				}
				gotBy[m.Line] = append(gotBy[m.Line], want{kind: kind, jail: m.Jail, addr: m.IP, user: m.User})
			}
			for n := range mergeKeys(wantBy, gotBy) {
				if g, w := sortWants(gotBy[n]), sortWants(wantBy[n]); !slices.Equal(g, w) {
					t.Errorf("line %d: replay gave %v, want %v", n, g, w)
				}
			}
		})
	}
}

func mergeKeys(a, b map[int][]want) map[int]bool {
	out := map[int]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// TestCorpusSize holds the corpus to its minimum: for each shipped jail,
// at least 10 lines it must hit and 5 lines of its own file it must not.
func TestCorpusSize(t *testing.T) {
	c := loadShipped(t)
	for _, j := range c.Jails {
		file := filepath.Join(corpusDir, j.Name+".log")
		if _, err := os.Stat(file); err != nil {
			t.Errorf("jail %s has no corpus: %v", j.Name, err)
			continue
		}
		var pos, neg int
		for _, cl := range readCorpus(t, file) {
			hit := slices.ContainsFunc(cl.want, func(w want) bool { return w.kind == "hit" && w.jail == j.Name })
			if hit {
				pos++
			} else if !slices.ContainsFunc(cl.want, func(w want) bool { return w.jail == j.Name }) {
				neg++
			}
		}
		t.Logf("%-14s %2d positive, %2d negative", j.Name, pos, neg)
		if pos < 10 || neg < 5 {
			t.Errorf("jail %s: %d positive and %d negative lines, want at least 10 and 5", j.Name, pos, neg)
		}
	}
}

// TestCountOnceThroughDovecot is the double-logging story: Postfix
// authenticating through Dovecot logs each failed AUTH in smtpd and in
// Dovecot's auth process. The shipped enabled jails count each attempt
// once: 4 attempts (8 lines) ban nobody, the 5th bans once, in
// postfix-sasl, with 5 failures.
func TestCountOnceThroughDovecot(t *testing.T) {
	c := loadShipped(t)
	file := filepath.Join(corpusDir, "postfix-dovecot.log")
	lines := readCorpus(t, file)
	if len(lines) != 10 {
		t.Fatalf("%s: %d lines, want 10 (5 attempts, 2 lines each)", file, len(lines))
	}
	enabled := c.EnabledJails()

	// The daemon's way: matcher, then counter, line by line.
	m := jails.NewMatcher(enabled)
	ctr := jails.NewCounter(0, enabled...)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	failures := map[string]int{}
	var bans []jails.Decision
	for i, cl := range lines {
		for _, h := range m.Match("mail", cl.line(read), nil) {
			failures[h.Jail.Name] += h.Failures()
			if d, ok := ctr.Add(h); ok {
				if i < len(lines)-2 {
					t.Fatalf("banned after %d attempts (line %d): %+v", i/2+1, cl.n, d)
				}
				bans = append(bans, d)
			}
		}
	}
	if len(failures) != 1 || failures["postfix-sasl"] != 5 {
		t.Errorf("failures counted %v, want postfix-sasl: 5 and nothing else", failures)
	}
	if len(bans) != 1 || bans[0].Jail.Name != "postfix-sasl" || bans[0].Failures != 5 || bans[0].Addr != netip.MustParseAddr("203.0.113.50") {
		t.Errorf("bans %+v, want one postfix-sasl ban of 203.0.113.50 with 5 failures", bans)
	}

	// Replay over the enabled jails agrees.
	var names []string
	for _, j := range enabled {
		names = append(names, j.Name)
	}
	var replayBans []replayMatch
	for _, rm := range runReplay(t, c, names, logline.Syslog, file) {
		if rm.Event == "ban" {
			replayBans = append(replayBans, rm)
		}
	}
	if len(replayBans) != 1 || replayBans[0].Jail != "postfix-sasl" {
		t.Errorf("replay bans %+v, want one by postfix-sasl", replayBans)
	}
}
