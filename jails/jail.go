// Package jails turns log lines into ban decisions: it compiles failregex
// patterns (with <HOST>), matches lines behind a literal prefilter, counts
// failures in sliding findtime windows and decides bans. It is pure: no
// firewall, no storage, no clock of its own (time comes with the line).
package jails

import (
	"net/netip"
	"time"
)

// Jail is one compiled jail definition.
type Jail struct {
	Name    string
	Enabled bool
	Sources []string // names of the sources this jail reads
	// Programs are globs over a line's program (see GlobMatch): the jail
	// reads only those programs' lines.
	Programs    []string
	Failregex   []*Pattern
	Ignoreregex []*Pattern
	// Successregex matches successful logins: a success of user U from an
	// address clears that address's failures for U in this jail.
	Successregex []*Pattern
	MaxRetry     int
	FindTime     time.Duration
	BanTime      time.Duration
	Key          Key
	Increment    Increment
	Widen        Widen
	Ignore       []netip.Prefix // per-jail ignore list, on top of the global one
}

// Widen makes a ban cover a wider prefix once enough bans fall inside it:
// when a ban would be the After-th active ban inside one /V6Bits (IPv6)
// or /V4Bits (IPv4), the whole prefix is banned instead. Zero bits: that
// family never widens. One host owns a /64; a /48 is one site, and three
// of its /64s guessing passwords is that site.
type Widen struct {
	After  int
	V4Bits int
	V6Bits int
}

// Prefix returns the prefix a ban of key would widen into, or false when
// the jail does not widen keys of that family or length.
func (w Widen) Prefix(key netip.Prefix) (netip.Prefix, bool) {
	if w.After < 2 || !key.IsValid() {
		return netip.Prefix{}, false
	}
	bits := w.V6Bits
	if key.Addr().Is4() {
		bits = w.V4Bits
	}
	if bits <= 0 || bits >= key.Bits() {
		return netip.Prefix{}, false
	}
	p, err := key.Addr().Prefix(bits)
	return p, err == nil
}

// Key says what a failure is counted against: the address itself, or the
// prefix that contains it (V4Bits for IPv4, V6Bits for IPv6).
type Key struct {
	V4Bits int // 32 = the address
	V6Bits int // 128 = the address
}

// Increment escalates bans for repeat offenders:
// bantime * Factor^(n-1), capped at Max. Factor 0 or 1 means no escalation.
type Increment struct {
	Factor float64
	Max    time.Duration
}

// Hit is one matched failure, or with Success a successful login.
type Hit struct {
	Jail *Jail
	Addr netip.Addr // unmapped
	User string     // from (?P<user>...), if any
	Time time.Time  // the line's own timestamp, else the read time; never after the read time
	Line string     // the whole line, as read
	// Count is how many failures the line stands for, from (?P<count>...)
	// ("auth failed, 3 attempts"); 0 means 1. The counter caps it at the
	// jail's MaxRetry.
	Count int
	// Pass is the password fingerprint from (?P<pass>...), if any: the
	// same (address, user, fingerprint) counts once within FindTime.
	Pass string
	// Success marks a successful login (a successregex matched): the
	// counter clears failures with it and never bans on it.
	Success bool
	// Pattern is the index of the pattern that matched, in the jail's
	// Failregex, or Successregex for a success (replay counts per pattern).
	Pattern int
}

// Failures returns how many failures h stands for: 0 for a success.
func (h Hit) Failures() int {
	if h.Success {
		return 0
	}
	return max(h.Count, 1)
}

// Decision is a ban the counter decided on.
type Decision struct {
	Jail     *Jail
	Key      netip.Prefix // the address (/32, /128) or the keyed prefix
	Addr     netip.Addr   // the address whose failure tipped it
	Time     time.Time    // time of the newest failure in the window
	Failures int
	// Lines holds one line: the tipping failure's (at most MaxLineBytes).
	// Windows keep no lines, only times and hashes, to stay small; the
	// tipping line is the one a ban record shows.
	Lines []string
}

// Window is a counter's state for one (jail, key), for checkpointing:
// its failures' times, oldest first, and their keyed user and password
// fingerprint hashes (see Counter.HashKey; nil or 0: none).
type Window struct {
	Jail   string
	Key    netip.Prefix
	Times  []time.Time
	Users  []uint32
	Passes []uint32
	// Lines, parallel to Times, come only from a checkpoint of the old
	// format, which kept lines instead of hashes: Restore re-derives the
	// hashes from them.
	Lines []string
}
