package main

import (
	"context"
	"fmt"
	"strings"

	"smtpban/internal/account"
	"smtpban/internal/control"
)

// runAccounts prints every account the daemon follows, like pflogsumm's
// per-sender view with the hold beside it.
func runAccounts(ctx context.Context, e *env, args []string) error {
	fs := e.flags("accounts")
	jsonOut := fs.Bool("json", false, "print JSON")
	utc := fs.Bool("utc", false, "absolute UTC times")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (smtpban account show USER shows one)", pos[0])
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	as, err := e.client().Accounts(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if as == nil {
			as = []account.Summary{}
		}
		return e.printJSON(control.AccountsResponse{Accounts: as})
	}
	if len(as) == 0 {
		fmt.Fprintln(e.stdout, "no accounts seen")
		return nil
	}
	c := clock{e.now(), *utc}
	w := newTable(e.stdout)
	row(w, "ACCOUNT", "MSGS 1H", "MSGS 24H", "RCPT 1H", "RCPT 24H", "ADDRS 1H", "FAILING", "HELD", "SINCE", "WHY")
	for _, a := range as {
		since, why := "-", "-"
		if a.Held {
			since, why = c.when(a.HeldSince), a.HeldWhy
		}
		row(w, a.User, a.MessagesHour, a.MessagesDay, a.RecipientsHour, a.RecipientsDay, a.AddressesHour, a.Failing, heldWord(a), since, why)
	}
	return w.Flush()
}

func heldWord(a account.Summary) string {
	if !a.Held {
		return "no"
	}
	return a.Action
}

// runAccount is `smtpban account show|release USER`.
func runAccount(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("account: say show or release, and the account")
	}
	switch args[0] {
	case "-h", "-help", "--help":
		// The command's own usage, as every command prints for -h.
		_, err := parse(e.flags("account"), args)
		return err
	case "show":
		return runAccountShow(ctx, e, args[1:])
	case "release":
		return runAccountRelease(ctx, e, args[1:])
	}
	return usagef("account: unknown subcommand %q (show or release)", args[0])
}

func userArg(pos []string) (string, error) {
	if len(pos) != 1 || pos[0] == "" {
		return "", usagef("give one account name")
	}
	return pos[0], nil
}

func runAccountShow(ctx context.Context, e *env, args []string) error {
	fs := e.flags("account show")
	jsonOut := fs.Bool("json", false, "print JSON")
	utc := fs.Bool("utc", false, "absolute UTC times")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	user, err := userArg(pos)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d, err := e.client().Account(ctx, user)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(d)
	}
	c := clock{e.now(), *utc}
	out := e.stdout
	fmt.Fprintf(out, "account %s\n", d.User)
	if d.Held {
		fmt.Fprintf(out, "  held:       %s since %s (%s)\n", d.Action, c.when(d.HeldSince), d.HeldWhy)
	} else {
		fmt.Fprintf(out, "  held:       no\n")
	}
	l := d.Limits
	fmt.Fprintf(out, "  messages:   %d in 1h (limit %d), %d in 24h (limit %d)\n", d.MessagesHour, l.MessagesPerHour, d.MessagesDay, l.MessagesPerDay)
	fmt.Fprintf(out, "  recipients: %d in 1h (limit %d), %d in 24h\n", d.RecipientsHour, l.RecipientsPerHour, d.RecipientsDay)
	fmt.Fprintf(out, "  addresses:  %d in 1h (limit %d), networks limit %d\n", d.AddressesHour, l.AddressesPerHour, l.NetworksPerHour)
	fmt.Fprintf(out, "  failing:    %d distinct addresses failing to log in\n", d.Failing)
	if len(d.Addresses) > 0 {
		w := newTable(out)
		row(w, "  ADDRESS", "MESSAGES", "LAST")
		for _, a := range d.Addresses {
			row(w, "  "+a.Addr.String(), a.Messages, c.when(a.Last))
		}
		w.Flush()
	}
	if len(d.Banned) > 0 {
		// Asked of the ban manager; it refuses protected addresses (see smtpband's log, smtpban bans).
		fmt.Fprintf(out, "  bans asked: %s\n", joinAddrs(d.Banned, 20))
	}
	if len(d.HeldIDs) > 0 {
		fmt.Fprintf(out, "  held mail:  %s\n", strings.Join(d.HeldIDs, " "))
	}
	for _, a := range d.Alerts {
		fmt.Fprintf(out, "  alert %s: %s %d > %d in %s, %s, %d addresses\n", c.when(a.Time), a.Limit, a.Value, a.Max, a.Window, a.Action, len(a.Addresses))
	}
	return nil
}

func joinAddrs[T fmt.Stringer](as []T, max int) string {
	var b strings.Builder
	for i, a := range as {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(as)-max)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

func runAccountRelease(ctx context.Context, e *env, args []string) error {
	fs := e.flags("account release")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	user, err := userArg(pos)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := e.client().ReleaseAccount(ctx, user)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(r)
	}
	if !r.WasHeld {
		fmt.Fprintf(e.stdout, "%s was not held; its counts start afresh\n", r.User)
	} else {
		fmt.Fprintf(e.stdout, "released %s; its counts start afresh. Release its held mail with:\n", r.User)
	}
	for _, c := range r.Commands {
		fmt.Fprintln(e.stdout, c)
	}
	if len(r.Banned) > 0 {
		fmt.Fprintf(e.stdout, "# bans asked for it stay (protected addresses were refused; smtpban bans -jail account, smtpban unban ADDR): %s\n", joinAddrs(r.Banned, 20))
	}
	return nil
}
