package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"smtpban/internal/control"
)

var _ control.Shower = (*Daemon)(nil)

// Show gathers what the daemon knows of one address: the active bans
// covering it with their recorded lines, the ban history of every prefix
// a jail would key it under, and its live failure windows per jail.
func (d *Daemon) Show(ctx context.Context, a netip.Addr) (control.AddrView, error) {
	a = a.Unmap()
	v := control.AddrView{Addr: a}
	now := d.now()
	// bbolt reads without mu, as Status and Bans.
	bans, err := d.store.Bans()
	if err != nil {
		return v, fmt.Errorf("list bans: %w", err)
	}
	for _, b := range bans {
		if b.Prefix.Contains(a) && b.Until.After(now) {
			v.Bans = append(v.Bans, control.ShowBan{Ban: apiBan(b), Lines: b.Lines})
		}
	}
	d.mu.Lock()
	windows := d.counter.WindowsOf(a)
	prefixes := []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}
	maxRetry, findTime := map[string]int{}, map[string]string{}
	for _, j := range d.cfg.Jails {
		maxRetry[j.Name], findTime[j.Name] = j.MaxRetry, j.FindTime.String()
		if p := j.Key.Prefix(a); p.IsValid() && !slices.Contains(prefixes, p) {
			prefixes = append(prefixes, p)
		}
		if w, ok := j.Widen.Prefix(j.Key.Prefix(a)); ok && !slices.Contains(prefixes, w) {
			prefixes = append(prefixes, w)
		}
	}
	d.mu.Unlock()
	for _, b := range v.Bans {
		if !slices.Contains(prefixes, b.Prefix) {
			prefixes = append(prefixes, b.Prefix)
		}
	}
	for _, p := range prefixes {
		n, last, err := d.store.BanHistory(p)
		if err != nil {
			return v, fmt.Errorf("ban history of %s: %w", p, err)
		}
		if n == 0 {
			continue
		}
		h := control.BanHistory{Prefix: p, Count: n, Last: last}
		jbs, err := d.store.JailBans(p)
		if err != nil {
			return v, err
		}
		for _, jb := range jbs {
			h.Jails = append(h.Jails, control.JailBans{Jail: jb.Jail, Count: jb.Count, Last: jb.Last})
		}
		v.History = append(v.History, h)
	}
	for _, w := range windows {
		v.Failures = append(v.Failures, control.Failures{Jail: w.Jail, Key: w.Key, Count: len(w.Times), MaxRetry: maxRetry[w.Jail], FindTime: findTime[w.Jail], Times: w.Times})
	}
	return v, nil
}
