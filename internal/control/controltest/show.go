package controltest

import (
	"context"
	"net/netip"
	"time"

	"smtpban/internal/control"
)

var _ control.Shower = (*Fake)(nil)

// Show returns the fake's active bans covering a, a ban history of one
// for each, and one failure in "postfix-sasl" for any address in
// 198.51.100.0/24.
func (f *Fake) Show(ctx context.Context, a netip.Addr) (control.AddrView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "show "+a.String())
	v := control.AddrView{Addr: a}
	for _, b := range f.bans {
		if b.Prefix.Contains(a) {
			v.Bans = append(v.Bans, control.ShowBan{Ban: b, Lines: []string{b.Line}})
			v.History = append(v.History, control.BanHistory{Prefix: b.Prefix, Count: b.Count, Last: b.Since})
		}
	}
	if netip.MustParsePrefix("198.51.100.0/24").Contains(a) {
		v.Failures = append(v.Failures, control.Failures{Jail: "postfix-sasl", Key: netip.PrefixFrom(a, 32), Count: 1, MaxRetry: 5, FindTime: "1h0m0s", Times: []time.Time{f.Now().Add(-time.Minute)}})
	}
	return v, nil
}
