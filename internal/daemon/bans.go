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
	prior, _, err := d.store.BanHistory(dec.Key)
	if err != nil {
		d.log.Error("read ban history", keyAddr, dec.Key, keyErr, err)
	}
	until := dec.Time.Add(j.BanDuration(prior))
	if !until.After(d.now()) {
		// Catching up on old lines after downtime: this ban would already
		// have ended.
		d.counter.Forget(j.Name, dec.Key)
		return
	}
	b := state.Ban{
		Prefix: dec.Key, Jail: j.Name, Since: dec.Time, Until: until,
		Failures: dec.Failures, Lines: dec.Lines, Origin: d.opts.Hostname,
	}
	if _, err := d.putBan(ctx, b, decided); err != nil {
		d.log.Error("ban failed", keyJail, j.Name, keyAddr, dec.Key, keyErr, err)
		return
	}
	d.counter.Forget(j.Name, dec.Key)
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
