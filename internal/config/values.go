package config

import (
	"fmt"
	"math/big"
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The helpers below evaluate one attribute (or list element) and report a
// problem at its value's range; ok is false when they reported one.

// value evaluates e as a constant of type want.
func (l *loader) value(e hcl.Expression, name string, want cty.Type) (cty.Value, bool) {
	v, hds := e.Value(nil)
	if hds.HasErrors() {
		l.diags = append(l.diags, fromHCL(hds)...)
		return cty.NilVal, false
	}
	if v.IsNull() {
		l.errorf(e.Range(), "Invalid value", "%s must not be null", name)
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, want)
	if err != nil {
		l.errorf(e.Range(), "Incorrect value type", "%s must be a %s, not %s", name, want.FriendlyName(), v.Type().FriendlyName())
		return cty.NilVal, false
	}
	return cv, true
}

func (l *loader) str(e hcl.Expression, name string) (string, bool) {
	v, ok := l.value(e, name, cty.String)
	if !ok {
		return "", false
	}
	return v.AsString(), true
}

// nonEmpty is str that also refuses "".
func (l *loader) nonEmpty(e hcl.Expression, name string) (string, bool) {
	s, ok := l.str(e, name)
	if ok && s == "" {
		l.errorf(e.Range(), "Invalid value", "%s must not be empty", name)
		return "", false
	}
	return s, ok
}

func (l *loader) boolean(e hcl.Expression, name string) (bool, bool) {
	v, ok := l.value(e, name, cty.Bool)
	if !ok {
		return false, false
	}
	return v.True(), true
}

func (l *loader) number(e hcl.Expression, name string) (*big.Float, bool) {
	v, ok := l.value(e, name, cty.Number)
	if !ok {
		return nil, false
	}
	return v.AsBigFloat(), true
}

// integer is number restricted to whole numbers in [lo, hi].
func (l *loader) integer(e hcl.Expression, name string, lo, hi int) (int, bool) {
	f, ok := l.number(e, name)
	if !ok {
		return 0, false
	}
	i, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || i < int64(lo) || i > int64(hi) {
		l.errorf(e.Range(), "Invalid "+name, "%s is %s; it must be a whole number from %d to %d", name, f.Text('g', -1), lo, hi)
		return 0, false
	}
	return int(i), true
}

// duration reads a duration string; it must be positive.
func (l *loader) duration(e hcl.Expression, name string) (time.Duration, bool) {
	s, ok := l.str(e, name)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.errorf(e.Range(), "Invalid duration", "%s: %v", name, err)
		return 0, false
	}
	if d <= 0 {
		l.errorf(e.Range(), "Invalid duration", "%s is %q; it must be longer than 0", name, s)
		return 0, false
	}
	return d, true
}

// list returns the element expressions of a static list, so that each
// element's problems are reported at that element.
func (l *loader) list(e hcl.Expression, name string) ([]hcl.Expression, bool) {
	es, hds := hcl.ExprList(e)
	if hds.HasErrors() {
		r := e.Range()
		for i := range hds {
			hds[i].Detail = fmt.Sprintf("%s must be a list written out as [ ... ]. %s", name, hds[i].Detail)
			hds[i].Subject = &r // the whole value, as for every other check
		}
		l.diags = append(l.diags, fromHCL(hds)...)
		return nil, false
	}
	return es, true
}

// strList reads a list of strings; bad elements are reported and left out.
func (l *loader) strList(e hcl.Expression, name string) ([]string, []hcl.Range, bool) {
	es, ok := l.list(e, name)
	if !ok {
		return nil, nil, false
	}
	var out []string
	var rs []hcl.Range
	for _, el := range es {
		s, ok := l.str(el, name+" element")
		if !ok {
			continue
		}
		out = append(out, s)
		rs = append(rs, el.Range())
	}
	return out, rs, len(out) == len(es)
}

// prefixes reads a list of addresses and CIDR prefixes. A bare address is
// its own /32 or /128; IPv4-mapped IPv6 addresses are unmapped, and
// host bits are masked off.
func (l *loader) prefixes(e hcl.Expression, name string) []netip.Prefix {
	ss, rs, _ := l.strList(e, name)
	var out []netip.Prefix
	for i, s := range ss {
		p, err := parsePrefix(s)
		if err != nil {
			l.errorf(rs[i], "Invalid CIDR", "%s: %q is neither an address nor a CIDR prefix", name, s)
			continue
		}
		out = append(out, p)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func (l *loader) errorf(r hcl.Range, summary, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{Severity: SeverityError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: r})
}

func (l *loader) warnf(r hcl.Range, summary, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{Severity: SeverityWarning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: r})
}
