package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"smtpban/firewall"
	"smtpban/internal/metrics"
	"smtpban/internal/neverban"
	"smtpban/jails"
	"smtpban/state"
)

// manualJail names bans made by hand with `smtpban ban`.
const manualJail = "manual"

// manualBanTime is a hand-made ban's length when none is given.
const manualBanTime = time.Hour

// banDecision turns a counter's decision into a ban, unless the address
// must never be banned. The caller holds mu.
func (d *Daemon) banDecision(ctx context.Context, dec jails.Decision) {
	decided := d.now()
	j := dec.Jail
	if why := d.protected(j.Name, dec.Key, dec.Addr); why != "" {
		d.log.Warn("ban skipped", keyJail, j.Name, keyAddr, dec.Key, keyFailures, dec.Failures, "reason", why)
		d.counter.Forget(j.Name, dec.Key)
		return
	}
	now := d.now()
	// A line cannot say it is from the future (logline clamps it); this
	// keeps a ban from starting later than now whatever its source.
	since := dec.Time
	if since.After(now) {
		since = now
	}
	if cover, ok, err := d.store.Covering(dec.Key, 0); err != nil {
		d.log.Error("look for a covering ban", keyAddr, dec.Key, keyErr, err)
	} else if ok && cover.Until.After(now) {
		// Already dropped by a wider ban: a nested element would only
		// collide with it in the kernel's set.
		d.log.Debug("ban skipped", keyJail, j.Name, keyAddr, dec.Key, "reason", "covered by the ban of "+cover.Prefix.String())
		d.counter.Forget(j.Name, dec.Key)
		return
	}
	key, inner := d.widen(j, dec.Key, dec.Addr, now)
	prior, _, err := d.store.BanHistory(key)
	if err != nil {
		d.log.Error("read ban history", keyAddr, key, keyErr, err)
	}
	until := since.Add(j.BanDuration(prior))
	if !until.After(now) {
		// Catching up on old lines after downtime: this ban would already
		// have ended.
		d.counter.Forget(j.Name, dec.Key)
		return
	}
	for _, b := range inner {
		if b.Until.After(until) {
			until = b.Until // the wider ban keeps the longest
		}
	}
	b := state.Ban{
		Prefix: key, Jail: j.Name, Since: since, Until: until,
		Failures: dec.Failures, Lines: dec.Lines, Origin: d.opts.Hostname,
	}
	if len(inner) > 0 {
		if err := d.replaceInner(ctx, inner); err != nil {
			d.log.Error("widen ban", keyJail, j.Name, keyAddr, key, keyErr, err)
			return
		}
		d.log.Info("ban widened", keyJail, j.Name, keyAddr, key, "inside", len(inner), "tipping", dec.Key)
	}
	if _, err := d.putBan(ctx, b, decided); err != nil {
		d.log.Error("ban failed", keyJail, j.Name, keyAddr, key, keyErr, err)
		return
	}
	d.counter.Forget(j.Name, dec.Key)
}

// widen returns the prefix a ban of key becomes under j's widen rule, and
// the active bans inside it that the wider ban replaces. It returns key
// and nil when the rule does not apply, or the wider prefix is protected.
func (d *Daemon) widen(j *jails.Jail, key netip.Prefix, addr netip.Addr, now time.Time) (netip.Prefix, []state.Ban) {
	wide, ok := j.Widen.Prefix(key)
	if !ok {
		return key, nil
	}
	within, err := d.store.BansWithin(wide)
	if err != nil {
		d.log.Error("list bans to widen", keyAddr, wide, keyErr, err)
		return key, nil
	}
	active := within[:0]
	for _, b := range within {
		if b.Until.After(now) && b.Prefix != key {
			active = append(active, b)
		}
	}
	if len(active)+1 < j.Widen.After {
		return key, nil
	}
	if why := d.protected(j.Name, wide, addr); why != "" {
		d.log.Warn("ban not widened", keyJail, j.Name, keyAddr, wide, "reason", why)
		return key, nil
	}
	return wide, active
}

// replaceInner lifts bans that a wider one is about to cover, in state
// and in the firewall (a set cannot hold a prefix and one inside it).
func (d *Daemon) replaceInner(ctx context.Context, inner []state.Ban) error {
	ps := make([]netip.Prefix, 0, len(inner))
	for _, b := range inner {
		if _, _, err := d.store.DeleteBan(b.Prefix); err != nil {
			return fmt.Errorf("lift %s: %w", b.Prefix, err)
		}
		ps = append(ps, b.Prefix)
	}
	if err := d.fw.Remove(ctx, ps); err != nil {
		d.metrics.FirewallError(metrics.OpRemove)
		return fmt.Errorf("remove covered bans from the firewall: %w", err)
	}
	return nil
}

// protected says why p must not be banned, or "" if it may be.
func (d *Daemon) protected(jail string, p netip.Prefix, addr netip.Addr) string {
	// First, so that the reason names the class, whatever the lists hold.
	if why := neverban.Prefix(p); why != "" {
		return "never banned: " + why
	}
	l := d.ignoreList[jail]
	if l == nil {
		l = d.globalIgnore
	}
	if l.Contains(addr) {
		return "address is on the ignore list, is loopback or is this host's own"
	}
	for a, until := range d.allow {
		if (until.IsZero() || until.After(d.now())) && a.Overlaps(p) {
			return "address is on the allow list (smtpban allow)"
		}
	}
	if !p.IsSingleIP() {
		// A prefix ban must not sweep up an ignored network or this host.
		for _, ig := range d.ignore {
			if ig.Overlaps(p) {
				return fmt.Sprintf("prefix overlaps ignored %s", ig)
			}
		}
	}
	return ""
}

// putBan makes b durable, then applies it; decided is when the ban was
// decided, for the apply latency. The caller holds mu.
func (d *Daemon) putBan(ctx context.Context, b state.Ban, decided time.Time) (state.Ban, error) {
	saved, err := d.store.PutBan(b)
	if err != nil {
		return state.Ban{}, fmt.Errorf("save ban: %w", err)
	}
	left := saved.Until.Sub(d.now())
	if err := d.fw.Add(ctx, []firewall.Entry{{Prefix: saved.Prefix, Timeout: left}}); err != nil {
		// It stays in state: the next resync applies it again.
		d.metrics.FirewallError(metrics.OpAdd)
		return saved, fmt.Errorf("apply ban: %w", err)
	}
	d.metrics.Ban(saved.Jail, saved.Origin, d.now().Sub(decided))
	if c := d.jailStats[saved.Jail]; c != nil {
		c.banned++
	}
	d.log.Info("ban", keyJail, saved.Jail, keyAddr, saved.Prefix, keyFailures, saved.Failures,
		keyUntil, saved.Until.UTC().Format(time.RFC3339), keyOrigin, saved.Origin, "count", saved.Count)
	return saved, nil
}

// unbanMatch says which bans `smtpban unban` lifts: those on p (equal, or
// a prefix containing the address p) in jail ("" = any), or every ban.
func unbanMatch(p netip.Prefix, jail string, all bool) func(state.Ban) bool {
	return func(b state.Ban) bool {
		if all {
			return true
		}
		if jail != "" && b.Jail != jail {
			return false
		}
		return b.Prefix == p || (p.IsSingleIP() && b.Prefix.Contains(p.Addr()))
	}
}

// unban lifts every ban that match accepts. The caller holds mu.
func (d *Daemon) unban(ctx context.Context, match func(state.Ban) bool) ([]state.Ban, error) {
	bans, err := d.store.Bans()
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	var lifted []state.Ban
	var prefixes []netip.Prefix
	for _, b := range bans {
		if !match(b) {
			continue
		}
		if _, _, err := d.store.DeleteBan(b.Prefix); err != nil {
			return lifted, fmt.Errorf("delete ban %s: %w", b.Prefix, err)
		}
		d.counter.Forget(b.Jail, b.Prefix)
		lifted = append(lifted, b)
		prefixes = append(prefixes, b.Prefix)
	}
	if len(prefixes) > 0 {
		if err := d.fw.Remove(ctx, prefixes); err != nil {
			d.metrics.FirewallError(metrics.OpRemove)
			return lifted, fmt.Errorf("remove from firewall: %w", err)
		}
	}
	for _, b := range lifted {
		d.metrics.Unban(b.Jail, b.Origin)
		d.log.Info("unban", keyJail, b.Jail, keyAddr, b.Prefix, keyFailures, b.Failures,
			keyUntil, b.Until.UTC().Format(time.RFC3339), keyOrigin, b.Origin)
	}
	return lifted, nil
}
