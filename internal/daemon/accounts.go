package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"smtpban/internal/account"
	"smtpban/internal/config"
	"smtpban/internal/control"
	"smtpban/internal/metrics"
	"smtpban/internal/policy"
	"smtpban/internal/source"
	"smtpban/state"
)

// newAccounts makes the account watch when the config asks for one.
func (d *Daemon) newAccounts(cfg *config.Config, store *state.Store) {
	if cfg.Accounts == nil {
		return
	}
	d.accounts = account.New(account.Options{
		Settings: *cfg.Accounts, Now: d.now, Logger: d.log.With("part", "accounts"),
		Banner: d.bans, Store: store, Host: d.opts.Hostname,
	})
	if cfg.Policy != "" {
		d.policy = policy.New(cfg.Policy, d.accounts, d.log.With("part", "policy"))
	}
	d.metrics.WatchAccounts(d.accountStats)
}

// accountStats is the account metrics' view, read at each scrape: the
// watch's figures under its short lock, the policy service's atomics
// without any, and never mu.
func (d *Daemon) accountStats() metrics.AccountStats {
	st := d.accounts.Stats()
	s := metrics.AccountStats{Held: st.Held, Alerts: st.Alerts, Banned: st.Banned, Dropped: st.Dropped}
	if p := d.policy; p != nil {
		s.Policy = &metrics.PolicyStats{
			Dunno: p.Stats.Dunno.Load(), Hold: p.Stats.Hold.Load(), Defer: p.Stats.Defer.Load(), Reject: p.Stats.Reject.Load(),
			Malformed: p.Stats.Malformed.Load(), Oversized: p.Stats.Oversized.Load(), Refused: p.Stats.Refused.Load(),
		}
	}
	return s
}

// accountLine gives a line to the account watch, if it reads its source.
// The watch has its own lock: the policy service never waits for mu.
func (d *Daemon) accountLine(l *source.Line) {
	if d.accounts == nil {
		return
	}
	if srcs := d.cfg.Accounts.Sources; len(srcs) > 0 && !slices.Contains(srcs, l.Source) {
		return
	}
	d.accounts.Line(&l.Line)
}

// accountSources adds the sources the watch reads to used.
func (d *Daemon) accountSources(used map[string]bool) {
	if d.cfg.Accounts == nil {
		return
	}
	for _, s := range d.cfg.Accounts.Sources {
		used[s] = true
	}
}

// applyAccounts gives a reloaded config's settings to the watch. Turning
// the watch or the policy service on or off takes a restart.
func (d *Daemon) applyAccounts(cfg *config.Config) {
	if d.accounts != nil && cfg.Accounts != nil {
		d.accounts.SetSettings(*cfg.Accounts)
	}
	if (d.accounts == nil) != (cfg.Accounts == nil) || (d.cfg != nil && d.cfg.Policy != cfg.Policy) {
		d.log.Warn("account watch or policy service changed: restart smtpband to apply it")
	}
}

// startAccounts restores the watch and opens the policy socket, before
// READY=1: Postfix may ask as soon as we say we are up.
func (d *Daemon) startAccounts() error {
	if d.accounts == nil {
		return nil
	}
	n, err := d.accounts.Restore()
	if err != nil {
		return err
	}
	d.log.Info("accounts restored", "accounts", n)
	if d.policy != nil {
		if err := d.policy.Listen(); err != nil {
			return err
		}
		d.log.Info("policy service listening", "listen", d.policy.Addr().String())
	}
	return nil
}

// runAccounts runs the watch and the policy service until ctx is done.
func (d *Daemon) runAccounts(ctx context.Context, goFn func(func() error)) {
	if d.accounts == nil {
		return
	}
	goFn(func() error { return d.accounts.Run(ctx, account.Timers{}) })
	if d.policy != nil {
		goFn(func() error { return d.policy.Serve(ctx) })
	}
}

var errNoAccounts = fmt.Errorf("%w: the account watch is off (no account, accounts or policy block in the config)", control.ErrNotFound)

// Accounts is the control API's list of accounts.
func (d *Daemon) Accounts(ctx context.Context) ([]account.Summary, error) {
	if d.accounts == nil {
		return nil, errNoAccounts
	}
	return d.accounts.Accounts(), nil
}

// Account is the control API's view of one account.
func (d *Daemon) Account(ctx context.Context, user string) (account.Detail, error) {
	if d.accounts == nil {
		return account.Detail{}, errNoAccounts
	}
	det, err := d.accounts.Show(user)
	if errors.Is(err, account.ErrUnknown) {
		return det, fmt.Errorf("%w: %w", control.ErrNotFound, err)
	}
	return det, err
}

// ReleaseAccount lifts an account's hold.
func (d *Daemon) ReleaseAccount(ctx context.Context, user string) (account.Release, error) {
	if d.accounts == nil {
		return account.Release{}, errNoAccounts
	}
	r, err := d.accounts.Release(user)
	if errors.Is(err, account.ErrUnknown) {
		return r, fmt.Errorf("%w: %w", control.ErrNotFound, err)
	}
	return r, err
}
