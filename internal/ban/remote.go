package ban

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"smtpban/state"
)

// Publisher takes this host's bans to the shared ban list. Its methods
// are called with the manager's lock held, after the bans are saved: they
// must not wait for the network (a durable local queue is fine).
type Publisher interface {
	// Publish is handed the bans one batch or one hand-made ban saved;
	// manual says they were made by hand.
	Publish(bans []state.Ban, manual bool)
	// Withdraw is handed the bans lifted everywhere (smtpban unban).
	Withdraw(prefixes []netip.Prefix)
}

// publish hands this host's saved bans to the Publisher. The caller holds
// mu.
func (m *Manager) publish(saved []state.Ban, manual bool) {
	if m.pub != nil && len(saved) > 0 {
		m.pub.Publish(saved, manual)
	}
}

// withdraw tells the Publisher of bans lifted everywhere. The caller
// holds mu.
func (m *Manager) withdraw(lifted []state.Ban) {
	if m.pub == nil || len(lifted) == 0 {
		return
	}
	ps := make([]netip.Prefix, 0, len(lifted))
	for _, b := range lifted {
		ps = append(ps, b.Prefix)
	}
	m.pub.Withdraw(ps)
}

// Remote is a ban another host made, as the shared ban list carries it.
type Remote struct {
	Prefix   netip.Prefix
	Jail     string
	Origin   string // the host that made it
	Reason   string // the line that tipped it, or why it was made by hand
	Since    time.Time
	Until    time.Time // decides when it ends
	Failures int
}

// RemoteResult says what became of a batch of remote bans.
type RemoteResult struct {
	Applied []state.Ban
	Refused int // protected here, or refused by the firewall
	Skipped int // over already, covered, or held here until later
}

// Remote applies bans other hosts made, in one state transaction and one
// firewall batch, through the same protection as this host's own: never
// loopback and the other never-ban classes, this host's own addresses,
// its ignore and allow lists (the cluster's peers are among its own
// addresses, see PolicyFor), nor a prefix the firewall refuses. They are
// not published again. Where two hosts ban one key, the later Until wins.
func (m *Manager) Remote(ctx context.Context, rs []Remote) (RemoteResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res RemoteResult
	now := m.now()
	var bans []state.Ban
	byKey := map[netip.Prefix]int{}
	for _, r := range rs {
		p := Normalize(r.Prefix)
		if !p.IsValid() || !r.Until.After(now) {
			res.Skipped++
			continue
		}
		if why := m.protected(r.Jail, p, p.Addr(), now); why != "" {
			res.Refused++
			m.log.Warn("remote ban refused", keyJail, r.Jail, keyAddr, p, keyOrigin, r.Origin, "reason", why)
			continue
		}
		if err := m.check(p, r.Until.Sub(now)); err != nil {
			res.Refused++
			m.log.Warn("remote ban refused", keyJail, r.Jail, keyAddr, p, keyOrigin, r.Origin, keyErr, err)
			continue
		}
		if cur, ok := m.held.active(p, now); ok && (cur.until.IsZero() || !cur.until.Before(r.Until)) {
			res.Skipped++ // held here already, as long or longer
			continue
		}
		if by := m.covering(p, now, nil); by.IsValid() {
			res.Skipped++
			continue
		}
		since := r.Since
		if since.IsZero() || since.After(now) {
			since = now
		}
		b := state.Ban{Prefix: p, Jail: r.Jail, Since: since, Until: r.Until, Failures: r.Failures, Origin: r.Origin}
		if r.Reason != "" {
			b.Lines = []string{r.Reason}
		}
		if i, ok := byKey[p]; ok {
			if b.Until.After(bans[i].Until) {
				bans[i] = b
			}
			continue
		}
		byKey[p] = len(bans)
		bans = append(bans, b)
	}
	if len(bans) == 0 {
		return res, nil
	}
	saved, err := m.put(bans)
	if err != nil {
		return res, fmt.Errorf("save %d remote bans: %w", len(bans), err)
	}
	m.apply(ctx, saved, now)
	res.Applied = saved
	return res, nil
}

// RemoteLift lifts, here only, the bans on exactly these prefixes: their
// keys left the shared ban list (lifted on another host, or expired).
func (m *Manager) RemoteLift(ctx context.Context, ps []netip.Prefix) ([]state.Ban, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	set := make(map[netip.Prefix]bool, len(ps))
	for _, p := range ps {
		set[Normalize(p)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unban(ctx, func(b state.Ban) bool { return set[b.Prefix] })
}
