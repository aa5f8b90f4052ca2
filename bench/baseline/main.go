// Command baseline measures the plain Go loops issue 6 quotes as
// baselines for the matcher, on one log file, in the same run as smtpban
// replay: read every line with bufio, then run (a) one failregex on every
// line, (b) the same behind a bytes.Contains prefilter, (c) every
// failregex of every shipped jail on every line, (d) the same behind
// prefilters. The regexes are the shipped ones with <HOST> expanded the
// way the jails package does; nothing of the jails matcher is used.
//
//	baseline -config configs/smtpban.hcl -runs 5 /tmp/b/mail.log
//
// Pin it with taskset for one-core figures. Each case is timed inside the
// process (read and match, not start-up or compilation); the median of
// -runs passes is printed, with the match count so a wrong regex shows.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"smtpban/internal/config"
)

func main() {
	cfgPath := flag.String("config", "configs/smtpban.hcl", "smtpban config whose jails give the regexes")
	one := flag.String("jail", "postfix-sasl", "jail whose first failregex is the one-regex case")
	runs := flag.Int("runs", 5, "passes per case; the median is printed")
	flag.Parse()
	if flag.NArg() != 1 || *runs < 1 {
		fmt.Fprintln(os.Stderr, "usage: baseline [-config FILE] [-jail NAME] [-runs N] LOGFILE")
		os.Exit(2)
	}
	if err := run(*cfgPath, *one, *runs, flag.Arg(0), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(cfgPath, oneJail string, runs int, logPath string, out io.Writer) error {
	all, err := shippedRegexes(cfgPath)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(all, func(r namedRegex) bool { return r.jail == oneJail })
	if i < 0 {
		return fmt.Errorf("no jail %q with a failregex in %s", oneJail, cfgPath)
	}
	for _, r := range all {
		fmt.Fprintf(out, "regex %-16s prefilter %q\n", r.jail, r.literal)
	}
	cases := []struct {
		name  string
		match matchFunc
	}{
		{"read only (bufio.Scanner)", func([]byte) int { return 0 }},
		{"1 regex (" + oneJail + ") on every line", everyLine(all[i : i+1])},
		{"1 regex behind bytes.Contains", prefiltered(all[i : i+1])},
		{fmt.Sprintf("%d regexes (all jails) on every line", len(all)), everyLine(all)},
		{fmt.Sprintf("%d regexes behind bytes.Contains", len(all)), prefiltered(all)},
	}
	fmt.Fprintf(out, "| Go loop | seconds (median of %d) | M lines/s | matches |\n|---|---:|---:|---:|\n", runs)
	for _, c := range cases {
		res, err := timeCase(logPath, c.match, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(out, "| %-40s | %8.3f | %7.2f | %8d |\n", c.name, res.seconds, float64(res.lines)/res.seconds/1e6, res.matches)
		fmt.Fprintf(out, "RESULT case=%q seconds=%.6f lines=%d matches=%d\n", c.name, res.seconds, res.lines, res.matches)
	}
	return nil
}

// namedRegex is one shipped failregex, compiled with plain regexp.
type namedRegex struct {
	jail    string
	re      *regexp.Regexp
	literal []byte // required substring for the prefilter; nil means none
}

// shippedRegexes loads the config and compiles every failregex of every
// jail, enabled or not (as `smtpban replay` runs them all).
func shippedRegexes(cfgPath string) ([]namedRegex, error) {
	cfg, diags := config.Load(cfgPath)
	if cfg == nil {
		return nil, fmt.Errorf("loading %s: %v", cfgPath, diags)
	}
	var out []namedRegex
	for _, j := range cfg.Jails {
		for _, p := range j.Failregex {
			expanded := expandHost(p.String())
			re, err := regexp.Compile(expanded)
			if err != nil {
				return nil, fmt.Errorf("jail %s: compiling %q: %w", j.Name, expanded, err)
			}
			lit, err := requiredLiteral(expanded)
			if err != nil {
				return nil, fmt.Errorf("jail %s: %w", j.Name, err)
			}
			out = append(out, namedRegex{jail: j.Name, re: re, literal: []byte(lit)})
		}
	}
	return out, nil
}

// The <HOST> expansion, copied from jails/pattern.go (unexported there):
// a bracketed or bare IPv4 address, IPv6 address or host name, captured.
const (
	hostIPv4 = `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`
	hostIPv6 = `(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?`
	hostName = `[0-9A-Za-z_](?:[0-9A-Za-z_.-]*[0-9A-Za-z_])?`
	hostAddr = hostIPv4 + `|` + hostIPv6 + `|` + hostName
)

func expandHost(expr string) string {
	var b strings.Builder
	for n := 0; ; n++ {
		before, after, found := strings.Cut(expr, "<HOST>")
		b.WriteString(before)
		if !found {
			return b.String()
		}
		fmt.Fprintf(&b, `(?:\[(?P<h%db>%s)\]|(?P<h%d>%s))`, n, hostAddr, n, hostAddr)
		expr = after
	}
}

// requiredLiteral returns the longest case-sensitive literal that is a
// direct part of the regex's top-level sequence, trimmed of spaces: a
// substring every matching line holds, as someone writing the loop by
// hand would pick. "" if there is none.
func requiredLiteral(expr string) (string, error) {
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", fmt.Errorf("parsing %q: %w", expr, err)
	}
	tree = tree.Simplify()
	parts := []*syntax.Regexp{tree}
	if tree.Op == syntax.OpConcat {
		parts = tree.Sub
	}
	best := ""
	for _, p := range parts {
		if p.Op != syntax.OpLiteral || p.Flags&syntax.FoldCase != 0 {
			continue
		}
		if s := strings.TrimSpace(string(p.Rune)); len(s) > len(best) {
			best = s
		}
	}
	return best, nil
}

// matchFunc returns how many regexes matched the line.
type matchFunc func(line []byte) int

// everyLine runs every regex on every line, asking for the submatches as
// a ban tool must (it needs the address). Lines stay []byte: no
// allocation per line, so the read-only case is the floor.
func everyLine(rs []namedRegex) matchFunc {
	return func(line []byte) int {
		n := 0
		for _, r := range rs {
			if r.re.FindSubmatchIndex(line) != nil {
				n++
			}
		}
		return n
	}
}

// prefiltered runs a regex only on lines holding its literal
// (bytes.Contains, which is strings.Contains for []byte).
func prefiltered(rs []namedRegex) matchFunc {
	return func(line []byte) int {
		n := 0
		for _, r := range rs {
			if r.literal != nil && !bytes.Contains(line, r.literal) {
				continue
			}
			if r.re.FindSubmatchIndex(line) != nil {
				n++
			}
		}
		return n
	}
}

type result struct {
	seconds float64 // median over the runs
	lines   int
	matches int
}

func timeCase(path string, match matchFunc, runs int) (result, error) {
	var res result
	secs := make([]float64, 0, runs)
	for range runs {
		start := time.Now()
		lines, matches, err := scan(path, match)
		if err != nil {
			return res, err
		}
		secs = append(secs, time.Since(start).Seconds())
		res.lines, res.matches = lines, matches
	}
	slices.Sort(secs)
	res.seconds = secs[len(secs)/2]
	return res, nil
}

func scan(path string, match matchFunc) (lines, matches int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("opening log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines++
		matches += match(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return lines, matches, nil
}
