package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"smtpban/internal/control"
	"smtpban/internal/fail2ban"
)

// permanentDefault is how long a permanent fail2ban ban lasts in smtpban,
// which has no ban without an end.
const permanentDefault = 4 * 7 * 24 * time.Hour

// imported is one fail2ban ban and what became of it.
type imported struct {
	Address      string `json:"address"`
	Fail2banJail string `json:"fail2ban_jail"`
	Jail         string `json:"jail,omitempty"`
	Left         string `json:"left"`
	Result       string `json:"result"` // banned, would ban, refused, skipped, failed
	Error        string `json:"error,omitempty"`
}

// runImportFail2ban brings fail2ban's active bans into the running
// daemon as bans by hand, with the time they had left: each goes through
// the ban manager's protection (never-ban classes, ignore and allow
// lists, own addresses), which may refuse it.
func runImportFail2ban(ctx context.Context, e *env, args []string) error {
	fs := e.flags("import-fail2ban")
	jail := fs.String("jail", "", "put every ban in this smtpban `jail` (default: the fail2ban jail's name if smtpband has a jail of that name, else manual)")
	var only stringsFlag
	fs.Var(&only, "only", "import the bans of this fail2ban `jail` only (repeatable)")
	perm := durationFlag{d: permanentDefault}
	fs.Var(&perm, "permanent", "ban `duration` for fail2ban's permanent bans (bantime = -1)")
	dryRun := fs.Bool("dry-run", false, "list what would be imported; ban nothing")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path := fail2ban.DefaultPath
	switch len(pos) {
	case 0:
	case 1:
		path = pos[0]
	default:
		return usagef("one fail2ban database at a time")
	}
	if perm.d <= 0 {
		return usagef("-permanent must be longer than 0")
	}
	all, err := fail2ban.Read(path)
	if err != nil {
		return err
	}
	now := e.now()
	bans := activeBans(all, now, only)

	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var c *control.Client
	ours := map[string]bool{}
	if !*dryRun {
		c = e.client()
		if *jail == "" {
			st, err := c.Status(ctx, "")
			if err != nil {
				return err
			}
			for _, j := range st.Jails {
				ours[j.Name] = true
			}
		}
	}
	var out []imported
	var nBanned, nRefused, nSkipped, nFailed int
	for _, b := range bans {
		left := b.Left(now).Round(time.Second)
		if b.Permanent {
			left = perm.d
		}
		r := imported{Address: b.ID, Fail2banJail: b.Jail, Left: exact(left)}
		if b.Permanent {
			r.Left = human(left) + " (permanent in fail2ban)"
		}
		p, err := b.Prefix()
		if err != nil {
			r.Result, r.Error = "skipped", err.Error()
			nSkipped++
			out = append(out, r)
			continue
		}
		r.Address = control.FormatPrefix(p)
		switch {
		case *jail != "":
			r.Jail = *jail
		case ours[b.Jail]:
			r.Jail = b.Jail
		case !*dryRun:
			r.Jail = "manual"
		}
		if *dryRun {
			r.Result = "would ban"
			out = append(out, r)
			continue
		}
		jailArg := r.Jail
		if jailArg == "manual" {
			jailArg = ""
		}
		_, err = c.Ban(ctx, p, jailArg, left)
		switch {
		case err == nil:
			r.Result = "banned"
			nBanned++
		case errors.Is(err, control.ErrNotRunning), errors.Is(err, control.ErrPermission):
			return err
		case errors.Is(err, control.ErrInvalid):
			// Protection said no: the address is never banned here.
			r.Result, r.Error = "refused", err.Error()
			nRefused++
		default:
			r.Result, r.Error = "failed", err.Error()
			nFailed++
		}
		out = append(out, r)
	}
	if *jsonOut {
		if err := e.printJSON(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tFAIL2BAN JAIL\tJAIL\tLEFT\tRESULT")
		for _, r := range out {
			res := r.Result
			if r.Error != "" {
				res += ": " + r.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Address, r.Fail2banJail, orDash(r.Jail), r.Left, res)
		}
		tw.Flush()
		if *dryRun {
			fmt.Fprintf(e.stdout, "%d active fail2ban bans in %s (of %d rows); nothing banned (-dry-run)\n", len(bans), path, len(all))
		} else {
			fmt.Fprintf(e.stdout, "%d active fail2ban bans in %s: %d banned, %d refused, %d skipped, %d failed\n", len(bans), path, nBanned, nRefused, nSkipped, nFailed)
		}
	}
	if nFailed > 0 {
		return errReported
	}
	return nil
}

// activeBans keeps the bans in force at now (of the jails in only, if
// any), one per address: the one that ends last, as a ban in smtpban is
// one per address whatever the jail.
func activeBans(all []fail2ban.Ban, now time.Time, only []string) []fail2ban.Ban {
	var bans []fail2ban.Ban
	at := map[string]int{}
	for _, b := range all {
		if !b.Active(now) || (len(only) > 0 && !slices.Contains(only, b.Jail)) {
			continue
		}
		if i, ok := at[b.ID]; ok {
			if o := bans[i]; !o.Permanent && (b.Permanent || b.Left(now) > o.Left(now)) {
				bans[i] = b
			}
			continue
		}
		at[b.ID] = len(bans)
		bans = append(bans, b)
	}
	return bans
}

// exact prints d to the second, without a trailing "0s" ("1h59m", "8m20s").
func exact(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
