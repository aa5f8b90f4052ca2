package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"smtpban/internal/ban"
	"smtpban/internal/control"
	"smtpban/state"
)

// The control server calls these; each takes mu for its whole duration, so
// a change never interleaves with a line being counted.
var _ control.Daemon = (*Daemon)(nil)

// Status reports the daemon, its jails and sources; jail narrows it to one
// jail and lists that jail's bans.
func (d *Daemon) Status(ctx context.Context, jail string) (control.Status, error) {
	// State is read before taking mu: bbolt reads need no lock, and
	// thousands of bans must not hold up the lines meanwhile.
	now := d.now()
	counts, err := d.store.ActiveBanCounts(now)
	if err != nil {
		return control.Status{}, fmt.Errorf("count bans: %w", err)
	}
	var listed []string
	if jail != "" {
		bans, err := d.store.Bans()
		if err != nil {
			return control.Status{}, fmt.Errorf("list bans: %w", err)
		}
		for _, b := range bans {
			if b.Jail == jail && b.Until.After(now) {
				listed = append(listed, b.Prefix.String())
			}
		}
	}
	// Before mu: the manager may be saving a batch, and lines must not
	// wait behind a status call that waits for it.
	banned := d.bans.Banned()
	stateSt := d.stateStatus()
	d.mu.Lock()
	defer d.mu.Unlock()
	if jail != "" && d.jails[jail] == nil {
		return control.Status{}, fmt.Errorf("%w: no jail named %q", control.ErrNotFound, jail)
	}
	failing := d.counter.WindowsByJail()
	st := control.Status{
		Version:  d.opts.Version,
		Started:  d.started,
		Uptime:   now.Sub(d.started).Round(time.Second).String(),
		Firewall: d.fwKind,
		State:    stateSt,
		Cluster:  d.clusterStatus(),
	}
	for _, j := range d.cfg.Jails {
		if jail != "" && j.Name != jail {
			continue
		}
		c := d.jailStats[j.Name]
		js := control.JailStatus{
			Name: j.Name, Enabled: j.Enabled, Failing: failing[j.Name],
			TotalFailures: c.failures, Banned: counts[j.Name], TotalBanned: banned[j.Name],
		}
		if jail != "" {
			js.BannedList, js.Banned = listed, len(listed)
		}
		st.Jails = append(st.Jails, js)
	}
	for _, s := range d.sources {
		ss := s.src.Stats()
		st.Sources = append(st.Sources, control.SourceStatus{
			Name: s.src.Name(), Kind: s.kind, Position: ss.Position,
			Lag: ss.Lag.Round(time.Millisecond).String(), Read: ss.Read, Skipped: ss.Skipped,
		})
	}
	return st, nil
}

// Bans lists the active bans, in jail if not "".
func (d *Daemon) Bans(ctx context.Context, jail string) ([]control.Ban, error) {
	// Without mu, as Status: a bbolt read is a consistent snapshot.
	bans, err := d.store.Bans()
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	// With those in the kernel that state could not save yet.
	if unsaved := d.bans.Unsaved(); len(unsaved) > 0 {
		saved := make(map[netip.Prefix]bool, len(bans))
		for _, b := range bans {
			saved[b.Prefix] = true
		}
		for _, b := range unsaved {
			if !saved[b.Prefix] {
				bans = append(bans, b)
			}
		}
	}
	now := d.now()
	out := []control.Ban{}
	for _, b := range bans {
		if (jail == "" || b.Jail == jail) && b.Until.After(now) {
			out = append(out, apiBan(b))
		}
	}
	return out, nil
}

func apiBan(b state.Ban) control.Ban {
	cb := control.Ban{Prefix: b.Prefix, Jail: b.Jail, Since: b.Since, Until: b.Until, Count: b.Count, Failures: b.Failures, Origin: b.Origin}
	if n := len(b.Lines); n > 0 {
		cb.Line = b.Lines[n-1]
	}
	return cb
}

func apiBans(bs []state.Ban) []control.Ban {
	out := make([]control.Ban, 0, len(bs))
	for _, b := range bs {
		out = append(out, apiBan(b))
	}
	return out
}

// Ban bans p by hand, through the ban manager: protected prefixes, ones
// the firewall refuses and ones inside a wider ban are refused, with why.
func (d *Daemon) Ban(ctx context.Context, p netip.Prefix, jail string, dur time.Duration) (control.Ban, error) {
	saved, err := d.bans.Ban(ctx, p, jail, dur)
	switch {
	case errors.Is(err, ban.ErrNoJail):
		return control.Ban{}, fmt.Errorf("%w: no jail named %q", control.ErrNotFound, jail)
	case errors.Is(err, ban.ErrRefused):
		return control.Ban{}, fmt.Errorf("%w: %w", control.ErrInvalid, err)
	case err != nil:
		return control.Ban{}, err
	}
	return apiBan(saved), nil
}

// Unban lifts bans and reports which; their failure windows go too.
func (d *Daemon) Unban(ctx context.Context, p netip.Prefix, jail string, all bool) ([]control.Ban, error) {
	lifted, err := d.bans.Unban(ctx, ban.UnbanMatch(p, jail, all))
	if d.cluster != nil && !all && jail == "" {
		// The key goes even where no ban is held here (refused here
		// as protected, say): everywhere means everywhere.
		d.cluster.Withdraw([]netip.Prefix{ban.Normalize(p)})
	}
	d.forget(lifted)
	return apiBans(lifted), err
}

// UnbanLocal lifts bans on this host only; the shared ban list keeps them.
func (d *Daemon) UnbanLocal(ctx context.Context, p netip.Prefix, jail string, all bool) ([]control.Ban, error) {
	lifted, err := d.bans.UnbanLocal(ctx, ban.UnbanMatch(p, jail, all))
	d.forget(lifted)
	return apiBans(lifted), err
}

// forget drops the failure windows of lifted bans: a lifted address
// starts over.
func (d *Daemon) forget(lifted []state.Ban) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range lifted {
		d.counter.Forget(b.Jail, b.Prefix)
	}
}

// Allow puts p on the runtime allow list (for d, or for good if d is 0) and
// lifts any ban on it.
func (d *Daemon) Allow(ctx context.Context, p netip.Prefix, dur time.Duration) ([]control.Ban, error) {
	lifted, err := d.bans.Allow(ctx, p, dur)
	d.forget(lifted)
	return apiBans(lifted), err
}

// AllowList lists the runtime allow list.
func (d *Daemon) AllowList(ctx context.Context) ([]control.Allow, error) {
	es := d.bans.AllowList()
	out := make([]control.Allow, 0, len(es))
	for _, e := range es {
		out = append(out, control.Allow{Prefix: e.Prefix, Until: e.Until})
	}
	return out, nil
}

// AllowRemove takes p off the runtime allow list.
func (d *Daemon) AllowRemove(ctx context.Context, p netip.Prefix) (bool, error) {
	return d.bans.AllowRemove(p)
}
