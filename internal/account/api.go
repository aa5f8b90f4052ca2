package account

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Summary is one account's figures, as `smtpban accounts` shows them.
type Summary struct {
	User           string    `json:"user"`
	MessagesHour   int       `json:"messages_1h"`
	MessagesDay    int       `json:"messages_24h"`
	RecipientsHour int       `json:"recipients_1h"`
	RecipientsDay  int       `json:"recipients_24h"`
	AddressesHour  int       `json:"addresses_1h"`
	AddressesDay   int       `json:"addresses_24h"`
	Failing        int       `json:"failing_addresses"` // distinct addresses failing to log in, in the guess window
	Held           bool      `json:"held"`
	HeldSince      time.Time `json:"held_since,omitzero"`
	HeldWhy        string    `json:"held_why,omitempty"`
	Action         string    `json:"action,omitempty"`
}

// AddrUse is one client address's use of an account in the last day.
type AddrUse struct {
	Addr     netip.Addr `json:"addr"`
	Messages int        `json:"messages"`
	Last     time.Time  `json:"last"`
}

// Detail is `smtpban account show USER`.
type Detail struct {
	Summary
	Limits    LimitsView   `json:"limits"`
	Addresses []AddrUse    `json:"addresses"`
	Networks  []string     `json:"networks"`
	Banned    []netip.Addr `json:"banned"`
	HeldIDs   []string     `json:"held_queue_ids"`
	Alerts    []Alert      `json:"alerts"`
}

// LimitsView is the limits that apply, as the config names them.
type LimitsView struct {
	MessagesPerHour    int    `json:"messages_per_hour"`
	MessagesPerDay     int    `json:"messages_per_day"`
	RecipientsPerHour  int    `json:"recipients_per_hour"`
	AddressesPerHour   int    `json:"addresses_per_hour"`
	NetworksPerHour    int    `json:"networks_per_hour"`
	NewNetworkMessages int    `json:"new_network_messages"`
	NewNetworkAge      string `json:"new_network_age"`
	Action             string `json:"action"`
}

// Release is what releasing an account did, and what the admin does next.
type Release struct {
	User     string       `json:"user"`
	WasHeld  bool         `json:"was_held"`
	QueueIDs []string     `json:"queue_ids"`
	Banned   []netip.Addr `json:"banned"`
	// Commands release the held mail from Postfix's hold queue.
	Commands []string `json:"commands"`
}

func (w *Watch) summary(u string, a *acct, now int64) Summary {
	h := a.window(now-int64(time.Hour), false, true)
	d := a.window(now-int64(day), false, true)
	act := ""
	if a.Held {
		act = a.HeldAction
	}
	return Summary{
		User: u, MessagesHour: h.msgs, MessagesDay: d.msgs, RecipientsHour: h.rcpt, RecipientsDay: d.rcpt,
		AddressesHour: h.addrs.len(), AddressesDay: d.addrs.len(),
		Failing: len(a.failing(now, w.set.GuessWindow.Nanoseconds())),
		Held:    a.Held, HeldSince: a.heldSince(), HeldWhy: a.HeldWhy, Action: act,
	}
}

// Accounts lists every account followed, by name.
func (w *Watch) Accounts() []Summary {
	now := w.now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Summary, 0, len(w.accounts))
	for _, u := range w.users() {
		out = append(out, w.summary(u, w.accounts[u], now))
	}
	return out
}

// ErrUnknown is returned for an account the watch does not follow.
var ErrUnknown = fmt.Errorf("no such account")

// Show returns one account in detail, with its last alerts.
func (w *Watch) Show(user string) (Detail, error) {
	now := w.now().UnixNano()
	w.mu.Lock()
	a := w.accounts[user]
	if a == nil {
		w.mu.Unlock()
		return Detail{}, fmt.Errorf("%w: %q", ErrUnknown, user)
	}
	lim := w.set.For(user)
	d := Detail{
		Summary: w.summary(user, a, now),
		Limits: LimitsView{
			MessagesPerHour: lim.MessagesPerHour, MessagesPerDay: lim.MessagesPerDay,
			RecipientsPerHour: lim.RecipientsPerHour, AddressesPerHour: lim.AddressesPerHour,
			NetworksPerHour: lim.NetworksPerHour, NewNetworkMessages: lim.NewNetworkMessages,
			NewNetworkAge: lim.NewNetworkAge.String(), Action: lim.Action.String(),
		},
		Banned:  slices.Clone(a.Banned),
		HeldIDs: slices.Clone(a.HeldIDs),
	}
	uses := map[netip.Addr]*AddrUse{}
	for _, s := range a.Sends {
		if s.Msgs == 0 || !s.Addr.IsValid() {
			continue
		}
		u := uses[s.Addr]
		if u == nil {
			u = &AddrUse{Addr: s.Addr}
			uses[s.Addr] = u
		}
		u.Messages++
		u.Last = time.Unix(0, s.T).UTC()
	}
	for _, u := range uses {
		d.Addresses = append(d.Addresses, *u)
	}
	slices.SortFunc(d.Addresses, func(x, y AddrUse) int { return y.Messages - x.Messages })
	for n := range a.Nets {
		d.Networks = append(d.Networks, n.String())
	}
	slices.Sort(d.Networks)
	w.mu.Unlock()
	if w.store != nil {
		vs, err := w.store.Alerts(user, 20)
		if err != nil {
			return d, fmt.Errorf("read alerts of %q: %w", user, err)
		}
		for _, v := range vs {
			var al Alert
			if json.Unmarshal(v, &al) == nil {
				d.Alerts = append(d.Alerts, al)
			}
		}
	}
	return d, nil
}

// Release lifts user's hold and starts its counts afresh (or it would be
// held again at its next message). Held mail stays in Postfix's hold
// queue until the admin runs the commands returned.
func (w *Watch) Release(user string) (Release, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.accounts[user]
	if a == nil {
		return Release{}, fmt.Errorf("%w: %q", ErrUnknown, user)
	}
	r := Release{User: user, WasHeld: a.Held, QueueIDs: slices.Clone(a.HeldIDs), Banned: slices.Clone(a.Banned)}
	r.Commands = PostsuperCommands(r.QueueIDs)
	if a.Held {
		w.held--
	}
	a.Held, a.HeldAt, a.HeldWhy, a.HeldAction = false, 0, "", ""
	a.HeldIDs, a.Banned, a.Sends = nil, nil, nil
	a.Fails, a.GNets, a.Guessed = nil, nil, 0
	a.credits = nil
	a.dirty = true
	w.log.Info("account released", "user", user, "held_messages", len(r.QueueIDs))
	return r, nil
}

// PostsuperCommands are the commands that release queue IDs from hold
// (to the deferred queue) and deliver them now.
func PostsuperCommands(ids []string) []string {
	if len(ids) == 0 {
		return []string{"mailq  # no held queue IDs known: find them here, then postsuper -H ID"}
	}
	var b strings.Builder
	b.WriteString("postsuper")
	for _, id := range ids {
		b.WriteString(" -H ")
		b.WriteString(id)
	}
	return []string{b.String(), "postqueue -f"}
}
