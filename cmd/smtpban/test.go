package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"smtpban/internal/config"
	"smtpban/internal/logline"
	"smtpban/jails"
)

// testPattern is one pattern's result in `smtpban test -json`.
type testPattern struct {
	Kind    string `json:"kind"`
	Index   int    `json:"index"` // 1-based, as replay's table numbers them
	Matched bool   `json:"matched"`
	BadHost bool   `json:"bad_host,omitempty"`
	IP      string `json:"ip,omitempty"`
	User    string `json:"user,omitempty"`
	Count   int    `json:"count,omitempty"`
	Pass    string `json:"pass,omitempty"`
	Expr    string `json:"expr"`
}

// testJail is what one jail makes of the line in `smtpban test -json`.
type testJail struct {
	Jail     string        `json:"jail"`
	Enabled  bool          `json:"enabled"`
	Programs []string      `json:"programs"`
	Reads    bool          `json:"reads_program"`
	Verdict  string        `json:"verdict"`
	IP       string        `json:"ip,omitempty"`
	User     string        `json:"user,omitempty"`
	Pattern  string        `json:"pattern,omitempty"` // "failregex 1"
	Patterns []testPattern `json:"patterns"`
}

type testResult struct {
	Program string     `json:"program"`
	Message string     `json:"message"`
	Jails   []testJail `json:"jails"`
}

// runTest shows what jails make of one log line: `smtpban test JAIL
// 'LINE'`, or `smtpban test -line 'LINE' [JAIL]...` (every jail if none).
func runTest(ctx context.Context, e *env, args []string) error {
	fs := e.flags("test")
	jsonOut := fs.Bool("json", false, "print JSON")
	lineFlag := fs.String("line", "", "the log line (then the arguments are jail names, default every jail)")
	format := fs.String("format", "syslog", "the line's layout: syslog, dovecot (Dovecot's log_path) or exim (Exim's main log)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	text, names := *lineFlag, pos
	if text == "" {
		if len(pos) != 2 {
			return usagef("give JAIL and 'LINE', or -line 'LINE' [JAIL]...")
		}
		names, text = pos[:1], pos[1]
	}
	f, err := logline.ParseFormat(*format)
	if err != nil {
		return usagef("%v", err)
	}
	cfg, diags := config.Load(e.configPath)
	if diags.HasErrors() {
		for _, d := range diags {
			fmt.Fprintln(e.stderr, d.String())
		}
		return errReported
	}
	js := cfg.Jails
	if len(names) > 0 {
		js = nil
		for _, n := range names {
			i := slices.IndexFunc(cfg.Jails, func(j *jails.Jail) bool { return j.Name == n })
			if i < 0 {
				return fmt.Errorf("no jail named %q in %s", n, e.configPath)
			}
			js = append(js, cfg.Jails[i])
		}
	}
	l := logline.Decode(f, logline.Clean(strings.TrimRight(text, "\r\n")), e.now())
	r := testResult{Program: l.Program, Message: l.Message}
	for _, j := range js {
		r.Jails = append(r.Jails, explainJail(j, &l))
	}
	if *jsonOut {
		return e.printJSON(r)
	}
	return printTest(e, r, len(names) == 0)
}

func explainJail(j *jails.Jail, l *logline.Line) testJail {
	x := jails.Explain(j, l)
	tj := testJail{Jail: j.Name, Enabled: j.Enabled, Programs: j.Programs, Reads: x.Program, Verdict: x.Verdict}
	if d := x.Deciding; d != nil {
		tj.Pattern = fmt.Sprintf("%s %d", d.Kind, d.Index+1)
		if d.Matched && !d.BadHost {
			tj.IP, tj.User = d.Addr.String(), d.User
		}
	}
	for _, p := range x.Patterns {
		tp := testPattern{Kind: p.Kind, Index: p.Index + 1, Matched: p.Matched, BadHost: p.BadHost, User: p.User, Count: p.Count, Pass: p.Pass, Expr: p.Pattern.String()}
		if p.Matched && !p.BadHost && p.Addr.IsValid() {
			tp.IP = p.Addr.String()
		}
		tj.Patterns = append(tj.Patterns, tp)
	}
	return tj
}

// printTest writes the result; with every jail, only those that read the
// line's program or whose patterns match it, the others summed up.
func printTest(e *env, r testResult, all bool) error {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "program %q, message %q\n", r.Program, r.Message)
	if r.Program == "" {
		fmt.Fprintln(w, "(no program: give the whole line as the log has it, with its IDENT[PID]: , or -format for Dovecot's or Exim's own logs)")
	}
	var quiet []string
	for _, tj := range r.Jails {
		any := false
		for _, p := range tj.Patterns {
			any = any || p.Matched
		}
		if all && !tj.Reads && !any {
			quiet = append(quiet, tj.Jail)
			continue
		}
		state := "on"
		if !tj.Enabled {
			state = "off"
		}
		fmt.Fprintf(w, "\n%s (%s): %s", tj.Jail, state, verdictText(tj, r.Program))
		fmt.Fprintln(w)
		for _, p := range tj.Patterns {
			res := "-"
			switch {
			case p.BadHost:
				res = "matched, but <HOST> is no address"
			case p.Matched && p.IP != "":
				res = "matched: " + p.IP
				if p.User != "" {
					res += fmt.Sprintf(" user %q", p.User)
				}
				if p.Count > 0 {
					res += fmt.Sprintf(" count %d", p.Count)
				}
				if p.Pass != "" {
					res += " pass " + p.Pass
				}
			case p.Matched:
				res = "matched"
			}
			fmt.Fprintf(w, "  %s %d\t%s\t%s\n", p.Kind, p.Index, res, shortExpr(p.Expr))
		}
	}
	if len(quiet) > 0 {
		fmt.Fprintf(w, "\nnot reading program %q and no pattern matching: %s\n", r.Program, strings.Join(quiet, ", "))
	}
	return w.Flush()
}

func verdictText(tj testJail, program string) string {
	switch tj.Verdict {
	case jails.VerdictNotProgram:
		return fmt.Sprintf("does not read program %q (programs = %q): never sees this line", program, tj.Programs)
	case jails.VerdictFailure:
		s := "failure of " + tj.IP
		if tj.User != "" {
			s += fmt.Sprintf(", user %q", tj.User)
		}
		return s + " (" + tj.Pattern + ")"
	case jails.VerdictSuccess:
		return fmt.Sprintf("successful login of %s, user %q (%s): clears that user's failures", tj.IP, tj.User, tj.Pattern)
	case jails.VerdictIgnored:
		return "a failregex matched, but " + tj.Pattern + " voids it: not counted"
	case jails.VerdictBadHost:
		return tj.Pattern + " matched, but what <HOST> took is not an address: not counted"
	}
	return "no pattern matches: not counted"
}

func shortExpr(s string) string {
	if len(s) > 70 {
		return s[:70] + "..."
	}
	return s
}
