package config

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"smtpban/jails"
)

// Jail defaults, for attributes a jail block leaves out.
const (
	DefaultMaxRetry = 5
	DefaultFindTime = 10 * time.Minute
	DefaultBanTime  = time.Hour
	// DefaultIncrementMax caps escalation when bantime_increment has no
	// max: doubling without a cap would reach years within a few dozen bans.
	DefaultIncrementMax = Week
)

var jailSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "source"},
		{Name: "sources"},
		{Name: "programs"},
		{Name: "enabled"},
		{Name: "failregex", Required: true},
		{Name: "ignoreregex"},
		{Name: "successregex"},
		{Name: "maxretry"},
		{Name: "findtime"},
		{Name: "bantime"},
		{Name: "key"},
		{Name: "ignore"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "bantime_increment"}, {Type: "widen"}},
}

var widenSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "after", Required: true},
		{Name: "ip4"},
		{Name: "ip6"},
	},
}

var incrementSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "factor", Required: true},
		{Name: "max"},
	},
}

// jailDef is a jail as decoded, with the ranges later checks point at.
type jailDef struct {
	jail   *jails.Jail
	keyAt  hcl.Range // the key value, or the block's name when defaulted
	widen4 hcl.Range // widen's ip4 value, if set
	widen6 hcl.Range // widen's ip6 value, if set
}

// jail decodes a jail block. Jails are enabled unless they say otherwise:
// writing one means wanting it.
func (l *loader) jail(b *hcl.Block) {
	name, nameAt := b.Labels[0], b.LabelRanges[0]
	l.checkName("jail", name, nameAt)
	dup := !l.defined(l.jailDefs, "jail", name, nameAt)
	content, hds := b.Body.Content(jailSchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	attrs := content.Attributes

	j := &jails.Jail{
		Name:     name,
		Enabled:  true,
		MaxRetry: DefaultMaxRetry,
		FindTime: DefaultFindTime,
		BanTime:  DefaultBanTime,
		Key:      jails.Key{V4Bits: 32, V6Bits: 128},
	}
	def := &jailDef{jail: j, keyAt: nameAt}
	if a, ok := attrs["enabled"]; ok {
		j.Enabled, _ = l.boolean(a.Expr, "enabled")
	}
	l.jailSources(def, b, attrs)
	l.jailPrograms(def, b, attrs)
	if a, ok := attrs["failregex"]; ok {
		j.Failregex = l.patterns(a.Expr, "failregex", jails.CompileFailregex)
		if es, hds := hcl.ExprList(a.Expr); len(es) == 0 && !hds.HasErrors() {
			l.errorf(a.Expr.Range(), "Missing failregex", "jail %q has no failregex, so it can never match", name)
		}
	}
	if a, ok := attrs["ignoreregex"]; ok {
		j.Ignoreregex = l.patterns(a.Expr, "ignoreregex", jails.CompileIgnoreregex)
	}
	if a, ok := attrs["successregex"]; ok {
		j.Successregex = l.patterns(a.Expr, "successregex", jails.CompileSuccessregex)
	}
	if a, ok := attrs["maxretry"]; ok {
		f, ok := l.number(a.Expr, "maxretry")
		if ok {
			i, acc := f.Int64()
			if !f.IsInt() || acc != big.Exact || i < 1 || i > 1<<20 {
				l.errorf(a.Expr.Range(), "Invalid maxretry", "maxretry is %s; it must be a whole number, at least 1", f.Text('g', -1))
			} else {
				j.MaxRetry = int(i)
			}
		}
	}
	j.FindTime, _ = l.durationOr(attrs, "findtime", DefaultFindTime)
	j.BanTime, _ = l.durationOr(attrs, "bantime", DefaultBanTime)
	if a, ok := attrs["key"]; ok {
		def.keyAt = a.Expr.Range()
		if s, ok := l.str(a.Expr, "key"); ok {
			k, err := jails.ParseKey(s)
			if err != nil {
				l.errorf(a.Expr.Range(), "Invalid key", "%v", err)
			} else {
				j.Key = k
			}
		}
	}
	if a, ok := attrs["ignore"]; ok {
		j.Ignore = l.prefixes(a.Expr, "ignore")
	}
	l.increment(j, content.Blocks.OfType("bantime_increment"))
	l.widen(def, content.Blocks.OfType("widen"))
	if !dup {
		l.cfg.Jails = append(l.cfg.Jails, j)
		l.defs = append(l.defs, def)
	}
}

// jailSources reads source = "x" or sources = ["x", "y"]; the names are
// checked against the source blocks once every file is loaded.
func (l *loader) jailSources(def *jailDef, b *hcl.Block, attrs hcl.Attributes) {
	one, hasOne := attrs["source"]
	many, hasMany := attrs["sources"]
	switch {
	case hasOne && hasMany:
		l.errorf(many.Expr.Range(), "Conflicting arguments", "jail %q sets both source (line %d) and sources; use one", def.jail.Name, one.Range.Start.Line)
	case hasOne:
		if s, ok := l.nonEmpty(one.Expr, "source"); ok {
			l.addRef(def, s, one.Expr.Range())
		}
	case hasMany:
		ss, rs, _ := l.strList(many.Expr, "sources")
		if len(ss) == 0 && len(rs) == 0 {
			l.errorf(many.Expr.Range(), "Missing source", "jail %q reads no source", def.jail.Name)
		}
		for i, s := range ss {
			l.addRef(def, s, rs[i])
		}
	default:
		l.errorf(b.DefRange, "Missing source", "jail %q needs source = \"NAME\" (or sources = [...]) naming a source block", def.jail.Name)
	}
}

// jailPrograms reads programs = ["postfix*/*smtpd"]: without it a jail
// would read lines any program wrote, so it is required, and a glob that
// matches every program is refused.
func (l *loader) jailPrograms(def *jailDef, b *hcl.Block, attrs hcl.Attributes) {
	a, ok := attrs["programs"]
	if !ok {
		l.errorf(b.DefRange, "Missing programs", "jail %q needs programs = [...]: globs over the programs whose lines it reads (e.g. \"postfix*/*smtpd\", \"dovecot\", \"exim\"); other programs' lines may quote a client's text", def.jail.Name)
		return
	}
	ps, rs, ok := l.strList(a.Expr, "programs")
	if ok && len(ps) == 0 && len(rs) == 0 {
		l.errorf(a.Expr.Range(), "Missing programs", "jail %q reads no program, so it can never match", def.jail.Name)
	}
	for i, p := range ps {
		switch {
		case jails.OnlyStars(p):
			l.errorf(rs[i], "Invalid program", "%q matches every program: name the server's programs, e.g. \"postfix*/*smtpd\"", p)
		case strings.ContainsAny(p, " \t[]:"):
			l.errorf(rs[i], "Invalid program", "%q: a program (syslog ident) holds no space, '[', ']' or ':'", p)
		default:
			def.jail.Programs = append(def.jail.Programs, p)
		}
	}
}

func (l *loader) addRef(def *jailDef, name string, at hcl.Range) {
	if slices.Contains(def.jail.Sources, name) {
		l.warnf(at, "Duplicate source reference", "jail %q already reads source %q", def.jail.Name, name)
		return
	}
	def.jail.Sources = append(def.jail.Sources, name)
	l.refs = append(l.refs, sourceRef{jail: def, name: name, subject: at})
}

// checkRefs reports jails reading sources no block defines. For a disabled
// jail that is a warning: a shipped jail file may name a source the admin
// defines only when enabling it.
func (l *loader) checkRefs() {
	var known []string
	for name := range l.sourceDefs {
		known = append(known, name)
	}
	slices.Sort(known)
	if l.syntaxErrors {
		return // the source may be in the file that did not parse
	}
	for _, r := range l.refs {
		if _, ok := l.sourceDefs[r.name]; ok {
			continue
		}
		detail := fmt.Sprintf("jail %q reads source %q, which no source block defines", r.jail.jail.Name, r.name)
		if len(known) > 0 {
			detail += "; defined: " + strings.Join(known, ", ")
		}
		if r.jail.jail.Enabled {
			l.errorf(r.subject, "Unknown source", "%s", detail)
		} else {
			l.warnf(r.subject, "Unknown source", "%s (the jail is disabled)", detail)
		}
	}
}

// checkKeys refuses a jail that counts on a prefix wider than the firewall
// will ever add, and a widen prefix wider than that: every such ban would be
// refused, so the jail would count and never ban.
func (l *loader) checkKeys() {
	fw := l.cfg.Firewall
	if fw.Kind != "nftables" {
		return
	}
	for _, d := range l.defs {
		k := d.jail.Key
		if k.V4Bits < fw.MinPrefixV4 || k.V6Bits < fw.MinPrefixV6 {
			l.errorf(d.keyAt, "Key wider than the firewall allows", "jail %q counts on %s, but the firewall adds nothing wider than /%d (IPv4) and /%d (IPv6)", d.jail.Name, k, fw.MinPrefixV4, fw.MinPrefixV6)
		}
		w := d.jail.Widen
		if w.V4Bits > 0 && w.V4Bits < fw.MinPrefixV4 {
			l.errorf(d.widen4, "Widen wider than the firewall allows", "jail %q widens IPv4 bans to /%d, but the firewall's min_prefix_v4 is %d", d.jail.Name, w.V4Bits, fw.MinPrefixV4)
		}
		if w.V6Bits > 0 && w.V6Bits < fw.MinPrefixV6 {
			l.errorf(d.widen6, "Widen wider than the firewall allows", "jail %q widens IPv6 bans to /%d, but the firewall's min_prefix_v6 is %d", d.jail.Name, w.V6Bits, fw.MinPrefixV6)
		}
	}
}

// widen reads `widen { after = 3, ip6 = 48, ip4 = 24 }`.
func (l *loader) widen(def *jailDef, bs hcl.Blocks) {
	j := def.jail
	for i, b := range bs {
		if i > 0 {
			l.errorf(b.DefRange, "Duplicate widen block", "jail %q already has one at %s", j.Name, pos(bs[0].DefRange))
			continue
		}
		content, hds := b.Body.Content(widenSchema)
		l.diags = append(l.diags, fromHCL(hds)...)
		attrs := content.Attributes
		whole := func(name string, lo, hi int) (int, hcl.Range, bool) {
			a, ok := attrs[name]
			if !ok {
				return 0, hcl.Range{}, false
			}
			f, ok := l.number(a.Expr, name)
			if !ok {
				return 0, a.Expr.Range(), false
			}
			n, acc := f.Int64()
			if !f.IsInt() || acc != big.Exact || n < int64(lo) || n > int64(hi) {
				l.errorf(a.Expr.Range(), "Invalid "+name, "%s is %s; it must be a whole number from %d to %d", name, f.Text('g', -1), lo, hi)
				return 0, a.Expr.Range(), false
			}
			return int(n), a.Expr.Range(), true
		}
		if n, _, ok := whole("after", 2, 1<<16); ok {
			j.Widen.After = n
		}
		if n, r, ok := whole("ip4", jails.MinKeyV4, 31); ok {
			j.Widen.V4Bits, def.widen4 = n, r
			if n >= j.Key.V4Bits && j.Key.V4Bits > 0 {
				l.errorf(r, "Invalid ip4", "widen ip4 = %d is not wider than the jail's key (%s)", n, j.Key)
			}
		}
		if n, r, ok := whole("ip6", jails.MinKeyV6, 127); ok {
			j.Widen.V6Bits, def.widen6 = n, r
			if n >= j.Key.V6Bits && j.Key.V6Bits > 0 {
				l.errorf(r, "Invalid ip6", "widen ip6 = %d is not wider than the jail's key (%s)", n, j.Key)
			}
		}
		if _, ok4 := attrs["ip4"]; !ok4 {
			if _, ok6 := attrs["ip6"]; !ok6 {
				l.errorf(b.DefRange, "Missing widen prefix", "jail %q: widen needs ip6 = N (e.g. 48) or ip4 = N (e.g. 24)", j.Name)
			}
		}
	}
}

type compileFunc func(string) (*jails.Pattern, error)

// patterns compiles each regex of a list, reporting each bad one at its
// element.
func (l *loader) patterns(e hcl.Expression, name string, compile compileFunc) []*jails.Pattern {
	ss, rs, _ := l.strList(e, name)
	var out []*jails.Pattern
	for i, s := range ss {
		if w := fail2banSyntax(s); w != "" {
			l.warnf(rs[i], "fail2ban syntax", "this %s never matches as written: %s: %q", name, w, s)
		}
		if name != "ignoreregex" && !strings.Contains(s, jails.HostTag) {
			l.errorf(rs[i], "Missing <HOST>", "a %s must capture the client address with %s: %q", name, jails.HostTag, s)
			continue
		}
		p, err := compile(s)
		if err != nil {
			l.errorf(rs[i], "Invalid regular expression", "%s: %v", name, err)
			continue
		}
		if name == "successregex" && !p.Captures(jails.GroupUser) {
			// A success clears only the failures of its own user.
			l.warnf(rs[i], "Successregex without user", "a successregex clears the failures of the user it captures with (?P<user>...); this one captures none, so it clears nothing: %q", s)
		}
		out = append(out, p)
	}
	return out
}

func (l *loader) increment(j *jails.Jail, bs hcl.Blocks) {
	for i, b := range bs {
		if i > 0 {
			l.errorf(b.DefRange, "Duplicate bantime_increment block", "jail %q already has one at %s", j.Name, pos(bs[0].DefRange))
			continue
		}
		content, hds := b.Body.Content(incrementSchema)
		l.diags = append(l.diags, fromHCL(hds)...)
		attrs := content.Attributes
		j.Increment.Max = DefaultIncrementMax
		if a, ok := attrs["factor"]; ok {
			if f, ok := l.number(a.Expr, "factor"); ok {
				v, _ := f.Float64()
				if v < 1 || v > 1000 {
					l.errorf(a.Expr.Range(), "Invalid factor", "factor is %s; it must be from 1 (no escalation) to 1000", f.Text('g', -1))
				} else {
					j.Increment.Factor = v
				}
			}
		}
		if a, ok := attrs["max"]; ok {
			if d, ok := l.duration(a.Expr, "max"); ok {
				j.Increment.Max = d
				if j.BanTime > 0 && d < j.BanTime {
					l.errorf(a.Expr.Range(), "Invalid duration", "max (%s) is shorter than bantime (%s): every ban would be cut to it", d, j.BanTime)
				}
			}
		}
	}
}

// EnabledJails returns the jails that are enabled, in definition order.
func (c *Config) EnabledJails() []*jails.Jail {
	var out []*jails.Jail
	for _, j := range c.Jails {
		if j.Enabled {
			out = append(out, j)
		}
	}
	return out
}
