package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"smtpban/firewall"
	"smtpban/internal/control"
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
	if cur, ok, err := d.store.Ban(key); err == nil && ok && cur.Until.After(now) && prior > 0 {
		// Banned already: lines that were on their way when the ban
		// came, or the tipping line read again after a crash. The same
		// offence, at the same step: escalating here turned a 1h ban
		// into 2h after a kill -9.
		prior--
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
	// The wider ban is made durable first, then the bans inside it go
	// (a set cannot hold both), then it reaches the kernel.
	saved, err := d.saveBan(b)
	if err != nil {
		if errors.Is(err, errNotSaved) {
			// Disk full, read-only, I/O error: the decision is kept and
			// tried again (retryPending), so neither the ban nor the
			// failures behind it are lost.
			d.keepPending(dec, err)
			return
		}
		d.log.Error("ban failed", keyJail, j.Name, keyAddr, key, keyErr, err)
		d.counter.Forget(j.Name, dec.Key)
		return
	}
	if len(inner) > 0 {
		if err := d.replaceInner(ctx, inner); err != nil {
			d.log.Error("widen ban", keyJail, j.Name, keyAddr, key, keyErr, err)
		} else {
			d.log.Info("ban widened", keyJail, j.Name, keyAddr, key, "inside", len(inner), "tipping", dec.Key)
		}
	}
	if err := d.applyBan(ctx, saved, decided); err != nil {
		d.log.Error("ban not applied; the next resync tries again", keyJail, j.Name, keyAddr, key, keyErr, err)
	}
	d.counter.Forget(j.Name, dec.Key)
}

// errNotSaved marks a ban that state could not save.
var errNotSaved = errors.New("ban not saved")

// maxPending bounds the decisions kept for a retry while state cannot be
// written; past it the oldest is dropped (and logged), so that a disk
// full for days under a flood costs bounded memory.
const maxPending = 10000

// keepPending keeps dec for retryPending. The caller holds mu.
func (d *Daemon) keepPending(dec jails.Decision, err error) {
	if len(d.pending) >= maxPending {
		old := d.pending[0]
		d.pending = d.pending[1:]
		d.log.Error("ban dropped: state has not been writable for too long", keyJail, old.Jail.Name, keyAddr, old.Key)
	}
	d.pending = append(d.pending, dec)
	d.metrics.BanWriteFailed(len(d.pending))
	d.log.Error("ban not saved; will retry", keyJail, dec.Jail.Name, keyAddr, dec.Key, "pending", len(d.pending), keyErr, err)
}

// retryPending decides again the bans state could not save. A retry that
// fails again is kept again, in order.
func (d *Daemon) retryPending(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		return
	}
	todo := d.pending
	d.pending = nil
	for _, dec := range todo {
		if d.jails[dec.Jail.Name] != dec.Jail {
			// Reloaded meanwhile: decide with the jail as it is now.
			j, ok := d.jails[dec.Jail.Name]
			if !ok {
				continue
			}
			dec.Jail = j
		}
		d.banDecision(ctx, dec)
	}
	d.metrics.BansPending(len(d.pending))
	if len(d.pending) == 0 {
		d.log.Info("state writable again: pending bans saved", "bans", len(todo))
	}
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
	saved, err := d.saveBan(b)
	if err != nil {
		return state.Ban{}, err
	}
	return saved, d.applyBan(ctx, saved, decided)
}

// saveBan makes b durable. A ban the firewall would refuse (wider than
// min_prefix) is refused before it is stored: stored, it was retried and
// logged every resync, and kept the daemon from starting again.
func (d *Daemon) saveBan(b state.Ban) (state.Ban, error) {
	if c, ok := d.fw.(firewall.Checker); ok {
		if _, err := c.Check(firewall.Entry{Prefix: b.Prefix, Timeout: max(b.Until.Sub(d.now()), time.Second)}); err != nil {
			return state.Ban{}, fmt.Errorf("%w: the firewall refuses %s: %w", control.ErrInvalid, b.Prefix, err)
		}
	}
	put := d.store.PutBan
	if d.putBanFault != nil {
		put = d.putBanFault
	}
	saved, err := put(b)
	if err != nil {
		return state.Ban{}, fmt.Errorf("%w: %w", errNotSaved, err)
	}
	return saved, nil
}

// applyBan puts a saved ban in the firewall. On failure it stays in
// state: the next resync applies it again.
func (d *Daemon) applyBan(ctx context.Context, saved state.Ban, decided time.Time) error {
	left := saved.Until.Sub(d.now())
	if err := d.fw.Add(ctx, []firewall.Entry{{Prefix: saved.Prefix, Timeout: left}}); err != nil {
		d.metrics.FirewallError(metrics.OpAdd)
		return fmt.Errorf("apply ban: %w", err)
	}
	d.metrics.Ban(saved.Jail, saved.Origin, d.now().Sub(decided))
	if c := d.jailStats[saved.Jail]; c != nil {
		c.banned++
	}
	d.log.Info("ban", keyJail, saved.Jail, keyAddr, saved.Prefix, keyFailures, saved.Failures,
		keyUntil, saved.Until.UTC().Format(time.RFC3339), keyOrigin, saved.Origin, "count", saved.Count)
	return nil
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
