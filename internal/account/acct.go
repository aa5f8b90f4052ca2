package account

import (
	"net/netip"
	"slices"
	"time"
)

// Limit names, in alerts and in `smtpban account show`.
const (
	LimitMessagesPerHour   = "messages_per_hour"
	LimitMessagesPerDay    = "messages_per_day"
	LimitRecipientsPerHour = "recipients_per_hour"
	LimitAddressesPerHour  = "addresses_per_hour"
	LimitNetworksPerHour   = "networks_per_hour"
	LimitNewNetwork        = "new_network_messages"
	LimitGuessing          = "guess_addresses"
	LimitGuessedLogin      = "login_from_guessing_network"
)

// LimitNames lists every limit name, so that each metric series exists from
// the start.
var LimitNames = []string{LimitMessagesPerHour, LimitMessagesPerDay, LimitRecipientsPerHour, LimitAddressesPerHour,
	LimitNetworksPerHour, LimitNewNetwork, LimitGuessing, LimitGuessedLogin}

// Bounds on what one account keeps: past them the oldest goes. A small
// organisation's account is far below them; one that reaches them has
// long since tripped a limit.
const (
	maxSends     = 20000
	maxNetworks  = 256
	maxFailing   = 10000
	maxGuessNets = 4096
	maxHeldQueue = 10000
	maxBanned    = 10000
	maxCredits   = 1024
	// creditTTL: a message the policy service counted is matched with
	// its smtpd log line within this; one never logged (the client quit
	// after RCPT) is forgotten.
	creditTTL = 10 * time.Minute
	// learnTime: a network is new to an account only once the account has
	// been followed this long.
	learnTime = 24 * time.Hour
	day       = 24 * time.Hour
	// netKeep: how long a network an account used is remembered, longer
	// than any sane new_network_age.
	netKeep = 90 * day
)

// send is one counted message (Msgs 1) or recipients added to one (Msgs 0).
type send struct {
	T    int64      `json:"t"`
	Msgs int32      `json:"m,omitempty"`
	Rcpt int32      `json:"r,omitempty"`
	Addr netip.Addr `json:"a"`
}

// seen is when an account first and last used a network.
type seen struct {
	First int64 `json:"f"`
	Last  int64 `json:"l"`
}

// acct is one account's record; it is saved as JSON.
type acct struct {
	Created int64                  `json:"created"`
	Sends   []send                 `json:"sends,omitempty"` // last day, oldest first
	Nets    map[netip.Prefix]seen  `json:"nets,omitempty"`
	Fails   map[netip.Addr]int64   `json:"fails,omitempty"` // failing address -> last failure
	Guessed int64                  `json:"guessed,omitempty"`
	GNets   map[netip.Prefix]int64 `json:"guess_nets,omitempty"` // guessers' networks -> until
	Banned  []netip.Addr           `json:"banned,omitempty"`     // banned for this account since the hold
	Held    bool                   `json:"held,omitempty"`
	HeldAt  int64                  `json:"held_at,omitempty"`
	HeldWhy string                 `json:"held_why,omitempty"`
	// HeldAction is what the policy service answers: hold, defer, reject.
	HeldAction string   `json:"held_action,omitempty"`
	HeldIDs    []string `json:"held_ids,omitempty"` // queue IDs sent while held

	last      int64     // newest event
	credits   []int64   // messages the policy service counted, awaiting their log line
	instances [8]string // the policy's recent message instances
	nextInst  int
	dirty     bool
}

func newAcct(now int64) *acct {
	return &acct{Created: now, last: now}
}

func (a *acct) isHeld() bool { return a.Held }

func (a *acct) add(s send) {
	// Drop what is past the day as it goes: a busy account's sends must
	// not wait for the sweep.
	if len(a.Sends) > 0 && a.Sends[0].T < s.T-int64(day) {
		i := 0
		for i < len(a.Sends) && a.Sends[i].T < s.T-int64(day) {
			i++
		}
		// Resliced, not copied: append moves the live ones when it grows.
		a.Sends = a.Sends[i:]
	}
	if len(a.Sends) >= maxSends {
		a.Sends = slices.Delete(a.Sends, 0, len(a.Sends)/4)
	}
	// Lines come nearly in order; keep Sends sorted for the windows.
	i := len(a.Sends)
	for i > 0 && a.Sends[i-1].T > s.T {
		i--
	}
	a.Sends = slices.Insert(a.Sends, i, s)
	if s.Msgs > 0 && s.Addr.IsValid() {
		a.useNet(Network(s.Addr), s.T)
	}
	a.dirty = true
}

func (a *acct) useNet(n netip.Prefix, t int64) {
	if a.Nets == nil {
		a.Nets = map[netip.Prefix]seen{}
	}
	s, ok := a.Nets[n]
	if !ok {
		if len(a.Nets) >= maxNetworks {
			var old netip.Prefix
			var oldT int64
			for p, v := range a.Nets {
				if !old.IsValid() || v.Last < oldT {
					old, oldT = p, v.Last
				}
			}
			delete(a.Nets, old)
		}
		s.First = t
	}
	if t > s.Last {
		s.Last = t
	}
	if t < s.First {
		s.First = t
	}
	a.Nets[n] = s
}

// window holds an account's figures over a span ending now.
type window struct {
	msgs, rcpt int
	addrs      set[netip.Addr]
	nets       set[netip.Prefix]
	newNetMsgs int
}

// set is a small set: a slice while it is small (an account uses a
// handful of addresses; no map to make on the policy path), a map beyond.
type set[T comparable] struct {
	s []T
	m map[T]struct{}
}

func (s *set[T]) add(v T) {
	if s.m != nil {
		s.m[v] = struct{}{}
		return
	}
	if slices.Contains(s.s, v) {
		return
	}
	if len(s.s) < 16 {
		s.s = append(s.s, v)
		return
	}
	s.m = make(map[T]struct{}, 2*len(s.s))
	for _, x := range s.s {
		s.m[x] = struct{}{}
	}
	s.m[v] = struct{}{}
}

func (s *set[T]) len() int {
	if s.m != nil {
		return len(s.m)
	}
	return len(s.s)
}

// window sums a's sends since since; distinct: the addresses and
// networks too (the day's limit needs only the sums: cheap on the policy
// path).
func (a *acct) window(since int64, learn, distinct bool) window {
	var w window
	i, _ := slices.BinarySearchFunc(a.Sends, since, func(s send, t int64) int {
		if s.T < t {
			return -1
		}
		if s.T > t {
			return 1
		}
		return 0
	})
	for _, s := range a.Sends[i:] {
		w.msgs += int(s.Msgs)
		w.rcpt += int(s.Rcpt)
		if !distinct || s.Msgs == 0 || !s.Addr.IsValid() {
			continue
		}
		w.addrs.add(s.Addr)
		n := Network(s.Addr)
		w.nets.add(n)
		// New: first used within this window, not in the span before it.
		if learn {
			if ns, ok := a.Nets[n]; ok && ns.First >= since {
				w.newNetMsgs++
			}
		}
	}
	return w
}

// over says which of lim a has gone over at now, if any.
func (a *acct) over(lim Limits, now int64) (Alert, bool) {
	hour := now - int64(time.Hour)
	learn := lim.NewNetworkMessages > 0 && now-a.Created >= int64(learnTime)
	h := a.window(hour, learn, true)
	mk := func(name string, v, max int, win string) (Alert, bool) {
		return Alert{Limit: name, Value: v, Max: max, Window: win}, true
	}
	switch {
	case lim.MessagesPerHour > 0 && h.msgs > lim.MessagesPerHour:
		return mk(LimitMessagesPerHour, h.msgs, lim.MessagesPerHour, "1h")
	case lim.RecipientsPerHour > 0 && h.rcpt > lim.RecipientsPerHour:
		return mk(LimitRecipientsPerHour, h.rcpt, lim.RecipientsPerHour, "1h")
	case lim.AddressesPerHour > 0 && h.addrs.len() > lim.AddressesPerHour:
		return mk(LimitAddressesPerHour, h.addrs.len(), lim.AddressesPerHour, "1h")
	case lim.NetworksPerHour > 0 && h.nets.len() > lim.NetworksPerHour:
		return mk(LimitNetworksPerHour, h.nets.len(), lim.NetworksPerHour, "1h")
	case learn && h.newNetMsgs > lim.NewNetworkMessages:
		return mk(LimitNewNetwork, h.newNetMsgs, lim.NewNetworkMessages, "1h")
	}
	if lim.MessagesPerDay > 0 {
		d := a.window(now-int64(day), false, false)
		if d.msgs > lim.MessagesPerDay {
			return mk(LimitMessagesPerDay, d.msgs, lim.MessagesPerDay, "24h")
		}
	}
	return Alert{}, false
}

// addrs lists the addresses that sent as a since, but for those in a
// network the account has used since before learnTime: its owner's
// office or home, which a hold must not cut off (the hold itself stops
// the mail).
func (a *acct) addrs(since, now int64) []netip.Addr {
	var out []netip.Addr
	for _, s := range a.Sends {
		if s.T < since || s.Msgs == 0 || !s.Addr.IsValid() || slices.Contains(out, s.Addr) {
			continue
		}
		if n, ok := a.Nets[Network(s.Addr)]; ok && n.First < now-int64(learnTime) {
			continue
		}
		out = append(out, s.Addr)
	}
	return out
}

// banOnce records that addr is banned for a; false if it already was.
func (a *acct) banOnce(addr netip.Addr) bool {
	if !addr.IsValid() || slices.Contains(a.Banned, addr) {
		return false
	}
	if len(a.Banned) >= maxBanned {
		return false
	}
	a.Banned = append(a.Banned, addr)
	a.dirty = true
	return true
}

func (a *acct) heldQueue(id string) {
	if id == "" || slices.Contains(a.HeldIDs, id) || len(a.HeldIDs) >= maxHeldQueue {
		return
	}
	a.HeldIDs = append(a.HeldIDs, id)
	a.dirty = true
}

// failed records a failed login from addr and returns the distinct
// addresses failing within win.
func (a *acct) failed(addr netip.Addr, now, win int64) int {
	if a.Fails == nil {
		a.Fails = map[netip.Addr]int64{}
	}
	if _, ok := a.Fails[addr]; !ok && len(a.Fails) >= maxFailing {
		a.expireFails(now, win)
		if len(a.Fails) >= maxFailing {
			return len(a.Fails)
		}
	}
	if now > a.Fails[addr] {
		a.Fails[addr] = now
	}
	a.dirty = true
	n := 0
	for _, t := range a.Fails {
		if t > now-win {
			n++
		}
	}
	return n
}

func (a *acct) failing(now, win int64) []netip.Addr {
	var out []netip.Addr
	for ad, t := range a.Fails {
		if t > now-win {
			out = append(out, ad)
		}
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}

func (a *acct) expireFails(now, win int64) bool {
	changed := false
	for ad, t := range a.Fails {
		if t <= now-win {
			delete(a.Fails, ad)
			changed = true
		}
	}
	return changed
}

func (a *acct) guessedUntil(now int64) bool {
	for _, until := range a.GNets {
		if until > now {
			return a.Guessed != 0
		}
	}
	return false
}

func (a *acct) addGuessNet(addr netip.Addr, until int64) {
	if a.GNets == nil {
		a.GNets = map[netip.Prefix]int64{}
	}
	n := Network(addr)
	if _, ok := a.GNets[n]; !ok && len(a.GNets) >= maxGuessNets {
		return
	}
	if until > a.GNets[n] {
		a.GNets[n] = until
	}
}

// guessNet says whether addr is in a network that guessed a's password.
func (a *acct) guessNet(addr netip.Addr, now int64) bool {
	if len(a.GNets) == 0 || !addr.IsValid() {
		return false
	}
	return a.GNets[Network(addr)] > now
}

// takeCredit consumes one message the policy service counted, if any.
func (a *acct) takeCredit(now int64) bool {
	for len(a.credits) > 0 && a.credits[0] < now-int64(creditTTL) {
		a.credits = a.credits[1:]
	}
	if len(a.credits) == 0 {
		return false
	}
	a.credits = a.credits[1:]
	return true
}

func (a *acct) addCredit(now int64) {
	if len(a.credits) >= maxCredits {
		a.credits = a.credits[1:]
	}
	a.credits = append(a.credits, now)
}

// newInstance says whether the policy's message instance is new to a.
func (a *acct) newInstance(inst string) bool {
	if inst == "" {
		return true
	}
	if slices.Contains(a.instances[:], inst) {
		return false
	}
	a.instances[a.nextInst] = inst
	a.nextInst = (a.nextInst + 1) % len(a.instances)
	return true
}

// expire drops sends older than a day and failures older than win; it
// reports whether anything changed.
func (a *acct) expire(now, win int64) bool {
	changed := false
	i := 0
	for i < len(a.Sends) && a.Sends[i].T < now-int64(day) {
		i++
	}
	if i > 0 {
		a.Sends = slices.Delete(a.Sends, 0, i)
		changed = true
	}
	if a.expireFails(now, win) {
		changed = true
	}
	for n, v := range a.Nets {
		if v.Last < now-int64(netKeep) {
			delete(a.Nets, n)
			changed = true
		}
	}
	for n, until := range a.GNets {
		if until <= now {
			delete(a.GNets, n)
			changed = true
		}
	}
	if len(a.GNets) == 0 && a.Guessed != 0 && !a.Held {
		a.Guessed = 0
		changed = true
	}
	return changed
}

// empty: nothing left to keep.
func (a *acct) empty() bool {
	return len(a.Sends) == 0 && len(a.Fails) == 0 && len(a.GNets) == 0 && !a.Held && len(a.Nets) == 0
}
