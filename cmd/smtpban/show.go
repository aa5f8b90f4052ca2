package main

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// runShow prints the daemon's view of one address: its active bans with
// the lines recorded for them, the ban history of the prefixes holding
// it, its live failure windows per jail.
func runShow(ctx context.Context, e *env, args []string) error {
	fs := e.flags("show")
	jsonOut := fs.Bool("json", false, "print JSON")
	utc := fs.Bool("utc", false, "absolute UTC times")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one address")
	}
	a, err := netip.ParseAddr(pos[0])
	if err != nil {
		return usagef("%q is not an IP address", pos[0])
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := e.client().Show(ctx, a)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(v)
	}
	c := clock{e.now(), *utc}
	out := e.stdout
	fmt.Fprintf(out, "%s\n", v.Addr)
	if len(v.Bans) == 0 {
		fmt.Fprintln(out, "\nnot banned")
	}
	for _, b := range v.Bans {
		fmt.Fprintf(out, "\nbanned as %s by %s since %s, until %s (ban %d of this prefix, %d failures, origin %s)\n",
			b.Prefix, b.Jail, c.when(b.Since), c.when(b.Until), b.Count, b.Failures, orDash(b.Origin))
		for _, l := range b.Lines {
			fmt.Fprintf(out, "  %s\n", strconv.Quote(shorten(l, 200)))
		}
	}
	if len(v.History) > 0 {
		fmt.Fprintln(out, "\nban history")
		w := newTable(out)
		row(w, "PREFIX", "BANS", "LAST", "BY JAIL")
		for _, h := range v.History {
			var by []string
			for _, j := range h.Jails {
				by = append(by, fmt.Sprintf("%s %d", j.Jail, j.Count))
			}
			row(w, h.Prefix, h.Count, c.when(h.Last), orDash(strings.Join(by, ", ")))
		}
		w.Flush()
	}
	if len(v.Failures) == 0 {
		fmt.Fprintln(out, "\nno failures counted now")
		return nil
	}
	fmt.Fprintln(out, "\nfailures counted now")
	w := newTable(out)
	row(w, "JAIL", "KEY", "FAILURES", "OF", "WITHIN", "LAST")
	for _, f := range v.Failures {
		last := "-"
		if n := len(f.Times); n > 0 {
			last = c.when(f.Times[n-1])
		}
		row(w, f.Jail, f.Key, f.Count, f.MaxRetry, f.FindTime, last)
	}
	return w.Flush()
}
