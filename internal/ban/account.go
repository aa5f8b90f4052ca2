package ban

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Account names the bans of the addresses that used a held account, or
// guessed its password (the account watch).
const Account = "account"

// BanAccount bans each address for d in jail Account, through the same
// protection as every ban (never-ban classes, own addresses, ignore and
// allow lists): an office network on the ignore list is never banned
// because an account it uses was held. It returns the prefixes banned;
// refusals are joined in err, the rest still banned.
func (m *Manager) BanAccount(ctx context.Context, addrs []netip.Addr, d time.Duration) ([]netip.Prefix, error) {
	var banned []netip.Prefix
	var errs []error
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap()
		b, err := m.Ban(ctx, netip.PrefixFrom(a, a.BitLen()), Account, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		banned = append(banned, b.Prefix)
	}
	return banned, errors.Join(errs...)
}
