package account

import (
	"net/netip"
	"time"
)

// Request is what a Postfix policy request says, the fields the watch
// reads.
type Request struct {
	User     string // sasl_username; "" for an unauthenticated client
	Addr     netip.Addr
	State    string // protocol_state: RCPT, DATA, END-OF-MESSAGE...
	Instance string // one message within a session
	QueueID  string // empty on the first recipient
	// Recipients is recipient_count: 0 at RCPT, the message's
	// recipients at END-OF-MESSAGE.
	Recipients int
}

// Verdict is the policy answer for a request.
type Verdict struct {
	Held   bool
	Action Action
	Text   string
}

// Check counts a policy request in real time and says whether its
// account is held. Postfix asks once per recipient: each RCPT request is
// a recipient, and a new instance is a new message, so the message that
// goes over a limit is the first one held. The log line that follows
// does not count it again.
func (w *Watch) Check(r Request) Verdict {
	if r.User == "" || len(r.User) > MaxUser {
		return Verdict{}
	}
	now := w.now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.get(r.User, now)
	lim := w.set.For(r.User)
	if r.State == "RCPT" {
		held := w.login(r.User, a, r.Addr, now)
		if !held {
			s := send{T: now, Rcpt: 1, Addr: r.Addr}
			if a.newInstance(r.Instance) {
				s.Msgs = 1
				a.addCredit(now)
			}
			a.add(s)
			w.check(r.User, a, r.Addr, now)
		} else if a.banOnce(r.Addr) {
			w.queue(job{ban: []netip.Addr{r.Addr}})
		}
		a.heldQueue(r.QueueID)
	}
	// Asked at the end of data instead (smtpd_end_of_data_restrictions):
	// the whole message at once, unless RCPT already counted it.
	if r.State == "END-OF-MESSAGE" && !a.isHeld() && a.newInstance(r.Instance) {
		a.addCredit(now)
		a.add(send{T: now, Msgs: 1, Rcpt: int32(max(r.Recipients, 1)), Addr: r.Addr})
		w.check(r.User, a, r.Addr, now)
		a.heldQueue(r.QueueID)
	}
	if !a.isHeld() {
		return Verdict{}
	}
	act, _ := ParseAction(a.HeldAction)
	return Verdict{Held: true, Action: act, Text: lim.Text}
}

// heldSince is for tests and the API.
func (a *acct) heldSince() time.Time {
	if !a.Held {
		return time.Time{}
	}
	return time.Unix(0, a.HeldAt).UTC()
}
