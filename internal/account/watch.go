// Package account watches authenticated accounts: what each sends (from
// Postfix's, Dovecot's and Exim's logs, and in real time from Postfix's
// policy requests) and who fails to log in as it. An account over a limit
// is held: its addresses are banned, an alert is kept, a hook runs, and
// the policy service answers HOLD for it until an admin releases it.
package account

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"smtpban/internal/logline"
)

// Banner bans addresses for an account; the ban manager does it, with all
// its protection checks.
type Banner interface {
	BanAccount(ctx context.Context, addrs []netip.Addr, d time.Duration) (banned []netip.Prefix, err error)
}

// Store keeps accounts and alerts across restarts (state.Store).
type Store interface {
	PutAccounts(put map[string][]byte, del []string) error
	Accounts() (map[string][]byte, error)
	PutAlert(at time.Time, user string, v []byte) error
	Alerts(user string, max int) ([][]byte, error)
}

// Options configure a Watch.
type Options struct {
	Settings Settings
	Now      func() time.Time
	Logger   *slog.Logger
	Banner   Banner // nil: nothing is banned (replay, tests)
	Store    Store  // nil: nothing is kept
	Host     string // named in alerts
}

// Watch is the account watch. Its methods are safe for concurrent use: the
// line path and the policy service share one short-held lock, and
// everything slow (bans, state, the hook) happens on Run's goroutine.
type Watch struct {
	log    *slog.Logger
	now    func() time.Time
	banner Banner
	store  Store
	host   string

	mu       sync.Mutex
	set      Settings
	accounts map[string]*acct
	join     joinMap
	deleted  []string // accounts forgotten since the last save
	jobs     chan job
	dropped  uint64 // jobs dropped because the queue was full
	held     int    // accounts held now, kept at each change for the metrics
	alerts   map[string]uint64

	banned atomic.Uint64 // addresses banned, counted by Run
}

// job is slow work for Run: an alert to keep, addresses to ban, the hook.
type job struct {
	alert *Alert
	ban   []netip.Addr
}

// New makes a Watch. Call Restore before use, then Run.
func New(o Options) *Watch {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watch{
		log: o.Logger, now: o.Now, banner: o.Banner, store: o.Store, host: o.Host,
		accounts: map[string]*acct{},
		jobs:     make(chan job, 4096),
		alerts:   map[string]uint64{},
	}
	// Every limit's series exists from the start, at 0.
	for _, l := range LimitNames {
		w.alerts[l] = 0
	}
	w.SetSettings(o.Settings)
	return w
}

// SetSettings applies a new configuration (reload); counts are kept.
func (w *Watch) SetSettings(s Settings) {
	d := DefaultSettings()
	if s.BanTime <= 0 {
		s.BanTime = d.BanTime
	}
	if s.GuessWindow <= 0 {
		s.GuessWindow = d.GuessWindow
	}
	if s.GuessAddresses <= 0 {
		s.GuessAddresses = d.GuessAddresses
	}
	if s.HookTimeout <= 0 {
		s.HookTimeout = d.HookTimeout
	}
	if s.MaxAccounts <= 0 {
		s.MaxAccounts = d.MaxAccounts
	}
	if s.JoinMax <= 0 {
		s.JoinMax = d.JoinMax
	}
	if s.JoinTTL <= 0 {
		s.JoinTTL = d.JoinTTL
	}
	w.mu.Lock()
	w.set = s
	w.join.max, w.join.ttl = s.JoinMax, s.JoinTTL.Nanoseconds()
	w.mu.Unlock()
}

// Line counts what one decoded log line says about an account; it
// reports whether the line was one of the watch's.
func (w *Watch) Line(l *logline.Line) bool {
	ev, ok := Parse(l)
	if !ok {
		return false
	}
	w.Event(ev, l.Time())
	return true
}

// Event counts one event at t.
func (w *Watch) Event(ev Event, t time.Time) {
	now := t.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Kind {
	case Submit:
		w.submit(ev, now)
	case Queued:
		w.queued(ev, now)
	case Fail:
		w.fail(ev, now)
	case Login:
		a := w.get(ev.User, now)
		w.login(ev.User, a, ev.Addr, now)
	}
}

func (w *Watch) submit(ev Event, now int64) {
	a := w.get(ev.User, now)
	if w.login(ev.User, a, ev.Addr, now) {
		a.heldQueue(ev.QueueID)
		return
	}
	if ev.Rcpt > 0 { // Exim: the line is the whole story
		a.add(send{T: now, Msgs: 1, Rcpt: int32(ev.Rcpt), Addr: ev.Addr})
		w.check(ev.User, a, ev.Addr, now)
		if a.isHeld() {
			a.heldQueue(ev.QueueID)
		}
		return
	}
	e, seen := w.join.get(ev.QueueID)
	if seen && e.user != "" {
		return // the same line again (a source read twice)
	}
	if !seen {
		e = w.join.put(ev.QueueID, now)
	}
	e.user, e.addr = ev.User, ev.Addr
	if a.isHeld() {
		a.heldQueue(ev.QueueID)
	}
	if a.takeCredit(now) {
		// The policy service counted this message and its recipients
		// already; the log only confirms it.
		e.policy = true
		return
	}
	s := send{T: now, Msgs: 1, Addr: ev.Addr}
	if e.rcpt >= 0 { // qmgr's line came first
		s.Rcpt, e.rcptDone = int32(e.rcpt), true
	}
	a.add(s)
	w.check(ev.User, a, ev.Addr, now)
	if a.isHeld() { // this message tipped it
		a.heldQueue(ev.QueueID)
	}
}

// queued adds the recipients qmgr counted to the message's account. qmgr
// logs from= again each time a deferred message is retried: only the
// first counts.
func (w *Watch) queued(ev Event, now int64) {
	e, seen := w.join.get(ev.QueueID)
	if !seen {
		e = w.join.put(ev.QueueID, now)
		e.rcpt = ev.Rcpt
		return
	}
	if e.rcptDone || e.policy {
		return
	}
	if e.user == "" {
		e.rcpt = ev.Rcpt
		return
	}
	e.rcptDone = true
	a := w.get(e.user, now)
	a.add(send{T: now, Rcpt: int32(ev.Rcpt), Addr: e.addr})
	w.check(e.user, a, e.addr, now)
}

// get returns user's account, made if new. The caller holds mu.
func (w *Watch) get(user string, now int64) *acct {
	a := w.accounts[user]
	if a == nil {
		if len(w.accounts) >= w.set.MaxAccounts {
			w.evictIdle()
		}
		a = newAcct(now)
		w.accounts[user] = a
	}
	a.dirty = true
	if now > a.last {
		a.last = now
	}
	return a
}

// evictIdle forgets the account idle longest that is not held.
func (w *Watch) evictIdle() {
	var victim string
	var oldest int64
	for u, a := range w.accounts {
		if a.isHeld() {
			continue
		}
		if victim == "" || a.last < oldest {
			victim, oldest = u, a.last
		}
	}
	if victim != "" {
		delete(w.accounts, victim)
		w.deleted = append(w.deleted, victim)
	}
}

// login notes a successful login from addr; if addr is in a network that
// was guessing user's password, the password has been found: hold. It
// reports whether the account is held.
func (w *Watch) login(user string, a *acct, addr netip.Addr, now int64) bool {
	if !a.isHeld() && a.guessNet(addr, now) {
		lim := w.set.For(user)
		w.trip(user, a, lim, now, Alert{
			Limit: LimitGuessedLogin, Value: 1, Max: 0, Window: w.set.GuessWindow.String(),
			Detail: "login from " + addr.String() + ", in a network that was guessing this account's password",
		}, []netip.Addr{addr})
	}
	return a.isHeld()
}

// check trips user's limits after a send from addr. The caller holds mu.
func (w *Watch) check(user string, a *acct, addr netip.Addr, now int64) {
	if a.isHeld() {
		// Whoever still sends as a held account is banned too, but for
		// its owner's established networks.
		if n, ok := a.Nets[Network(addr)]; ok && n.First < now-int64(learnTime) {
			return
		}
		if a.banOnce(addr) {
			w.queue(job{ban: []netip.Addr{addr}})
		}
		return
	}
	lim := w.set.For(user)
	if al, ok := a.over(lim, now); ok {
		w.trip(user, a, lim, now, al, a.addrs(now-int64(time.Hour), now))
	}
}

// trip holds user's account, queues the alert and the bans. The caller
// holds mu.
func (w *Watch) trip(user string, a *acct, lim Limits, now int64, al Alert, ban []netip.Addr) {
	if !a.Held {
		w.held++
	}
	w.alerts[al.Limit]++
	a.Held, a.HeldAt, a.HeldWhy, a.HeldAction = true, now, al.Limit, lim.Action.String()
	a.dirty = true
	var fresh []netip.Addr
	for _, ad := range ban {
		if a.banOnce(ad) {
			fresh = append(fresh, ad)
		}
	}
	al.Time = time.Unix(0, now).UTC()
	al.User, al.Host, al.Action = user, w.host, lim.Action.String()
	al.Addresses = ban
	w.log.Warn("account held", "user", user, "limit", al.Limit, "value", al.Value, "max", al.Max, "addresses", len(ban))
	w.queue(job{alert: &al, ban: fresh})
}

func (w *Watch) queue(j job) {
	select {
	case w.jobs <- j:
	default:
		// Never block the line path or the policy service; the hold
		// itself is already in force.
		w.dropped++
	}
}

// fail counts a failed login as user from addr.
func (w *Watch) fail(ev Event, now int64) {
	a := w.get(ev.User, now)
	win := w.set.GuessWindow.Nanoseconds()
	n := a.failed(ev.Addr, now, win)
	if a.guessedUntil(now) {
		// The guessing already tripped: each new guesser is banned too.
		a.addGuessNet(ev.Addr, now+win)
		if a.banOnce(ev.Addr) {
			w.queue(job{ban: []netip.Addr{ev.Addr}})
		}
		return
	}
	if n < w.set.GuessAddresses {
		return
	}
	addrs := a.failing(now, win)
	a.Guessed = now
	for _, ad := range addrs {
		a.addGuessNet(ad, now+win)
	}
	var fresh []netip.Addr
	for _, ad := range addrs {
		if a.banOnce(ad) {
			fresh = append(fresh, ad)
		}
	}
	al := Alert{
		Time: time.Unix(0, now).UTC(), User: ev.User, Host: w.host, Limit: LimitGuessing,
		Value: n, Max: w.set.GuessAddresses, Window: w.set.GuessWindow.String(), Action: "ban",
		Addresses: addrs,
		Detail:    "distinct addresses failing to log in as this account; a login from their networks will hold it",
	}
	w.alerts[LimitGuessing]++
	w.log.Warn("account under distributed guessing", "user", ev.User, "addresses", n)
	w.queue(job{alert: &al, ban: fresh})
}

// Expire drops what is older than every window. Run calls it.
func (w *Watch) Expire() {
	now := w.now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.join.expire(now)
	for u, a := range w.accounts {
		if a.expire(now, w.set.GuessWindow.Nanoseconds()) {
			a.dirty = true
		}
		if a.empty() {
			delete(w.accounts, u)
			w.deleted = append(w.deleted, u)
		}
	}
}

// Users lists the accounts followed, by name.
func (w *Watch) users() []string {
	us := make([]string, 0, len(w.accounts))
	for u := range w.accounts {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

// Stats are the watch's figures for the metrics.
type Stats struct {
	Held    int               // accounts held now
	Alerts  map[string]uint64 // alerts since start, by limit
	Banned  uint64            // addresses banned for accounts since start
	Dropped uint64            // alerts or bans dropped: the queue to Run was full
}

// Stats copies the figures under mu: a few words and a map of one entry
// per limit, never a walk over the accounts.
func (w *Watch) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{Held: w.held, Alerts: maps.Clone(w.alerts), Banned: w.banned.Load(), Dropped: w.dropped}
}
