package main

import (
	"context"
	"fmt"
	"os"

	"smtpban/internal/config"
	"smtpban/internal/replay"
)

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := e.flags("replay")
	var jails stringsFlag
	fs.Var(&jails, "jail", "run only this jail (repeatable; default: every jail)")
	jsonOut := fs.Bool("json", false, "one JSON object per match and per ban")
	journal := fs.Bool("journal", false, "also read the journal through the config's journal source (its matches and trusted senders)")
	journalSource := fs.String("source", "", "with -journal: the journal source's name, if the config has several")
	since := fs.String("since", "1d", "with -journal: how far back, a duration like 12h, 7d, 2w")
	missed := fs.Bool("missed", false, "also print the lines that hold one of a jail's literals, from a program it reads, but match none of its failregexes")
	format := fs.String("format", "", "the files' layout: syslog, dovecot (Dovecot's log_path) or exim (Exim's main log); default: that of the config's file source with the same path, else syslog")
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	var jr *replay.Journal
	if *journal {
		d, err := config.ParseDuration(*since)
		if err != nil || d <= 0 {
			return usagef("-since %q: want a duration like 12h, 7d, 2w", *since)
		}
		jr = &replay.Journal{Source: *journalSource, Since: e.now().Add(-d)}
	}
	if len(files) == 0 && jr == nil {
		return usagef("give at least one log FILE (- for standard input; .gz files are read decompressed)")
	}
	cfg, diags := config.Load(e.configPath)
	if diags.HasErrors() {
		for _, d := range diags {
			fmt.Fprintln(e.stderr, d.String())
		}
		return errReported
	}
	return replay.Run(ctx, replay.Options{Config: cfg, Jails: jails, Files: files, JSON: *jsonOut, Out: e.stdout, Format: *format, Missed: *missed, Stdin: os.Stdin, Journal: jr})
}
