package replay_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"smtpban/internal/config"
	"smtpban/internal/logline"
	"smtpban/internal/replay"
	"smtpban/jails"
)

// replayJSON runs replay with o (JSON on) and returns its objects as maps.
func replayJSON(t *testing.T, o replay.Options) []map[string]any {
	t.Helper()
	var out bytes.Buffer
	o.JSON, o.Out = true, &out
	if err := replay.Run(context.Background(), o); err != nil {
		t.Fatalf("replay: %v", err)
	}
	var objs []map[string]any
	dec := json.NewDecoder(&out)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("replay output: %v", err)
		}
		objs = append(objs, m)
	}
	return objs
}

// matchesOf keeps the match and success objects, without the file name.
func matchesOf(objs []map[string]any) []string {
	var out []string
	for _, m := range objs {
		if m["event"] == "ban" || m["event"] == "missed" {
			continue
		}
		out = append(out, fmt.Sprintf("%v %v %v %v %v", m["event"], m["line"], m["jail"], m["ip"], m["user"]))
	}
	return out
}

// TestReplayGzipAndStdin replays a corpus file as it is, gzip-compressed
// under a rotated name, and from standard input: the same matches each way.
func TestReplayGzipAndStdin(t *testing.T) {
	c := loadShipped(t)
	src := filepath.Join(corpusDir, "dovecot-pam.log")
	plain, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(t.TempDir(), "mail.log.2.gz")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(plain)
	zw.Close()
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	want := matchesOf(replayJSON(t, replay.Options{Config: c, Files: []string{src}}))
	if len(want) < 40 {
		t.Fatalf("%d matches from %s, want the corpus's 40 or more", len(want), src)
	}
	if got := matchesOf(replayJSON(t, replay.Options{Config: c, Files: []string{gz}})); !slices.Equal(got, want) {
		t.Errorf(".gz: %d matches, want %d:\n%v", len(got), len(want), got)
	}
	if got := matchesOf(replayJSON(t, replay.Options{Config: c, Files: []string{"-"}, Stdin: bytes.NewReader(plain)})); !slices.Equal(got, want) {
		t.Errorf("stdin: %d matches, want %d", len(got), len(want))
	}
	// A gzip stream read from standard input is decompressed too.
	if got := matchesOf(replayJSON(t, replay.Options{Config: c, Files: []string{"-"}, Stdin: bytes.NewReader(zb.Bytes())})); !slices.Equal(got, want) {
		t.Errorf("gzip on stdin: %d matches, want %d", len(got), len(want))
	}
}

// TestReplayMissed writes a log of a hit, two near misses (a jail's
// literal, its program, no failregex matches) and lines without any
// literal, and checks -missed names exactly the near misses, for the
// jails whose literal they hold.
func TestReplayMissed(t *testing.T) {
	c := loadShipped(t)
	log := strings.Join([]string{
		// postfix-sasl hit.
		"Nov 24 16:04:04 mx1 postfix/smtpd[1]: warning: unknown[203.0.113.7]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice",
		// A form postfix-sasl does not know: " authentication failed: " in another place.
		"Nov 24 16:04:05 mx1 postfix/smtpd[1]: warning: 203.0.113.8 SASL PLAIN authentication failed: x",
		// A login-process line with "(auth failed, " and no rip=.
		"Nov 24 16:04:06 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, method=PLAIN",
		// The literal, but from a program no jail with it reads.
		"Nov 24 16:04:07 mx1 cron[2]: SASL PLAIN authentication failed: x",
		// No literal at all.
		"Nov 24 16:04:08 mx1 postfix/smtpd[1]: connect from unknown[203.0.113.9]",
		// Matched, then voided by an ignoreregex: known, not missed.
		"Nov 24 16:04:09 mx1 postfix/smtpd[1]: warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: Connection lost to authentication server",
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	var missed []string
	for _, m := range replayJSON(t, replay.Options{Config: c, Files: []string{path}, Missed: true}) {
		if m["event"] == "missed" {
			missed = append(missed, fmt.Sprintf("%v %v", m["line"], m["jail"]))
		}
	}
	want := []string{"2 postfix-sasl", "3 dovecot"}
	if !slices.Equal(missed, want) {
		t.Errorf("missed %v, want %v", missed, want)
	}

	// The text report lists them and counts them per jail.
	var out bytes.Buffer
	if err := replay.Run(context.Background(), replay.Options{Config: c, Files: []string{path}, Missed: true, Out: &out}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"missed postfix-sasl " + path + ":2: ",
		"missed dovecot " + path + ":3: ",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
	if !regexp.MustCompile(`(?m)^postfix-sasl +1 +1 +0 +1$`).MatchString(out.String()) {
		t.Errorf("report's postfix-sasl row is not MATCHED 1, ADDRESSES 1, BANS 0, MISSED 1:\n%s", out.String())
	}
}

// TestReplayPatternCounts checks replay's per-pattern table against
// jails.Explain run over every line of every corpus file: for each jail,
// each failregex, ignoreregex and successregex decided as many lines as
// the report says. The disabled jails are marked "(off)".
func TestReplayPatternCounts(t *testing.T) {
	c := loadShipped(t)
	for _, file := range corpusFiles(t) {
		lines := readCorpus(t, file)
		if len(lines) == 0 {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			var out bytes.Buffer
			err := replay.Run(context.Background(), replay.Options{Config: c, Files: []string{file}, Out: &out, Format: lines[0].format.String()})
			if err != nil {
				t.Fatal(err)
			}
			got := parsePatternTable(t, out.String())
			want := explainCounts(t, c, file, lines[0].format)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("per-pattern counts\n got  %v\n want %v\n%s", got, want, out.String())
			}
			for _, j := range c.Jails {
				row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(j.Name) + `( \(off\))? `).FindStringSubmatch(out.String())
				if row == nil || (row[1] != "") == j.Enabled {
					t.Errorf("jail %s (enabled=%v): row %q", j.Name, j.Enabled, row)
				}
			}
		})
	}
}

// explainCounts counts, per jail and pattern, the lines each decides, as
// Explain says, over file: the reference for replay's table. Jails that
// decided nothing are left out, as the table leaves them out.
func explainCounts(t *testing.T, c *config.Config, file string, format logline.Format) map[string]map[string]int {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	counts := map[string]map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := logline.Decode(format, logline.Clean(sc.Text()), fi.ModTime())
		for _, j := range c.Jails {
			e := jails.Explain(j, &l)
			if e.Deciding == nil || e.Verdict == jails.VerdictBadHost {
				continue
			}
			if counts[j.Name] == nil {
				counts[j.Name] = map[string]int{}
			}
			counts[j.Name][e.Deciding.Kind+" "+strconv.Itoa(e.Deciding.Index+1)]++
		}
	}
	return counts
}

// parsePatternTable reads the "JAIL: lines per pattern" sections of a text
// report, keeping the patterns with lines.
func parsePatternTable(t *testing.T, report string) map[string]map[string]int {
	counts := map[string]map[string]int{}
	row := regexp.MustCompile(`^((?:failregex|ignoreregex|successregex) \d+)\s+(\d+)\s`)
	var jail string
	for _, line := range strings.Split(report, "\n") {
		if name, ok := strings.CutSuffix(line, ": lines per pattern"); ok {
			jail = name
			continue
		}
		if line == "" {
			jail = ""
		}
		if m := row.FindStringSubmatch(line); m != nil && jail != "" {
			n, _ := strconv.Atoi(m[2])
			if n == 0 {
				continue
			}
			if counts[jail] == nil {
				counts[jail] = map[string]int{}
			}
			counts[jail][m[1]] = n
		}
	}
	return counts
}
