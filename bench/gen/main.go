// Command gen writes a realistic syslog-layout mail log for the benchmarks
// (Postfix smtpd/cleanup/qmgr/local/virtual traffic, Dovecot logins, and a
// few percent of SASL failures, relay denials, unknown recipients and
// Dovecot auth failures from tens of thousands of IPv4 and IPv6 addresses)
// and a truth file: what each shipped jail must find in it, counted from
// what was emitted. The same -seed and -n give the same bytes.
//
//	gen -n 1000000 -seed 1 -out mail.log -truth truth.json
//	gen -check truth.json < replay.jsonl   # smtpban replay -json output
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 1_000_000, "lines to write")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("out", "mail.log", "log file to write")
	truthPath := flag.String("truth", "truth.json", "truth file to write")
	end := flag.String("end", "2026-11-23T23:59:59Z", "time stamp of the last line (RFC 3339); the log spans -rate lines/s before it")
	rate := flag.Float64("rate", 12, "average lines per second of log time")
	check := flag.String("check", "", "instead of generating: compare `smtpban replay -json` on stdin with this truth file")
	flag.Parse()

	if *check != "" {
		if err := runCheck(*check, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "gen -check:", err)
			os.Exit(1)
		}
		return
	}
	endT, err := time.Parse(time.RFC3339, *end)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen: -end:", err)
		os.Exit(2)
	}
	if err := generate(*n, *seed, *rate, endT, *out, *truthPath); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(n int, seed uint64, rate float64, end time.Time, out, truthPath string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	start := end.Add(-time.Duration(float64(n) / rate * float64(time.Second)))
	g := newGenerator(seed, n, start, rate, w)
	g.run()
	if g.err != nil {
		return fmt.Errorf("write log: %w", g.err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	// The replay infers a syslog stamp's year from the file's mtime.
	if err := os.Chtimes(out, end, end); err != nil {
		return fmt.Errorf("set log mtime: %w", err)
	}
	b, err := json.MarshalIndent(g.truth.result(n), "", "  ")
	if err != nil {
		return fmt.Errorf("encode truth: %w", err)
	}
	if err := os.WriteFile(truthPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	return nil
}
