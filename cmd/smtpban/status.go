package main

import (
	"context"
	"fmt"
	"strings"

	"smtpban/internal/control"
)

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := e.flags("status")
	jsonOut := fs.Bool("json", false, "print JSON")
	utc := fs.Bool("utc", false, "absolute UTC times")
	ack := fs.Bool("ack-recovery", false, "acknowledge that state was recovered from a damaged database")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("one jail at a time")
	}
	jail := ""
	if len(pos) == 1 {
		jail = pos[0]
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if *ack {
		r, err := e.client().AckRecovery(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "acknowledged %d state recoveries\n", r.Acknowledged)
	}
	st, err := e.client().Status(ctx, jail)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(st)
	}
	return printStatus(e, st, jail, clock{e.now(), *utc})
}

func printStatus(e *env, st control.Status, jail string, c clock) error {
	up := st.Uptime
	if !st.Started.IsZero() {
		up = human(c.now.Sub(st.Started))
	}
	fmt.Fprintf(e.stdout, "smtpband %s, up %s (since %s), firewall %s\n\n", st.Version, up, abs(st.Started), st.Firewall)
	w := newTable(e.stdout)
	row(w, "JAIL", "ENABLED", "FAILING", "FAILURES", "BANNED", "BANS")
	for _, j := range st.Jails {
		row(w, j.Name, yesNo(j.Enabled), j.Failing, j.TotalFailures, j.Banned, j.TotalBanned)
	}
	if len(st.Sources) > 0 {
		row(w)
		row(w, "SOURCE", "KIND", "POSITION", "LAG", "READ", "SKIPPED")
		for _, s := range st.Sources {
			row(w, s.Name, s.Kind, orDash(s.Position), orDash(s.Lag), s.Read, s.Skipped)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	printState(e, st.State)
	printCluster(e, st.Cluster)
	if jail == "" {
		fmt.Fprintln(e.stdout, "\nFAILING: addresses failing now; FAILURES and BANS: since start")
		return nil
	}
	for _, j := range st.Jails {
		if len(j.BannedList) == 0 {
			fmt.Fprintf(e.stdout, "\nnothing banned in %s\n", j.Name)
			continue
		}
		fmt.Fprintf(e.stdout, "\nbanned in %s:\n", j.Name)
		for _, b := range j.BannedList {
			fmt.Fprintf(e.stdout, "  %s\n", b)
		}
	}
	return nil
}

// printState says loudly when state is not being written or was
// recovered from a damaged database.
func printState(e *env, st *control.StateStatus) {
	if st == nil {
		return
	}
	if !st.Writable {
		fmt.Fprintf(e.stdout, "\nSTATE NOT BEING WRITTEN since %s: %s\n  bans still reach the firewall; %d wait to be saved\n", st.Since, st.Error, st.Pending)
	}
	for _, r := range st.Recovered {
		fmt.Fprintf(e.stdout, "\nSTATE RECOVERED at %s from a damaged database (%s)\n  moved aside: %s\n  kept: %v; records lost: %d\n",
			r.Time, r.Reason, r.Damaged, r.Salvaged, r.LostRecords)
		for _, l := range r.Lost {
			fmt.Fprintf(e.stdout, "  lost: %s\n", l)
		}
	}
	if len(st.Recovered) > 0 {
		fmt.Fprintln(e.stdout, "  bans missing from it were re-learnt from the kernel (jail recovered); acknowledge with: smtpban status -ack-recovery")
	}
}

// printCluster shows the shared ban list, if there is one.
func printCluster(e *env, c *control.ClusterStatus) {
	if c == nil {
		return
	}
	state := "connected"
	if !c.Connected {
		state = "DEGRADED (etcd unreachable; bans made here are queued)"
	}
	fmt.Fprintf(e.stdout, "\ncluster: host %s, %s, revision %d, %d queued to publish\n", c.Host, state, c.Revision, c.Queued)
	fmt.Fprintf(e.stdout, "  endpoints %s\n", strings.Join(c.Endpoints, " "))
	if c.LastError != "" {
		fmt.Fprintf(e.stdout, "  last error: %s\n", c.LastError)
	}
}
