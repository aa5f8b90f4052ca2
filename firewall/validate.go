package firewall

import (
	"errors"
	"fmt"
	"net/netip"

	"smtpban/internal/neverban"
)

// ErrRefused marks an entry that no backend will ever add: an invalid or too
// short prefix, a default route, a prefix holding an address that is never
// banned (see internal/neverban), or a timeout that is not positive.
var ErrRefused = errors.New("refused")

// Default shortest prefixes: anything wider would ban whole providers.
const (
	DefaultMinV4 = 16
	DefaultMinV6 = 32
)

// Limits bound what may be banned. A zero field takes its default.
type Limits struct {
	MinV4, MinV6 int
}

func (l Limits) withDefaults() Limits {
	if l.MinV4 <= 0 {
		l.MinV4 = DefaultMinV4
	}
	if l.MinV6 <= 0 {
		l.MinV6 = DefaultMinV6
	}
	return l
}

// Normalize turns p into the form backends store: IPv4-mapped IPv6 becomes
// IPv4 (::ffff:0:0/96+n -> /n) and host bits are cleared. It does not apply
// the minimum lengths.
func Normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("prefix %v: invalid: %w", p, ErrRefused)
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			// Wider than the mapped range: it covers non-IPv4 space too.
			return netip.Prefix{}, fmt.Errorf("prefix %v: mapped IPv4 shorter than /96: %w", p, ErrRefused)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a.WithZone(""), bits).Masked(), nil
}

// CheckPrefix normalizes p and refuses it if it is shorter than the limits
// allow (a /0 is always refused) or holds an address that is never banned:
// the daemon refuses those first, this is the last line of defence.
func (l Limits) CheckPrefix(p netip.Prefix) (netip.Prefix, error) {
	l = l.withDefaults()
	n, err := Normalize(p)
	if err != nil {
		return netip.Prefix{}, err
	}
	minBits := l.MinV6
	if n.Addr().Is4() {
		minBits = l.MinV4
	}
	if n.Bits() == 0 || n.Bits() < minBits {
		return netip.Prefix{}, fmt.Errorf("prefix %v: shorter than /%d: %w", p, minBits, ErrRefused)
	}
	if why := neverban.Prefix(n); why != "" {
		return netip.Prefix{}, fmt.Errorf("prefix %v: never banned (%s): %w", p, why, ErrRefused)
	}
	return n, nil
}

// Check validates and normalizes one entry.
func (l Limits) Check(e Entry) (Entry, error) {
	p, err := l.CheckPrefix(e.Prefix)
	if err != nil {
		return Entry{}, err
	}
	if e.Timeout <= 0 {
		return Entry{}, fmt.Errorf("prefix %v: timeout %v not positive: %w", e.Prefix, e.Timeout, ErrRefused)
	}
	return Entry{Prefix: p, Timeout: e.Timeout}, nil
}

// checkAll validates a whole batch; one bad entry refuses the batch.
func (l Limits) checkAll(entries []Entry) ([]Entry, error) {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		n, err := l.Check(e)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
