package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"

	"smtpban/internal/account"
)

// `account "PATTERN" {}` sets the limits of the accounts PATTERN matches
// (a name, or a glob: "*" is every account); the most specific pattern
// wins. `accounts {}` holds the watch's own settings, `policy {}` the
// Postfix policy service. Any of the three turns the account watch on.
var accountSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "messages_per_hour"},
		{Name: "messages_per_day"},
		{Name: "recipients_per_hour"},
		{Name: "addresses_per_hour"},
		{Name: "networks_per_hour"},
		{Name: "new_network_messages"},
		{Name: "new_network_age"},
		{Name: "action"},
		{Name: "text"},
	},
}

var accountsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "sources"},
		{Name: "ban_time"},
		{Name: "guess_window"},
		{Name: "guess_addresses"},
		{Name: "hook"},
		{Name: "hook_timeout"},
		{Name: "max_accounts"},
	},
}

var policySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "listen", Required: true}},
}

// maxLimit bounds every count limit: beyond it, a typo.
const maxLimit = 1 << 24

func (l *loader) accountsOn() *account.Settings {
	if l.cfg.Accounts == nil {
		s := account.DefaultSettings()
		s.Rules = nil
		l.cfg.Accounts = &s
	}
	return l.cfg.Accounts
}

// accountBlock decodes `account "PATTERN" {}`; what it leaves out is the
// default's.
func (l *loader) accountBlock(b *hcl.Block) {
	s := l.accountsOn()
	pattern, at := b.Labels[0], b.LabelRanges[0]
	if pattern == "" || len(pattern) > account.MaxUser || strings.ContainsAny(pattern, " \t\n") {
		l.errorf(at, "Invalid account pattern", "%q must be an account name or a glob, without spaces", pattern)
	}
	if first, ok := l.accountDefs[pattern]; ok {
		l.errorf(at, "Duplicate account", "account %q is already defined at %s", pattern, pos(first))
		return
	}
	l.accountDefs[pattern] = at
	content, hds := b.Body.Content(accountSchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	lim := account.DefaultLimits
	ints := []struct {
		name string
		dst  *int
	}{
		{"messages_per_hour", &lim.MessagesPerHour},
		{"messages_per_day", &lim.MessagesPerDay},
		{"recipients_per_hour", &lim.RecipientsPerHour},
		{"addresses_per_hour", &lim.AddressesPerHour},
		{"networks_per_hour", &lim.NetworksPerHour},
		{"new_network_messages", &lim.NewNetworkMessages},
	}
	for _, f := range ints {
		if a, ok := content.Attributes[f.name]; ok {
			if v, ok := l.integer(a.Expr, f.name, 0, maxLimit); ok {
				*f.dst = v
			}
		}
	}
	if a, ok := content.Attributes["new_network_age"]; ok {
		if d, ok := l.duration(a.Expr, "new_network_age"); ok {
			lim.NewNetworkAge = d
		}
	}
	if a, ok := content.Attributes["action"]; ok {
		if v, ok := l.str(a.Expr, "action"); ok {
			act, ok := account.ParseAction(v)
			if !ok {
				l.errorf(a.Expr.Range(), "Invalid action", "action is %q; it must be \"hold\", \"defer\" or \"reject\"", v)
			}
			lim.Action = act
		}
	}
	if a, ok := content.Attributes["text"]; ok {
		if v, ok := l.nonEmpty(a.Expr, "text"); ok {
			if strings.ContainsAny(v, "\r\n") || len(v) > 200 {
				l.errorf(a.Expr.Range(), "Invalid text", "text must be one line of at most 200 characters: it goes into an SMTP reply")
			} else {
				lim.Text = v
			}
		}
	}
	s.Rules = append(s.Rules, account.Rule{Pattern: pattern, Limits: lim})
}

// accountsBlock decodes `accounts {}`.
func (l *loader) accountsBlock(b *hcl.Block) {
	if l.accountsAt != nil {
		l.errorf(b.DefRange, "Duplicate accounts block", "accounts is already defined at %s", pos(*l.accountsAt))
		return
	}
	l.accountsAt = &b.DefRange
	s := l.accountsOn()
	content, hds := b.Body.Content(accountsSchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	attrs := content.Attributes
	if a, ok := attrs["sources"]; ok {
		names, ranges, _ := l.strList(a.Expr, "sources")
		s.Sources = names
		l.accountSourceAt = ranges
	}
	s.BanTime, _ = l.durationOr(attrs, "ban_time", account.DefaultBanTime)
	s.GuessWindow, _ = l.durationOr(attrs, "guess_window", account.DefaultGuessWindow)
	s.HookTimeout, _ = l.durationOr(attrs, "hook_timeout", account.DefaultHookTimeout)
	if a, ok := attrs["guess_addresses"]; ok {
		s.GuessAddresses, _ = l.integer(a.Expr, "guess_addresses", 2, maxLimit)
	}
	if a, ok := attrs["max_accounts"]; ok {
		s.MaxAccounts, _ = l.integer(a.Expr, "max_accounts", 10, 1<<24)
	}
	if a, ok := attrs["hook"]; ok {
		argv, _, ok := l.strList(a.Expr, "hook")
		if ok && (len(argv) == 0 || !strings.HasPrefix(argv[0], "/")) {
			l.errorf(a.Expr.Range(), "Invalid hook", "hook must be a command as a list, its first element an absolute path, e.g. [\"/usr/local/sbin/lock-account\"]")
		} else {
			s.Hook = argv
		}
	}
}

// policyBlock decodes `policy { listen = "127.0.0.1:10040" }` or
// `listen = "unix:/run/smtpban/policy.sock"`.
func (l *loader) policyBlock(b *hcl.Block) {
	if l.policyAt != nil {
		l.errorf(b.DefRange, "Duplicate policy block", "policy is already defined at %s", pos(*l.policyAt))
		return
	}
	l.policyAt = &b.DefRange
	l.accountsOn()
	content, hds := b.Body.Content(policySchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	a, ok := content.Attributes["listen"]
	if !ok {
		return
	}
	s, ok := l.nonEmpty(a.Expr, "listen")
	if !ok {
		return
	}
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if !strings.HasPrefix(p, "/") {
			l.errorf(a.Expr.Range(), "Invalid listen address", "listen is %q; a Unix socket needs an absolute path, e.g. \"unix:/run/smtpban/policy.sock\"", s)
			return
		}
		l.cfg.Policy = s
		return
	}
	l.cfg.Policy = l.listenAddr(a.Expr, "listen")
}

// checkAccounts checks the sources the watch names and gives it the "*"
// rule when no block set one.
func (l *loader) checkAccounts() {
	s := l.cfg.Accounts
	if s == nil {
		return
	}
	for i, name := range s.Sources {
		if _, ok := l.sourceDefs[name]; !ok {
			var at hcl.Range
			if i < len(l.accountSourceAt) {
				at = l.accountSourceAt[i]
			}
			l.errorf(at, "Unknown source", "accounts reads source %q, which no source block defines", name)
		}
	}
	if _, ok := l.accountDefs["*"]; !ok {
		s.Rules = append(s.Rules, account.Rule{Pattern: "*", Limits: account.DefaultLimits})
	}
}
