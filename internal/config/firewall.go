package config

import (
	"regexp"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Firewall defaults.
const (
	DefaultTable       = "smtpban"
	DefaultMinPrefixV4 = 16
	DefaultMinPrefixV6 = 32
	DefaultResync      = 10 * time.Second
)

// defaultPorts (never modified) are SMTP, SMTPS and submission. IMAP and POP3 are not
// included: add 143, 993, 110, 995 to ban Dovecot guessers from those too.
var defaultPorts = []int{25, 465, 587}

var nftablesSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "table"},
		{Name: "ports"},
		{Name: "all_ports"},
		{Name: "reject"},
		{Name: "min_prefix_v4"},
		{Name: "min_prefix_v6"},
		{Name: "resync"},
	},
}

// nft accepts longer names; keep to ones that need no quoting in `nft`.
var tableRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

func defaultFirewall(kind string) Firewall {
	return Firewall{
		Kind:        kind,
		Table:       DefaultTable,
		Ports:       append([]int(nil), defaultPorts...),
		MinPrefixV4: DefaultMinPrefixV4,
		MinPrefixV6: DefaultMinPrefixV6,
		Resync:      DefaultResync,
	}
}

func (l *loader) firewallBlock(b *hcl.Block) {
	kind, kindAt := b.Labels[0], b.LabelRanges[0]
	if l.firewall != nil {
		l.errorf(kindAt, "Duplicate firewall", "a firewall is already defined at %s", pos(*l.firewall))
		return
	}
	l.firewall = &kindAt
	switch kind {
	case "dryrun":
		_, hds := b.Body.Content(&hcl.BodySchema{})
		l.diags = append(l.diags, fromHCL(hds)...)
		l.cfg.Firewall = defaultFirewall("dryrun")
	case "nftables":
		l.nftables(b)
	default:
		l.errorf(kindAt, "Unknown firewall kind", "firewall %q: expected \"nftables\" or \"dryrun\"", kind)
	}
}

func (l *loader) nftables(b *hcl.Block) {
	fw := defaultFirewall("nftables")
	content, hds := b.Body.Content(nftablesSchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	attrs := content.Attributes
	if a, ok := attrs["table"]; ok {
		if s, ok := l.str(a.Expr, "table"); ok {
			if tableRE.MatchString(s) {
				fw.Table = s
			} else {
				l.errorf(a.Expr.Range(), "Invalid table name", "%q: a letter, then letters, digits and '_', at most 64", s)
			}
		}
	}
	portsOK := true
	if a, ok := attrs["ports"]; ok {
		fw.Ports = nil
		es, ok := l.list(a.Expr, "ports")
		portsOK = ok
		for _, e := range es {
			p, ok := l.integer(e, "port", 1, 65535)
			portsOK = portsOK && ok
			if ok {
				fw.Ports = append(fw.Ports, p)
			}
		}
	}
	if a, ok := attrs["all_ports"]; ok {
		fw.AllPorts, _ = l.boolean(a.Expr, "all_ports")
	}
	if a, ok := attrs["ports"]; ok && len(fw.Ports) == 0 && !fw.AllPorts && portsOK {
		l.errorf(a.Expr.Range(), "No ports", "ports is empty and all_ports is false: no ban would block anything")
	}
	if a, ok := attrs["reject"]; ok {
		fw.Reject, _ = l.boolean(a.Expr, "reject")
	}
	if a, ok := attrs["min_prefix_v4"]; ok {
		fw.MinPrefixV4, _ = l.integer(a.Expr, "min_prefix_v4", 0, 32)
	}
	if a, ok := attrs["min_prefix_v6"]; ok {
		fw.MinPrefixV6, _ = l.integer(a.Expr, "min_prefix_v6", 0, 128)
	}
	fw.Resync, _ = l.durationOr(attrs, "resync", DefaultResync)
	l.cfg.Firewall = fw
}
