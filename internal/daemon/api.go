package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

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
	}
	for _, j := range d.cfg.Jails {
		if jail != "" && j.Name != jail {
			continue
		}
		c := d.jailStats[j.Name]
		js := control.JailStatus{
			Name: j.Name, Enabled: j.Enabled, Failing: failing[j.Name],
			TotalFailures: c.failures, Banned: counts[j.Name], TotalBanned: c.banned,
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

// Ban bans p by hand. Protected addresses are refused with the reason.
func (d *Daemon) Ban(ctx context.Context, p netip.Prefix, jail string, dur time.Duration) (control.Ban, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p = normalize(p)
	if jail == "" {
		jail = manualJail
	} else if d.jails[jail] == nil {
		return control.Ban{}, fmt.Errorf("%w: no jail named %q", control.ErrNotFound, jail)
	}
	if dur <= 0 {
		dur = manualBanTime
		if j := d.jails[jail]; j != nil {
			dur = j.BanTime
		}
	}
	if why := d.protected(jail, p, p.Addr()); why != "" {
		return control.Ban{}, fmt.Errorf("%w: refusing to ban %s: %s", control.ErrInvalid, p, why)
	}
	now := d.now()
	saved, err := d.putBan(ctx, state.Ban{Prefix: p, Jail: jail, Since: now, Until: now.Add(dur), Origin: d.opts.Hostname}, now)
	if err != nil {
		return control.Ban{}, err
	}
	return apiBan(saved), nil
}

// Unban lifts bans and reports which.
func (d *Daemon) Unban(ctx context.Context, p netip.Prefix, jail string, all bool) ([]control.Ban, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	lifted, err := d.unban(ctx, unbanMatch(normalize(p), jail, all))
	return apiBans(lifted), err
}

// Allow puts p on the runtime allow list (for d, or for good if d is 0) and
// lifts any ban on it.
func (d *Daemon) Allow(ctx context.Context, p netip.Prefix, dur time.Duration) ([]control.Ban, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p = normalize(p)
	var until time.Time
	if dur > 0 {
		until = d.now().Add(dur)
	}
	if err := d.store.PutAllow(p, until); err != nil {
		return nil, fmt.Errorf("save allow entry: %w", err)
	}
	d.allow[p] = until
	lifted, err := d.unban(ctx, func(b state.Ban) bool { return b.Prefix.Overlaps(p) })
	return apiBans(lifted), err
}

// AllowList lists the runtime allow list.
func (d *Daemon) AllowList(ctx context.Context) ([]control.Allow, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]control.Allow, 0, len(d.allow))
	for p, until := range d.allow {
		out = append(out, control.Allow{Prefix: p, Until: until})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out, nil
}

// AllowRemove takes p off the runtime allow list.
func (d *Daemon) AllowRemove(ctx context.Context, p netip.Prefix) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p = normalize(p)
	if _, ok := d.allow[p]; !ok {
		return false, nil
	}
	if err := d.store.DeleteAllow(p); err != nil {
		return false, fmt.Errorf("delete allow entry: %w", err)
	}
	delete(d.allow, p)
	return true, nil
}

// normalize unmaps IPv4-mapped addresses and masks the prefix.
func normalize(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		p = netip.PrefixFrom(a.Unmap(), bits)
	}
	return p.Masked()
}
