package main

import (
	"context"
	"fmt"
	"strconv"

	"smtpban/internal/control"
)

func runBans(ctx context.Context, e *env, args []string) error {
	fs := e.flags("bans")
	jsonOut := fs.Bool("json", false, "print JSON")
	utc := fs.Bool("utc", false, "absolute UTC times")
	jail := fs.String("jail", "", "only this jail's bans")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (use -jail to pick a jail)", pos[0])
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	bans, err := e.client().Bans(ctx, *jail)
	if err != nil {
		return err
	}
	if *jsonOut {
		if bans == nil {
			bans = []control.Ban{}
		}
		return e.printJSON(control.BansResponse{Bans: bans})
	}
	if len(bans) == 0 {
		if *jail != "" {
			fmt.Fprintf(e.stdout, "no active bans in %s\n", *jail)
		} else {
			fmt.Fprintln(e.stdout, "no active bans")
		}
		return nil
	}
	c := clock{e.now(), *utc}
	w := newTable(e.stdout)
	until := "LEFT"
	if c.utc {
		until = "UNTIL"
	}
	row(w, "ADDRESS", "JAIL", "SINCE", until, "COUNT", "FAILURES", "ORIGIN", "LINE")
	for _, b := range bans {
		line := "-"
		if b.Line != "" {
			line = strconv.Quote(shorten(b.Line, 100))
		}
		row(w, control.FormatPrefix(b.Prefix), b.Jail, c.when(b.Since), c.when(b.Until), b.Count, b.Failures, orDash(b.Origin), line)
	}
	return w.Flush()
}
