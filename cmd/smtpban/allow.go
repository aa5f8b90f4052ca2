package main

import (
	"context"
	"fmt"

	"smtpban/internal/control"
)

func runAllow(ctx context.Context, e *env, args []string) error {
	fs := e.flags("allow")
	var dur durationFlag
	fs.Var(&dur, "for", "how long, e.g. 2h or 1d (default: until removed)")
	list := fs.Bool("list", false, "list the allow list")
	remove := fs.Bool("remove", false, "take ADDR|PREFIX off the allow list")
	jsonOut := fs.Bool("json", false, "print JSON")
	utc := fs.Bool("utc", false, "absolute UTC times (with -list)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	switch {
	case *list && *remove:
		return usagef("-list or -remove, not both")
	case *list:
		if len(pos) > 0 {
			return usagef("-list takes no ADDR|PREFIX")
		}
		return allowList(ctx, e, *jsonOut, clock{e.now(), *utc})
	case *remove:
		p, err := prefixOf(pos)
		if err != nil {
			return err
		}
		removed, err := e.client().AllowRemove(ctx, p)
		if err != nil {
			return err
		}
		if *jsonOut {
			return e.printJSON(control.AllowRemoveResponse{Prefix: p, Removed: removed})
		}
		if removed {
			fmt.Fprintf(e.stdout, "removed %s from the allow list\n", control.FormatPrefix(p))
		} else {
			fmt.Fprintf(e.stdout, "%s was not on the allow list\n", control.FormatPrefix(p))
		}
		return nil
	}
	p, err := prefixOf(pos)
	if err != nil {
		return err
	}
	r, err := e.client().AllowEntry(ctx, p, dur.d)
	if err != nil {
		return err
	}
	if *jsonOut {
		if r.Lifted == nil {
			r.Lifted = []control.Ban{}
		}
		return e.printJSON(r)
	}
	c := clock{now: e.now()}
	if r.Allow.Until.IsZero() {
		fmt.Fprintf(e.stdout, "allowed %s until removed (smtpban allow -remove %s)\n", control.FormatPrefix(p), control.FormatPrefix(p))
	} else {
		fmt.Fprintf(e.stdout, "allowed %s until %s\n", control.FormatPrefix(p), c.until(r.Allow.Until))
	}
	printLifted(e, r.Lifted)
	return nil
}

func allowList(ctx context.Context, e *env, jsonOut bool, c clock) error {
	as, err := e.client().AllowList(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		if as == nil {
			as = []control.Allow{}
		}
		return e.printJSON(control.AllowListResponse{Allow: as})
	}
	if len(as) == 0 {
		fmt.Fprintln(e.stdout, "the allow list is empty")
		return nil
	}
	w := newTable(e.stdout)
	row(w, "ADDRESS", "UNTIL")
	for _, a := range as {
		until := "removed"
		if !a.Until.IsZero() {
			until = c.when(a.Until)
		}
		row(w, control.FormatPrefix(a.Prefix), until)
	}
	return w.Flush()
}
