package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/control"
	"smtpban/internal/fail2ban"
)

// Exit codes; scripts branch on them.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitNotRunning = 3
)

// callTimeout bounds one command's talk with the daemon; a reload with
// many jails is the slowest.
const callTimeout = 2 * time.Minute

// env is what every command gets: the global flags and where to write.
type env struct {
	stdout, stderr io.Writer
	configPath     string
	socket         string // -socket; "" = from the config
	now            func() time.Time
}

// command is one subcommand.
type command struct {
	name  string
	args  string // the synopsis after the name
	short string
	run   func(ctx context.Context, e *env, args []string) error
}

// commands lists the subcommands; each is one line in `smtpban help`. A
// command parses its arguments with e.flags and parse, which print its
// usage for -h: `smtpban help NAME` runs it with -h (TestHelp checks that
// every command does).
func commands() []command {
	return []command{
		{"status", "[-json] [-utc] [-ack-recovery] [JAIL]", "daemon, jail and source counters; one jail with its banned list", runStatus},
		{"bans", "[-json] [-utc] [-jail J]", "active bans", runBans},
		{"ban", "[-jail J] [-for DUR] [-json] ADDR|PREFIX", "ban by hand (DUR like 90m, 12h, 2d, 1w)", runBan},
		{"unban", "[-jail J] [-local] [-json] ADDR|PREFIX | -all", "lift bans (on every host of a cluster, unless -local) and say which", runUnban},
		{"allow", "[-for DUR] [-json] ADDR|PREFIX | -list [-json] [-utc] | -remove ADDR|PREFIX", "the runtime allow list; allowing lifts bans", runAllow},
		{"accounts", "[-json] [-utc]", "accounts: messages, recipients, addresses in the last hour and day, held or not", runAccounts},
		{"account", "show [-json] [-utc] USER | release [-json] USER", "one account in detail; lift its hold (prints the postsuper line)", runAccount},
		{"reload", "[-json]", "re-read the config; an invalid one is rejected and the running one stays", runReload},
		{"check", "[-json] [FILE]", "check a config without a daemon", runCheck},
		{"replay", "[-jail NAME]... [-json] [-format F] [-missed] FILE|-... | -journal [-since 7d]", "run the jails over log files (.gz, - for stdin) or the journal, offline", runReplay},
		{"show", "[-json] [-utc] ADDR", "one address: its bans with their lines, ban history, failures counted now per jail", runShow},
		{"test", "[-json] [-format F] JAIL 'LINE' | -line 'LINE' [JAIL]...", "what jails make of one log line, pattern by pattern", runTest},
		{"version", "[-json]", "client and daemon versions", runVersion},
		{"import-fail2ban", "[-jail J] [-only F2BJAIL]... [-permanent DUR] [-dry-run] [-json] [DB]", "bring fail2ban's active bans over, with their time left (DB: " + fail2ban.DefaultPath + ")", runImportFail2ban},
		{"export", "[-o FILE]", "every ban, the allow list and ban history as JSON lines (a backup)", runExport},
		{"import", "[-json] FILE", "merge an export into the daemon: the later end wins, expired entries skipped", runImport},
	}
}

// usageError is a command line that cannot run; flag has already printed
// its own complaint when printed is set.
type usageError struct {
	msg     string
	printed bool
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, configPath: config.DefaultPath, now: time.Now}
	return e.main(ctx, args)
}

// main runs the command line in args; tests call it with their own clock.
func (e *env) main(ctx context.Context, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	fs := flag.NewFlagSet("smtpban", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e.globalFlags(fs)
	fs.Usage = func() {} // printed below: -h to stdout, mistakes to stderr
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.usage(stdout)
			return exitOK
		}
		e.usage(stderr)
		return exitUsage
	}
	if fs.NArg() == 0 {
		e.usage(stderr)
		return exitUsage
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		return e.help(ctx, rest)
	}
	if c, ok := e.lookup(name); ok {
		return e.exit(c, c.run(ctx, e, rest))
	}
	return exitUsage
}

// lookup finds the command name, or says it is unknown and which command
// was perhaps meant.
func (e *env) lookup(name string) (command, bool) {
	var names []string
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
		names = append(names, c.name)
	}
	fmt.Fprintf(e.stderr, "smtpban: unknown command %q", name)
	if s := suggest(name, names); s != "" {
		fmt.Fprintf(e.stderr, "; did you mean %q?", s)
	}
	fmt.Fprintf(e.stderr, "\n'smtpban help' lists the commands\n")
	return command{}, false
}

// help is `smtpban help [COMMAND]`: the list, or one command's arguments
// and flags, on stdout.
func (e *env) help(ctx context.Context, args []string) int {
	switch len(args) {
	case 0:
		e.usage(e.stdout)
		return exitOK
	case 1:
		if args[0] == "help" {
			fmt.Fprintln(e.stdout, "usage: smtpban help [COMMAND]")
			return exitOK
		}
		c, ok := e.lookup(args[0])
		if !ok {
			return exitUsage
		}
		// Every command prints its own help for -h: its flags are its own.
		return e.exit(c, c.run(ctx, e, []string{"-h"}))
	}
	fmt.Fprintln(e.stderr, "usage: smtpban help [COMMAND]")
	return exitUsage
}

func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.configPath, "config", e.configPath, "config `file`, to find the socket")
	fs.StringVar(&e.socket, "socket", e.socket, "the daemon's control socket `path` (default: from the config)")
}

// usage lists the commands, one line each: a new command needs nothing
// but its entry in commands().
func (e *env) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: smtpban [-config FILE] [-socket PATH] COMMAND [ARGS]\n\ncommands:\n")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.short)
	}
	fmt.Fprintf(w, "\n'smtpban help COMMAND' shows a command's arguments and flags.\n")
	fmt.Fprintf(w, "exit codes: 0 ok, 1 error, 2 usage, 3 smtpband not reachable\n")
}

// exit reports err and picks the exit code.
func (e *env) exit(c command, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		if !ue.printed {
			fmt.Fprintf(e.stderr, "smtpban %s: %s\nusage: smtpban %s %s\n", c.name, ue.msg, c.name, c.args)
		}
		return exitUsage
	case errors.Is(err, errReported):
		return exitError
	case errors.Is(err, control.ErrNotRunning):
		fmt.Fprintln(e.stderr, "smtpban:", err)
		return exitNotRunning
	}
	fmt.Fprintln(e.stderr, "smtpban:", err)
	return exitError
}

// flags returns a command's flag set, which also takes the global flags
// so they may come after the command name.
func (e *env) flags(c string) *flag.FlagSet {
	fs := flag.NewFlagSet("smtpban "+c, flag.ContinueOnError)
	// flag calls Usage both for -h and after a mistake, which it writes to
	// the output first: help goes to stdout, a mistake's usage to stderr.
	out := &wroteTo{w: e.stderr}
	fs.SetOutput(out)
	e.globalFlags(fs)
	for _, cmd := range commands() {
		if cmd.name == c {
			fs.Usage = func() {
				w := e.stdout
				if out.wrote {
					w = e.stderr
				}
				fmt.Fprintf(w, "usage: smtpban %s %s\n", cmd.name, cmd.args)
				if !out.wrote {
					fmt.Fprintf(w, "\n%s\n\nflags:\n", cmd.short)
				}
				fs.SetOutput(w)
				fs.PrintDefaults()
				fs.SetOutput(out)
			}
		}
	}
	return fs
}

// wroteTo tells whether anything was written through it.
type wroteTo struct {
	w     io.Writer
	wrote bool
}

func (o *wroteTo) Write(p []byte) (int, error) {
	o.wrote = true
	return o.w.Write(p)
}

// parse parses flags anywhere among the arguments ("ban 192.0.2.1 -for
// 1h" as well as "ban -for 1h 192.0.2.1") and returns the others; after
// "--" everything is an argument.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error(), printed: true}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// client finds the socket: -socket, else the config's, else the default
// with a warning (a client that cannot read the config can still talk).
func (e *env) client() *control.Client {
	if e.socket != "" {
		return control.NewClient(e.socket)
	}
	cfg, diags := config.Load(e.configPath)
	if !diags.HasErrors() && cfg != nil && cfg.Socket != "" {
		return control.NewClient(cfg.Socket)
	}
	why := "no socket in it"
	if errs := diags.Errs(); len(errs) > 0 {
		why = errs[0].String()
		if len(errs) > 1 {
			why += fmt.Sprintf(" (and %d more)", len(errs)-1)
		}
	}
	fmt.Fprintf(e.stderr, "smtpban: warning: cannot use config %s: %s; trying the default socket %s\n", e.configPath, why, config.DefaultSocket)
	return control.NewClient(config.DefaultSocket)
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// prefixArg parses one ADDR|PREFIX argument.
func prefixArg(args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", usagef("missing ADDR or PREFIX")
	case 1:
		return args[0], nil
	}
	return "", usagef("one ADDR or PREFIX at a time, got %s", strings.Join(args, " "))
}

// durationFlag is a -for value in config duration syntax (d and w too).
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string { return f.d.String() }

func (f *durationFlag) Set(s string) error {
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	f.d = d
	return nil
}

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (f *stringsFlag) String() string     { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(s string) error { *f = append(*f, s); return nil }
