package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"

	"smtpban/internal/control"
)

func runBan(ctx context.Context, e *env, args []string) error {
	fs := e.flags("ban")
	jail := fs.String("jail", "", "jail to ban in (default: manual)")
	var dur durationFlag
	fs.Var(&dur, "for", "ban `duration`, e.g. 90m, 12h, 2d, 1w (default: the jail's bantime)")
	jsonOut := fs.Bool("json", false, "print JSON")
	p, err := parsePrefix(fs, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	b, err := e.client().Ban(ctx, p, *jail, dur.d)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(control.BanResponse{Ban: b})
	}
	c := clock{now: e.now()}
	fmt.Fprintf(e.stdout, "banned %s in jail %s until %s\n", control.FormatPrefix(b.Prefix), b.Jail, c.until(b.Until))
	return nil
}

func runUnban(ctx context.Context, e *env, args []string) error {
	fs := e.flags("unban")
	jail := fs.String("jail", "", "lift bans in this jail only")
	all := fs.Bool("all", false, "lift every ban (in -jail if given)")
	jsonOut := fs.Bool("json", false, "print JSON")
	local := fs.Bool("local", false, "lift on this host only; the cluster's other hosts keep the ban")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var p netip.Prefix
	switch {
	case *all && len(pos) > 0:
		return usagef("give ADDR|PREFIX or -all, not both")
	case !*all:
		if p, err = prefixOf(pos); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	unban := e.client().Unban
	if *local {
		unban = e.client().UnbanLocal
	}
	lifted, err := unban(ctx, p, *jail, *all)
	if err != nil {
		return err
	}
	if *jsonOut {
		if lifted == nil {
			lifted = []control.Ban{}
		}
		return e.printJSON(control.UnbanResponse{Lifted: lifted})
	}
	if len(lifted) == 0 {
		what := control.FormatPrefix(p) + " was not banned"
		if *all {
			what = "nothing was banned"
		}
		if *jail != "" {
			what += " in jail " + *jail
		}
		fmt.Fprintln(e.stdout, what)
		return nil
	}
	printLifted(e, lifted)
	return nil
}

// printLifted says which bans were lifted, one a line.
func printLifted(e *env, lifted []control.Ban) {
	c := clock{now: e.now()}
	for _, b := range lifted {
		fmt.Fprintf(e.stdout, "unbanned %s (jail %s, was banned until %s)\n", control.FormatPrefix(b.Prefix), b.Jail, c.until(b.Until))
	}
}

// parsePrefix parses the flags and exactly one ADDR|PREFIX argument.
func parsePrefix(fs *flag.FlagSet, args []string) (netip.Prefix, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return netip.Prefix{}, err
	}
	return prefixOf(pos)
}

func prefixOf(pos []string) (netip.Prefix, error) {
	s, err := prefixArg(pos)
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := control.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, usagef("%v", err)
	}
	return p, nil
}
