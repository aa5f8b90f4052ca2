package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"smtpban/firewall"
	"smtpban/internal/metrics"
	"smtpban/jails"
	"smtpban/state"
)

// ErrNoJail is returned for a ban by hand in a jail the config lacks.
var ErrNoJail = errors.New("no such jail")

// Ban bans p by hand, in jail (Manual if ""), for d (the jail's bantime,
// or ManualBanTime, if 0). A protected prefix, one the firewall refuses
// and one inside an active wider ban are refused with ErrRefused, and
// nothing is stored.
func (m *Manager) Ban(ctx context.Context, p netip.Prefix, jail string, d time.Duration) (state.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p = Normalize(p)
	if jail == "" {
		jail = Manual
	} else if m.policy.Jails[jail] == nil && jail != Account {
		return state.Ban{}, fmt.Errorf("%w: %q", ErrNoJail, jail)
	}
	if d <= 0 {
		d = ManualBanTime
		if j := m.policy.Jails[jail]; j != nil {
			d = j.BanTime
		}
	}
	now := m.now()
	if why := m.protected(jail, p, p.Addr(), now); why != "" {
		return state.Ban{}, fmt.Errorf("%w: refusing to ban %s: %s", ErrRefused, p, why)
	}
	if err := m.check(p, d); err != nil {
		return state.Ban{}, err
	}
	if by := m.covering(p, now, nil); by.IsValid() {
		return state.Ban{}, fmt.Errorf("%w: %s is inside the active ban of %s", ErrRefused, p, by)
	}
	// Prefix bans inside this one go: a set cannot hold a prefix and one
	// inside it. The wider ban keeps the latest end. (Addresses live in
	// sets of their own.)
	until := now.Add(d)
	var inner []netip.Prefix
	if !p.IsSingleIP() {
		within, err := m.store.BansWithin(p)
		if err != nil {
			return state.Ban{}, fmt.Errorf("list bans inside %s: %w", p, err)
		}
		for _, b := range within {
			if !b.Prefix.IsSingleIP() && b.Until.After(now) {
				inner = append(inner, b.Prefix)
				until = later(until, b.Until)
			}
		}
	}
	saved, err := m.put([]state.Ban{{Prefix: p, Jail: jail, Since: now, Until: until, Origin: m.origin}})
	if err != nil {
		return state.Ban{}, fmt.Errorf("save ban: %w", err)
	}
	if len(inner) > 0 {
		m.lift(ctx, inner)
	}
	m.apply(ctx, saved, now)
	m.publish(saved, true)
	return saved[0], nil
}

// Normalize unmaps IPv4-mapped addresses and masks the prefix.
func Normalize(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), max(p.Bits()-96, 0))
	}
	return p.Masked()
}

// UnbanMatch says which bans `smtpban unban` lifts: those on p (equal, or
// a prefix containing the address p) in jail ("" = any), or every ban.
func UnbanMatch(p netip.Prefix, jail string, all bool) func(state.Ban) bool {
	p = Normalize(p)
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

// Unban lifts every ban match accepts, from state and then the firewall,
// and returns them; with a Publisher, they are lifted everywhere. The
// caller forgets their failure windows.
func (m *Manager) Unban(ctx context.Context, match func(state.Ban) bool) ([]state.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lifted, err := m.unban(ctx, match)
	m.withdraw(lifted)
	return lifted, err
}

// UnbanLocal is Unban on this host only: the shared ban list keeps them.
func (m *Manager) UnbanLocal(ctx context.Context, match func(state.Ban) bool) ([]state.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unban(ctx, match)
}

func (m *Manager) unban(ctx context.Context, match func(state.Ban) bool) ([]state.Ban, error) {
	bans, err := m.store.Bans()
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	var lifted []state.Ban
	var prefixes []netip.Prefix
	for _, b := range bans {
		if !match(b) {
			continue
		}
		if _, _, err := m.store.DeleteBan(b.Prefix); err != nil {
			return lifted, fmt.Errorf("delete ban %s: %w", b.Prefix, err)
		}
		m.held.drop(b.Prefix)
		lifted = append(lifted, b)
		prefixes = append(prefixes, b.Prefix)
	}
	for _, b := range m.unbanUnsaved(match) {
		if !slices.Contains(prefixes, b.Prefix) { // saved earlier, extended unsaved
			lifted = append(lifted, b)
			prefixes = append(prefixes, b.Prefix)
		}
	}
	if len(prefixes) > 0 {
		if err := m.fw.Remove(ctx, prefixes); err != nil {
			m.met.FirewallError(metrics.OpRemove)
			return lifted, fmt.Errorf("remove from firewall: %w", err)
		}
	}
	for _, b := range lifted {
		m.met.Unban(b.Jail, b.Origin)
		m.log.Info("unban", keyJail, b.Jail, keyAddr, b.Prefix, keyFailures, b.Failures,
			keyUntil, b.Until.UTC().Format(time.RFC3339), keyOrigin, b.Origin)
	}
	return lifted, nil
}

// Allow puts p on the allow list (for d, or for good if d is 0) and lifts
// the bans it overlaps, which it returns.
func (m *Manager) Allow(ctx context.Context, p netip.Prefix, d time.Duration) ([]state.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p = Normalize(p)
	var until time.Time
	if d > 0 {
		until = m.now().Add(d)
	}
	if err := m.store.PutAllow(p, until); err != nil {
		return nil, fmt.Errorf("save allow entry: %w", err)
	}
	m.allow[p] = until
	return m.unban(ctx, func(b state.Ban) bool { return b.Prefix.Overlaps(p) })
}

// AllowEntry is one allow list entry; a zero Until is for good.
type AllowEntry struct {
	Prefix netip.Prefix
	Until  time.Time
}

// AllowList returns the allow list, by prefix.
func (m *Manager) AllowList() []AllowEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]AllowEntry, 0, len(m.allow))
	for p, until := range m.allow {
		out = append(out, AllowEntry{Prefix: p, Until: until})
	}
	// By text, as the list has always been shown.
	slices.SortFunc(out, func(a, b AllowEntry) int { return strings.Compare(a.Prefix.String(), b.Prefix.String()) })
	return out
}

// AllowRemove takes p off the allow list; false if it was not on it.
func (m *Manager) AllowRemove(p netip.Prefix) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p = Normalize(p)
	if _, ok := m.allow[p]; !ok {
		return false, nil
	}
	if err := m.store.DeleteAllow(p); err != nil {
		return false, fmt.Errorf("delete allow entry: %w", err)
	}
	delete(m.allow, p)
	return true, nil
}

// Sweep forgets expired bans and allow entries. The kernel drops expired
// elements by itself.
func (m *Manager) Sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for p, until := range m.allow {
		if !until.IsZero() && !until.After(now) {
			delete(m.allow, p)
			if err := m.store.DeleteAllow(p); err != nil {
				m.log.Error("forget expired allow entry", keyAddr, p, keyErr, err)
			}
		}
	}
	gone, err := m.store.Sweep(now)
	if err != nil {
		m.log.Error("sweep expired bans", keyErr, err)
		return
	}
	for _, b := range gone {
		m.held.drop(b.Prefix)
		m.met.Expired(b.Jail, b.Origin)
		m.log.Info("ban expired", keyJail, b.Jail, keyAddr, b.Prefix, keyFailures, b.Failures,
			keyUntil, b.Until.UTC().Format(time.RFC3339), keyOrigin, b.Origin)
	}
}

// Restore runs at start: it forgets expired bans, loads the allow list
// and puts the live bans back in the firewall.
func (m *Manager) Restore(ctx context.Context) (added, removed int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.store.Sweep(m.now()); err != nil {
		return 0, 0, fmt.Errorf("sweep expired bans: %w", err)
	}
	allows, err := m.store.Allows()
	if err != nil {
		return 0, 0, fmt.Errorf("load allow list: %w", err)
	}
	m.allow = allows
	if err := m.restoreAdopt(ctx); err != nil {
		m.log.Error("re-learn bans from the kernel", keyErr, err)
	}
	added, removed, err = m.resync(ctx)
	m.met.Resync("start")
	if err != nil {
		m.met.FirewallError(metrics.OpResync)
	}
	return added, removed, err
}

// Resync makes the firewall hold exactly the active bans in state, and
// says so in the log when it did not.
func (m *Manager) Resync(ctx context.Context, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	added, removed, err := m.resync(ctx)
	m.met.Resync(why)
	if err != nil {
		m.met.FirewallError(metrics.OpResync)
		m.log.Error("firewall resync", "why", why, keyErr, err)
		return
	}
	if added+removed > 0 {
		m.log.Warn("firewall was out of step with state; restored", "why", why, "added", added, "removed", removed)
	}
}

func (m *Manager) resync(ctx context.Context) (added, removed int, err error) {
	if e, ok := m.fw.(firewall.Ensurer); ok {
		if err := e.Ensure(ctx); err != nil {
			return 0, 0, fmt.Errorf("ensure firewall table: %w", err)
		}
	}
	bans, err := m.store.Bans()
	if err != nil {
		return 0, 0, fmt.Errorf("list bans: %w", err)
	}
	// State is the truth: the view follows it at every resync, with the
	// bans in the kernel that state could not save yet.
	m.held.load(bans)
	for _, b := range m.unsaved {
		if _, ok := m.held.active(b.Prefix, m.now()); !ok {
			m.held.put(b)
			bans = append(bans, b)
		}
	}
	now := m.now()
	want := make([]firewall.Entry, 0, len(bans))
	for _, b := range bans {
		if left := b.Until.Sub(now); left > 0 {
			want = append(want, firewall.Entry{Prefix: b.Prefix, Timeout: left})
		}
	}
	added, removed, err = firewall.Reconcile(ctx, m.fw, want)
	if errors.Is(err, firewall.ErrRefused) {
		// Bans saved before a limit or a never-ban class applied: the rest
		// is in place, and these expire from state by themselves. Failing
		// here would keep the daemon from starting.
		m.log.Warn("bans in state left out of the firewall", keyErr, err)
		err = nil
	}
	if err != nil {
		return added, removed, fmt.Errorf("reconcile firewall: %w", err)
	}
	return added, removed, nil
}

// PolicyFor builds the policy of jails js with the global ignore list and
// the host's own addresses.
func PolicyFor(js []*jails.Jail, global []netip.Prefix, own []netip.Addr) Policy {
	networks := slices.Clone(global)
	for _, a := range own {
		a = a.Unmap()
		networks = append(networks, netip.PrefixFrom(a, a.BitLen()))
	}
	p := Policy{
		Jails:    map[string]*jails.Jail{},
		Ignore:   map[string]*jails.IgnoreList{},
		Global:   jails.NewIgnoreList(networks...),
		Networks: networks,
	}
	for _, j := range js {
		p.Jails[j.Name] = j
		p.Ignore[j.Name] = jails.NewIgnoreList(append(slices.Clone(networks), j.Ignore...)...)
	}
	return p
}
