package account

import (
	"net/netip"
	"strings"
	"time"

	"smtpban/jails"
)

// Action is what the policy service answers for a held account.
type Action uint8

const (
	Hold   Action = iota // action=HOLD: the mail waits in Postfix's hold queue
	Defer                // action=DEFER_IF_PERMIT: the client retries later
	Reject               // action=REJECT: the client gets a 5xx
)

func (a Action) String() string {
	switch a {
	case Defer:
		return "defer"
	case Reject:
		return "reject"
	}
	return "hold"
}

// ParseAction reads "hold", "defer" or "reject".
func ParseAction(s string) (Action, bool) {
	switch s {
	case "hold":
		return Hold, true
	case "defer":
		return Defer, true
	case "reject":
		return Reject, true
	}
	return Hold, false
}

// Limits are an account block's limits; 0 turns one off.
type Limits struct {
	MessagesPerHour   int
	MessagesPerDay    int
	RecipientsPerHour int
	AddressesPerHour  int // distinct client addresses sending as the account
	NetworksPerHour   int // distinct /24 (IPv4) or /48 (IPv6) networks
	// NewNetworkMessages: messages in the last hour from networks the
	// account had not used in NewNetworkAge. A network is only new to an
	// account known for longer than a day: on a fresh install every
	// network is new.
	NewNetworkMessages int
	NewNetworkAge      time.Duration
	Action             Action
	// Text is the reply text for defer and reject.
	Text string
}

// DefaultLimits suit a small organisation: people who send a few dozen
// messages a day from a phone, an office and home. A compromised account
// sends hundreds an hour; it stops at the 101st.
var DefaultLimits = Limits{
	MessagesPerHour:    100,
	MessagesPerDay:     500,
	RecipientsPerHour:  300,
	AddressesPerHour:   5,
	NetworksPerHour:    3,
	NewNetworkMessages: 20,
	NewNetworkAge:      30 * 24 * time.Hour,
	Action:             Hold,
	Text:               "account held for review: it sent more than its limit",
}

// Rule is one `account "PATTERN" {}` block.
type Rule struct {
	Pattern string // an account name or a glob ('*', '?')
	Limits  Limits
}

// Settings are the account watch's configuration.
type Settings struct {
	Rules []Rule
	// BanTime is how long the addresses of a tripped account are banned.
	BanTime time.Duration
	// GuessWindow and GuessAddresses: GuessAddresses distinct client
	// addresses failing to log in as one account within GuessWindow ban
	// them all; a later login from one of their networks holds the account.
	GuessWindow    time.Duration
	GuessAddresses int
	// Hook is run (argv, no shell) with the alert as JSON on stdin.
	Hook        []string
	HookTimeout time.Duration
	// MaxAccounts bounds the accounts followed; past it, the one idle
	// longest and not held is forgotten.
	MaxAccounts int
	// JoinMax and JoinTTL bound the queue-ID join of Postfix's smtpd and
	// qmgr lines.
	JoinMax int
	JoinTTL time.Duration
	// Sources are the log sources read for accounts (none: those the
	// jails read).
	Sources []string
}

// Defaults of Settings.
const (
	DefaultBanTime        = 24 * time.Hour
	DefaultGuessWindow    = 24 * time.Hour
	DefaultGuessAddresses = 30
	DefaultHookTimeout    = 10 * time.Second
	DefaultMaxAccounts    = 100000
	DefaultJoinMax        = 100000
	DefaultJoinTTL        = time.Hour
)

// DefaultSettings are Settings with every default and one rule, "*".
func DefaultSettings() Settings {
	return Settings{
		Rules:          []Rule{{Pattern: "*", Limits: DefaultLimits}},
		BanTime:        DefaultBanTime,
		GuessWindow:    DefaultGuessWindow,
		GuessAddresses: DefaultGuessAddresses,
		HookTimeout:    DefaultHookTimeout,
		MaxAccounts:    DefaultMaxAccounts,
		JoinMax:        DefaultJoinMax,
		JoinTTL:        DefaultJoinTTL,
	}
}

// For returns the limits of user: the rule with the most specific pattern
// that matches it (a name beats any glob; among globs, the one with more
// literal characters; among equals, the first). No rule: DefaultLimits.
func (s *Settings) For(user string) Limits {
	best, bestScore := -1, -1
	for i, r := range s.Rules {
		if !jails.GlobMatch(r.Pattern, user) {
			continue
		}
		if sc := specificity(r.Pattern); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	if best < 0 {
		return DefaultLimits
	}
	return s.Rules[best].Limits
}

func specificity(p string) int {
	if !strings.ContainsAny(p, "*?") {
		return 1 << 30
	}
	return len(p) - strings.Count(p, "*") - strings.Count(p, "?")
}

// Network is the network an address counts in: its /24 or /48.
func Network(a netip.Addr) netip.Prefix {
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}
