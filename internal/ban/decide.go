package ban

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"smtpban/internal/metrics"
	"smtpban/jails"
	"smtpban/state"
)

// plan is one ban a batch will make.
type plan struct {
	ban   state.Ban
	inner []netip.Prefix // saved bans the ban takes the place of (widen)
	decs  []jails.Decision
}

// decide turns a batch of decisions into bans: one state transaction for
// all of them, then one firewall batch. Decisions state could not save are
// kept for retryPending. The caller holds mu.
func (m *Manager) decide(ctx context.Context, ds []jails.Decision) ([]state.Ban, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	decided := m.now()
	keys := make([]netip.Prefix, len(ds))
	for i, d := range ds {
		keys[i] = d.Key
	}
	history, err := m.store.BanHistories(keys)
	if err != nil {
		m.log.Error("read ban histories", keyErr, err)
	}
	plans := newPlans()
	for _, d := range ds {
		m.planOne(d, decided, history, plans)
	}
	if len(plans.list) == 0 {
		return nil, nil
	}
	bans := make([]state.Ban, 0, len(plans.list))
	for _, p := range plans.list {
		bans = append(bans, p.ban)
	}
	saved, err := m.put(bans)
	if err != nil {
		for _, p := range plans.list {
			m.keepPending(p.decs)
		}
		m.met.BanWriteFailed(len(m.pending))
		m.log.Error("bans not saved; will retry", "bans", len(bans), "pending", len(m.pending), keyErr, err)
		m.keepUnsaved(bans, err)
		m.applyUnsaved(ctx, bans)
		return nil, err
	}
	m.saved(saved)
	// Bans a widened one now covers go, after it is durable and before it
	// reaches the kernel: a set cannot hold a prefix and one inside it.
	var inner []netip.Prefix
	for _, p := range plans.list {
		inner = append(inner, p.inner...)
	}
	if len(inner) > 0 {
		m.lift(ctx, inner)
	}
	if m.onBan != nil {
		for _, b := range saved {
			m.onBan(b)
		}
	}
	m.apply(ctx, saved, decided)
	// After the kernel: the queue's write is a disk flush of its own,
	// which the local ban does not wait for.
	m.publish(saved, false)
	return saved, nil
}

// planOne adds d's ban to plans, merges it into one planned for the same
// key, or drops it (protected, covered, already over). The caller holds mu.
func (m *Manager) planOne(d jails.Decision, now time.Time, history map[netip.Prefix]int, plans *plans) {
	j := d.Jail
	if cur := m.policy.Jails[j.Name]; cur != nil {
		j = cur // reloaded since it was decided
	}
	if reason, why := m.protection(j.Name, d.Key, d.Addr, now); why != "" {
		m.met.BanSkipped(reason)
		m.log.Warn("ban skipped", keyJail, j.Name, keyAddr, d.Key, keyFailures, d.Failures, "reason", why)
		return
	}
	// A line cannot say it is from the future (logline clamps it); this
	// keeps a ban from starting later than now whatever its source.
	since := d.Time
	if since.After(now) {
		since = now
	}
	if by := m.covering(d.Key, now, plans); by.IsValid() {
		// Dropped already by a wider ban: a nested element would only
		// collide with it in the kernel's set.
		m.met.BanSkipped(metrics.SkipCovered)
		m.log.Debug("ban skipped", keyJail, j.Name, keyAddr, d.Key, "reason", "covered by the ban of "+by.String())
		return
	}
	key, inner, innerPlans := m.widen(j, d.Key, d.Addr, now, plans)
	prior, ok := history[key]
	if !ok { // a widened key: not read with the batch
		var err error
		if prior, _, err = m.store.BanHistory(key); err != nil {
			m.log.Error("read ban history", keyAddr, key, keyErr, err)
		}
	}
	if cur, ok := m.held.active(key, now); ok && !d.Time.After(cur.since) && prior > 0 {
		// Banned already, for failures no newer than the ban: lines that
		// were on their way when it came, or the tipping line read again
		// after a crash. The same offence at the same step: escalating
		// here turned a 1h ban into 2h after a kill -9.
		prior--
	}
	until := since.Add(j.BanDuration(prior))
	if !until.After(now) {
		// Catching up on old lines after downtime: this ban would
		// already have ended.
		m.met.BanSkipped(metrics.SkipOver)
		return
	}
	if err := m.check(key, until.Sub(now)); err != nil {
		m.met.BanSkipped(metrics.SkipRefused)
		m.log.Error("ban refused", keyJail, j.Name, keyAddr, key, keyErr, err)
		return
	}
	var innerKeys []netip.Prefix
	for _, b := range inner {
		until = later(until, b.Until) // the wider ban keeps the longest
		innerKeys = append(innerKeys, b.Prefix)
	}
	decs := []jails.Decision{d}
	for _, ip := range innerPlans {
		until = later(until, ip.ban.Until)
		decs = append(decs, ip.decs...)
		innerKeys = append(innerKeys, ip.inner...)
		plans.remove(ip)
	}
	if p := plans.byKey[key]; p != nil {
		// Two jails, or two lines of one batch, on one key: one ban,
		// which says what the later decision says, as a ban continued
		// in a later batch would.
		p.ban.Until = later(p.ban.Until, until)
		p.ban.Jail, p.ban.Failures, p.ban.Lines = j.Name, d.Failures, d.Lines
		p.decs = append(p.decs, decs...)
		return
	}
	p := &plan{
		ban: state.Ban{
			Prefix: key, Jail: j.Name, Since: since, Until: until,
			Failures: d.Failures, Lines: d.Lines, Origin: m.origin,
		},
		inner: innerKeys,
		decs:  decs,
	}
	if len(inner)+len(innerPlans) > 0 {
		m.log.Info("ban widened", keyJail, j.Name, keyAddr, key, "inside", len(inner)+len(innerPlans), "tipping", d.Key)
	}
	plans.add(p)
}

// covering returns the active ban, saved or planned in this batch (nil
// plans: saved only), that strictly contains key, or the zero prefix.
func (m *Manager) covering(key netip.Prefix, now time.Time, plans *plans) netip.Prefix {
	if b := plans.covering(key); b.IsValid() {
		return b
	}
	return m.held.covering(key, now)
}

// widen returns the prefix a ban of key becomes under j's widen rule,
// with the saved bans and the plans of this batch inside it that the
// wider ban replaces. It returns key alone when the rule does not apply,
// or the wider prefix is protected.
func (m *Manager) widen(j *jails.Jail, key netip.Prefix, addr netip.Addr, now time.Time, plans *plans) (netip.Prefix, []state.Ban, []*plan) {
	wide, ok := j.Widen.Prefix(key)
	if !ok {
		return key, nil, nil
	}
	within, err := m.store.BansWithin(wide)
	if err != nil {
		m.log.Error("list bans to widen", keyAddr, wide, keyErr, err)
		return key, nil, nil
	}
	var inner []state.Ban
	for _, b := range within {
		if b.Until.After(now) && b.Prefix != key {
			inner = append(inner, b)
		}
	}
	distinct := map[netip.Prefix]bool{key: true}
	for _, b := range inner {
		distinct[b.Prefix] = true
	}
	var innerPlans []*plan
	for _, p := range plans.list {
		if b := p.ban.Prefix; b != key && b.Bits() > wide.Bits() && wide.Contains(b.Addr()) {
			innerPlans = append(innerPlans, p)
			distinct[b] = true
		}
	}
	if len(distinct) < j.Widen.After {
		return key, nil, nil
	}
	if why := m.protected(j.Name, wide, addr, now); why != "" {
		m.log.Warn("ban not widened", keyJail, j.Name, keyAddr, wide, "reason", why)
		return key, nil, nil
	}
	return wide, inner, innerPlans
}

// plans are the bans a batch will make, in order, by key, and counted by
// prefix length: a covering ban is found with a lookup per length in use
// (one or two), where a scan of the batch made a 5,000-ban burst cost
// twelve million comparisons.
type plans struct {
	list  []*plan
	byKey map[netip.Prefix]*plan
	lens  map[prefixLen]int
}

type prefixLen struct {
	v4   bool
	bits int
}

func newPlans() *plans {
	return &plans{byKey: map[netip.Prefix]*plan{}, lens: map[prefixLen]int{}}
}

func (ps *plans) add(p *plan) {
	ps.list = append(ps.list, p)
	ps.byKey[p.ban.Prefix] = p
	ps.lens[prefixLen{p.ban.Prefix.Addr().Is4(), p.ban.Prefix.Bits()}]++
}

func (ps *plans) remove(p *plan) {
	for i, q := range ps.list {
		if q == p {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			break
		}
	}
	delete(ps.byKey, p.ban.Prefix)
	l := prefixLen{p.ban.Prefix.Addr().Is4(), p.ban.Prefix.Bits()}
	if ps.lens[l]--; ps.lens[l] <= 0 {
		delete(ps.lens, l)
	}
}

// covering returns the planned ban that strictly contains key, or the
// zero prefix.
func (ps *plans) covering(key netip.Prefix) netip.Prefix {
	if ps == nil {
		return netip.Prefix{}
	}
	for l := range ps.lens {
		if l.v4 != key.Addr().Is4() || l.bits >= key.Bits() {
			continue
		}
		wide := netip.PrefixFrom(key.Addr(), l.bits).Masked()
		if p := ps.byKey[wide]; p != nil {
			return wide
		}
	}
	return netip.Prefix{}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// keepPending keeps decisions for retryPending. The caller holds mu.
func (m *Manager) keepPending(ds []jails.Decision) {
	for _, d := range ds {
		if len(m.pending) >= maxPending {
			old := m.pending[0]
			m.pending = m.pending[1:]
			m.met.BanSkipped(metrics.SkipDropped)
			m.log.Error("ban dropped: state has not been writable for too long", keyJail, old.Jail.Name, keyAddr, old.Key)
		}
		m.pending = append(m.pending, d)
	}
}

// retryPending decides again the bans state could not save, in one batch.
func (m *Manager) retryPending(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) == 0 {
		return
	}
	todo := m.pending
	m.pending = nil
	if _, err := m.decide(ctx, todo); err == nil {
		m.log.Info("state writable again: pending bans saved", "decisions", len(todo))
	}
	m.met.BansPending(len(m.pending))
}

// lift removes bans from state and the firewall. The caller holds mu.
func (m *Manager) lift(ctx context.Context, ps []netip.Prefix) {
	for _, p := range ps {
		if _, _, err := m.store.DeleteBan(p); err != nil {
			m.log.Error("lift covered ban", keyAddr, p, keyErr, err)
			continue
		}
		m.held.drop(p)
	}
	if err := m.fw.Remove(ctx, ps); err != nil {
		m.log.Error("remove covered bans from the firewall", "bans", len(ps), keyErr, fmt.Errorf("remove: %w", err))
	}
}
