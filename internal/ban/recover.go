package ban

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"smtpban/firewall"
	"smtpban/internal/metrics"
	"smtpban/state"
)

// Recovered names the bans re-learnt from the kernel's set at start: the
// set keeps an address and its remaining time, not the jail that banned it.
const Recovered = "recovered"

// Bans state cannot save (a full disk, a read-only state directory) still
// go to the kernel: a host that stops banning because its own bookkeeping
// fails is the wrong trade. "Durable before the kernel" still holds
// whenever the disk takes writes; while it does not, the ban is applied,
// kept in unsaved (so that a resync keeps it in the set rather than
// removing it as a stray), and its decision is kept pending and saved by
// the retry once state is writable. A crash meanwhile loses nothing either:
// the kernel element outlives the daemon, and the next start re-learns it
// (adoptKernel).

// unsavedBan records, the caller holding mu, bans applied to the kernel
// but not saved.
func (m *Manager) keepUnsaved(bans []state.Ban, err error) {
	if m.unsaved == nil {
		m.unsaved = map[netip.Prefix]state.Ban{}
	}
	// Bounded by the bans in force: ended ones go (the kernel dropped
	// them already).
	now := m.now()
	for p, b := range m.unsaved {
		if !b.Until.IsZero() && !b.Until.After(now) {
			delete(m.unsaved, p)
		}
	}
	for _, b := range bans {
		m.unsaved[b.Prefix] = b
		m.held.put(b)
	}
	if m.writeErr == "" {
		m.writeFailedSince = m.now()
		m.log.Error("STATE IS NOT BEING WRITTEN: bans still reach the kernel and are saved once state is writable again", keyErr, err)
	}
	m.writeErr = err.Error()
}

// saved notes, the caller holding mu, that state took a write.
func (m *Manager) saved(bans []state.Ban) {
	for _, b := range bans {
		delete(m.unsaved, b.Prefix)
	}
	if len(m.pending) == 0 && m.writeErr != "" {
		m.log.Warn("state is written again", "unwritable_for", m.now().Sub(m.writeFailedSince).Round(time.Second))
		m.writeErr = ""
		clear(m.unsaved)
	}
}

// applyUnsaved puts bans that could not be saved in the firewall. The
// caller holds mu.
func (m *Manager) applyUnsaved(ctx context.Context, bans []state.Ban) {
	now := m.now()
	entries := make([]firewall.Entry, 0, len(bans))
	for _, b := range bans {
		entries = append(entries, firewall.Entry{Prefix: b.Prefix, Timeout: b.Until.Sub(now)})
	}
	if err := m.fw.Add(ctx, entries); err != nil {
		m.met.FirewallError(metrics.OpAdd)
		m.log.Error("unsaved bans not applied either", "bans", len(entries), keyErr, err)
		return
	}
	for _, b := range bans {
		m.log.Warn("ban applied, not saved", keyJail, b.Jail, keyAddr, b.Prefix, keyUntil, b.Until.UTC().Format(time.RFC3339))
	}
}

// Unsaved returns the bans in the kernel that state could not save yet,
// so that `smtpban bans` lists them too.
func (m *Manager) Unsaved() []state.Ban {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]state.Ban, 0, len(m.unsaved))
	for _, b := range m.unsaved {
		if b.Until.IsZero() || b.Until.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// unbanUnsaved lifts the unsaved bans match accepts, and forgets their
// pending decisions so that the retry does not make them again. The
// caller holds mu and removes the prefixes from the firewall.
func (m *Manager) unbanUnsaved(match func(state.Ban) bool) []state.Ban {
	var lifted []state.Ban
	for p, b := range m.unsaved {
		if !match(b) {
			continue
		}
		delete(m.unsaved, p)
		m.held.drop(p)
		lifted = append(lifted, b)
		kept := m.pending[:0]
		for _, d := range m.pending {
			if d.Key != p && !p.Contains(d.Key.Addr()) {
				kept = append(kept, d)
			}
		}
		clear(m.pending[len(kept):])
		m.pending = kept
	}
	return lifted
}

// StateHealth says whether state takes writes.
type StateHealth struct {
	Writable bool
	Err      string    // the last write error while unwritable
	Since    time.Time // unwritable since
	Pending  int       // decisions waiting to be saved
	Unsaved  int       // of which bans in the kernel only
}

// StateHealth reports whether state takes the manager's writes.
func (m *Manager) StateHealth() StateHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := StateHealth{Writable: m.writeErr == "", Err: m.writeErr, Pending: len(m.pending), Unsaved: len(m.unsaved)}
	if !h.Writable {
		h.Since = m.writeFailedSince
	}
	return h
}

// adoptKernel runs at start, before the first resync: every element of
// the kernel's set that state lacks (a lost or damaged database, bans
// applied while state was unwritable and then a crash) is saved as a ban
// of jail Recovered with the time it has left, instead of being removed
// as a stray. Elements that are protected now, or inside a wider ban in
// state, are left to the resync. The caller holds mu.
func (m *Manager) adoptKernel(ctx context.Context, bans []state.Ban) (int, error) {
	have, err := m.fw.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list the firewall: %w", err)
	}
	now := m.now()
	inState := make(map[netip.Prefix]bool, len(bans))
	h := newHeld()
	for _, b := range bans {
		if b.Until.IsZero() || b.Until.After(now) {
			inState[b.Prefix] = true
			h.put(b)
		}
	}
	var adopt []state.Ban
	for _, e := range have {
		if inState[e.Prefix] || e.Timeout <= 0 {
			continue
		}
		if why := m.protected("", e.Prefix, e.Prefix.Addr(), now); why != "" {
			m.log.Warn("kernel ban not adopted", keyAddr, e.Prefix, "reason", why)
			continue
		}
		if by := h.covering(e.Prefix, now); by.IsValid() {
			continue
		}
		adopt = append(adopt, state.Ban{
			Prefix: e.Prefix, Jail: Recovered, Since: now,
			Until: now.Add(e.Timeout).Truncate(time.Second), Origin: m.origin,
		})
	}
	if len(adopt) == 0 {
		return 0, nil
	}
	saved, err := m.store.PutBans(adopt)
	if err != nil {
		// The resync must not remove them: they stay as unsaved bans.
		m.keepUnsaved(adopt, err)
		return len(adopt), fmt.Errorf("save %d bans re-learnt from the kernel: %w", len(adopt), err)
	}
	for _, b := range saved {
		m.log.Warn("ban re-learnt from the kernel: it was missing from state", keyJail, b.Jail, keyAddr, b.Prefix,
			keyUntil, b.Until.UTC().Format(time.RFC3339))
	}
	return len(saved), nil
}

// merger is a Store that can merge an import (*state.Store).
type merger interface {
	Merge(state.Merge, time.Time) (state.MergeResult, error)
}

// ImportResult says what an import did.
type ImportResult struct {
	state.MergeResult
	Refused int // bans protected here, covered by a wider ban, or refused by the firewall
}

// Import merges an export into state (later until wins, expired skipped)
// and applies the bans it wrote. Bans go through this host's protection
// first: a ban moved from another host may name an address this one must
// never ban. The allow list is merged before the bans are checked.
func (m *Manager) Import(ctx context.Context, in state.Merge) (ImportResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.store.(merger)
	if !ok {
		return ImportResult{}, fmt.Errorf("this store cannot import")
	}
	now := m.now()
	var res ImportResult
	// Allows first, in their own merge, so that the bans below are
	// checked against them.
	r, err := st.Merge(state.Merge{Allows: in.Allows, History: in.History}, now)
	if err != nil {
		return res, err
	}
	res.Allows, res.History, res.Expired = r.Allows, r.History, r.Expired
	for p, until := range in.Allows {
		if until.IsZero() || until.After(now) {
			if old, ok := m.allow[p]; !ok || (!old.IsZero() && (until.IsZero() || until.After(old))) {
				m.allow[p] = until
			}
		}
	}
	var bans []state.Ban
	for _, b := range in.Bans {
		b.Prefix = Normalize(b.Prefix)
		if !b.Until.IsZero() && !b.Until.After(now) {
			res.Expired++
			continue
		}
		if why := m.protected(b.Jail, b.Prefix, b.Prefix.Addr(), now); why != "" {
			m.log.Warn("imported ban refused", keyJail, b.Jail, keyAddr, b.Prefix, "reason", why)
			res.Refused++
			continue
		}
		left := time.Duration(1<<63 - 1)
		if !b.Until.IsZero() {
			left = b.Until.Sub(now)
		}
		if err := m.check(b.Prefix, left); err != nil {
			m.log.Warn("imported ban refused", keyJail, b.Jail, keyAddr, b.Prefix, keyErr, err)
			res.Refused++
			continue
		}
		if by := m.held.covering(b.Prefix, now); by.IsValid() {
			res.Refused++
			continue
		}
		bans = append(bans, b)
	}
	r, err = st.Merge(state.Merge{Bans: bans}, now)
	if err != nil {
		return res, err
	}
	res.Bans, res.Kept = r.Bans, r.Kept
	if len(r.Bans) > 0 {
		entries := make([]firewall.Entry, 0, len(r.Bans))
		for _, b := range r.Bans {
			m.held.put(b)
			left := time.Duration(1<<63 - 1)
			if !b.Until.IsZero() {
				left = b.Until.Sub(now)
			}
			entries = append(entries, firewall.Entry{Prefix: b.Prefix, Timeout: left})
		}
		if err := m.fw.Add(ctx, entries); err != nil {
			m.met.FirewallError(metrics.OpAdd)
			m.log.Error("imported bans not applied; the next resync tries again", "bans", len(entries), keyErr, err)
		}
	}
	m.log.Info("import merged", "bans", len(r.Bans), "kept", res.Kept, "expired", res.Expired, "refused", res.Refused,
		"allows", res.Allows, "history", res.History)
	return res, nil
}

// restoreAdopt re-learns from the kernel what state lacks (adoptKernel).
// The caller holds mu.
func (m *Manager) restoreAdopt(ctx context.Context) error {
	if e, ok := m.fw.(firewall.Ensurer); ok {
		if err := e.Ensure(ctx); err != nil {
			return fmt.Errorf("ensure firewall table: %w", err)
		}
	}
	bans, err := m.store.Bans()
	if err != nil {
		return fmt.Errorf("list bans: %w", err)
	}
	n, err := m.adoptKernel(ctx, bans)
	if n > 0 && err == nil {
		m.log.Warn("bans re-learnt from the kernel's set", "bans", n, keyJail, Recovered)
	}
	return err
}
