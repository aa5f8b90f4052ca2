// Package ban is the ban manager: the one place where jail decisions and
// bans made by hand meet. It owns the protection checks (never-ban
// classes, ignore and allow lists, the host's own addresses, prefix
// overlap), escalation, nested and widened prefixes, the durable write,
// the firewall, expiry, restore and reconcile. The daemon hands it
// decisions and never waits for a disk or the kernel on the line path;
// `smtpban replay` runs the same manager over a memory store and the
// dry-run firewall, so what replay says would be banned is what the daemon
// bans, by construction.
package ban

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"smtpban/firewall"
	"smtpban/internal/metrics"
	"smtpban/internal/neverban"
	"smtpban/jails"
	"smtpban/state"
)

// Manual names bans made by hand (`smtpban ban`).
const Manual = "manual"

// ManualBanTime is a hand-made ban's length when none is given.
const ManualBanTime = time.Hour

// Log attribute keys, one spelling everywhere.
const (
	keyJail     = "jail"
	keyAddr     = "addr"
	keyUntil    = "until"
	keyFailures = "failures"
	keyOrigin   = "origin"
	keyErr      = "err"
)

// ErrRefused marks a ban refused as asked: a protected address, a prefix
// the firewall does not take, one covered by a wider ban. Callers that
// report to a user map it to "invalid request".
var ErrRefused = errors.New("ban refused")

// errNotSaved marks bans state could not save (disk full, read-only).
var errNotSaved = errors.New("bans not saved")

// Store is where the manager keeps bans: *state.Store, or a MemStore for
// replay.
type Store interface {
	PutBans([]state.Ban) ([]state.Ban, error)
	BanHistory(netip.Prefix) (int, time.Time, error)
	BanHistories([]netip.Prefix) (map[netip.Prefix]int, error)
	BansWithin(netip.Prefix) ([]state.Ban, error)
	DeleteBan(netip.Prefix) (state.Ban, bool, error)
	Bans() ([]state.Ban, error)
	Sweep(now time.Time) ([]state.Ban, error)
	Allows() (map[netip.Prefix]time.Time, error)
	PutAllow(netip.Prefix, time.Time) error
	DeleteAllow(netip.Prefix) error
}

var _ Store = (*state.Store)(nil)

// Options configure a Manager.
type Options struct {
	Store    Store
	Firewall firewall.Backend
	Logger   *slog.Logger     // nil discards
	Now      func() time.Time // nil: time.Now
	Origin   string           // this host, recorded on its bans
	Metrics  *metrics.Metrics // nil records nothing
	// OnBan, if set, is told of each ban as it is saved, in order (replay
	// prints them).
	OnBan func(state.Ban)
	// Publisher, if set, is handed every ban this host makes and every
	// ban lifted everywhere (the shared ban list). Nil: bans stay here.
	Publisher Publisher
}

// Policy is what the config says about who may be banned.
type Policy struct {
	Jails map[string]*jails.Jail
	// Ignore holds, per jail, the global ignore list, the host's own
	// addresses and the jail's own list.
	Ignore map[string]*jails.IgnoreList
	// Global is the global list and the host's own addresses, for bans
	// by hand and jails Ignore does not name.
	Global *jails.IgnoreList
	// Networks are the global list's prefixes and the host's own
	// addresses: no prefix ban may overlap one.
	Networks []netip.Prefix
}

// maxPending bounds the decisions kept for a retry while state cannot be
// written; past it the oldest is dropped (and logged), so that a disk full
// for days under a flood costs bounded memory.
const maxPending = 10000

// queueLen bounds the batches waiting for the manager: past it the line
// path waits, which is all the back-pressure there is.
const queueLen = 1024

// Manager makes bans. Its methods are safe for concurrent use.
type Manager struct {
	log    *slog.Logger
	now    func() time.Time
	store  Store
	fw     firewall.Backend
	met    *metrics.Metrics
	origin string
	onBan  func(state.Ban)
	pub    Publisher
	queue  chan batch
	probe  chan chan struct{} // Alive's, answered by Run
	// done is the sequence number of the last submitted batch whose bans
	// are made (saved, or kept for a retry): see Wait.
	done atomic.Uint64

	// mu serializes the ban path (state, then the firewall) and guards
	// everything below. The line path never takes it.
	mu      sync.Mutex
	policy  Policy
	allow   map[netip.Prefix]time.Time // zero time: for good
	pending []jails.Decision
	banned  map[string]uint64 // bans made per jail since start
	held    *held             // the bans in state, for lookups without a transaction
	// unsaved are bans in the kernel that state could not save yet
	// (recover.go); writeErr is the last write error while that lasts.
	unsaved          map[netip.Prefix]state.Ban
	writeErr         string
	writeFailedSince time.Time
}

// New returns a manager; nothing runs before Run.
func New(o Options) *Manager {
	m := &Manager{
		log: o.Logger, now: o.Now, store: o.Store, fw: o.Firewall, met: o.Metrics,
		origin: o.Origin, onBan: o.OnBan, pub: o.Publisher,
		queue:  make(chan batch, queueLen),
		probe:  make(chan chan struct{}),
		allow:  map[netip.Prefix]time.Time{},
		banned: map[string]uint64{},
		held:   newHeld(),
		policy: Policy{Global: jails.NewIgnoreList()},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// SetPolicy installs the config's jails and lists (at start and reload).
func (m *Manager) SetPolicy(p Policy) {
	if p.Global == nil {
		p.Global = jails.NewIgnoreList()
	}
	m.mu.Lock()
	m.policy = p
	m.mu.Unlock()
}

// batch is what one Submit hands over.
type batch struct {
	seq uint64
	ds  []jails.Decision
}

// Submit queues the decisions of one batch of lines, numbered seq by the
// caller (increasing). It returns at once unless queueLen batches already
// wait. The manager owns ds from then on.
func (m *Manager) Submit(seq uint64, ds []jails.Decision) {
	m.queue <- batch{seq: seq, ds: ds}
}

// Wait returns once the batches numbered up to seq are made, or ctx is
// done. A checkpoint waits so that it never saves a read position past a
// line whose ban is not saved yet: after a crash that line is read again.
func (m *Manager) Wait(ctx context.Context, seq uint64) error {
	for m.done.Load() < seq {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Decide makes the bans of ds now and returns them as saved: replay's way,
// and tests'. The daemon uses Submit.
func (m *Manager) Decide(ctx context.Context, ds []jails.Decision) ([]state.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decide(ctx, ds)
}

// Banned returns how many bans each jail made since start.
func (m *Manager) Banned() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(m.banned))
	for j, n := range m.banned {
		out[j] = n
	}
	return out
}

// Pending is how many decisions wait for state to be writable.
func (m *Manager) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Timers say how often Run does its periodic work.
type Timers struct {
	Sweep  time.Duration // forget expired bans and allow entries
	Retry  time.Duration // bans state could not save
	Resync time.Duration // firewall against state
}

// Run makes the bans of submitted batches until ctx is done. Batches that
// queued up while it was busy are made together: one state transaction,
// one firewall batch, up to chunkLen bans, and newcomers do not wait
// behind a burst (see backlog). Between batches it sweeps, retries and
// resyncs.
func (m *Manager) Run(ctx context.Context, t Timers) error {
	sweep := time.NewTicker(orDefault(t.Sweep, 10*time.Second))
	defer sweep.Stop()
	retry := time.NewTicker(orDefault(t.Retry, time.Second))
	defer retry.Stop()
	resync := time.NewTicker(orDefault(t.Resync, 10*time.Second))
	defer resync.Stop()
	var changed <-chan struct{}
	if w, ok := m.fw.(firewall.Watcher); ok {
		changed = w.Watch(ctx)
	}
	var bl backlog
	for {
		select {
		case <-ctx.Done():
			m.drain(&bl)
			return nil
		case b := <-m.queue:
			bl.push(b)
			for ctx.Err() == nil {
				m.takeQueued(&bl)
				ds := bl.take(chunkLen)
				if ds == nil {
					break
				}
				m.make(ctx, ds, bl.made)
			}
		case <-sweep.C:
			m.Sweep()
		case <-retry.C:
			m.retryPending(ctx)
		case p := <-m.probe:
			close(p)
		case <-resync.C:
			m.Resync(ctx, "periodic")
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			m.Resync(ctx, "changed")
		}
	}
}

// Alive returns nil once Run has come round its loop and can take mu,
// or an error when ctx ends first: a manager stuck in the firewall or
// state makes no bans, while the line path only notices once its queue
// is full. The daemon's watchdog asks.
func (m *Manager) Alive(ctx context.Context) error {
	p := make(chan struct{})
	select {
	case m.probe <- p:
	case <-ctx.Done():
		return fmt.Errorf("ban manager busy with one batch: %w", ctx.Err())
	}
	<-p
	// Polled, so that a lock held for good leaves no goroutine behind.
	for !m.mu.TryLock() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ban manager's lock held: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	m.mu.Unlock()
	return nil
}

// Drain makes the bans still queued at shutdown, so that the last
// checkpoint can save the positions of the lines that decided them; the
// firewall gets a few seconds.
func (m *Manager) Drain() {
	m.drain(&backlog{})
}

func (m *Manager) drain(bl *backlog) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.takeQueued(bl)
	for ds := bl.take(bl.n); ds != nil; ds = bl.take(bl.n) {
		m.make(ctx, ds, bl.made)
	}
}

// takeQueued moves the batches queued for the manager into its backlog.
func (m *Manager) takeQueued(bl *backlog) {
	for {
		select {
		case b := <-m.queue:
			bl.push(b)
		default:
			return
		}
	}
}

// make makes the bans ds; then every batch numbered up to seq is made.
func (m *Manager) make(ctx context.Context, ds []jails.Decision, seq uint64) {
	m.mu.Lock()
	if _, err := m.decide(ctx, ds); err != nil && !errors.Is(err, errNotSaved) {
		m.log.Error("bans", keyErr, err)
	}
	m.mu.Unlock()
	m.done.Store(seq)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// protected says why p must not be banned, or "" if it may be. The caller
// holds mu.
func (m *Manager) protected(jail string, p netip.Prefix, addr netip.Addr, now time.Time) string {
	_, why := m.protection(jail, p, addr, now)
	return why
}

// protection is protected with the metrics' reason (metrics.Skip*).
func (m *Manager) protection(jail string, p netip.Prefix, addr netip.Addr, now time.Time) (reason, why string) {
	// First, so that the reason names the class, whatever the lists hold.
	if why := neverban.Prefix(p); why != "" {
		return metrics.SkipNeverBan, "never banned: " + why
	}
	l := m.policy.Ignore[jail]
	if l == nil {
		l = m.policy.Global
	}
	if l.Contains(addr) {
		return metrics.SkipIgnored, "address is on the ignore list, is loopback or is this host's own"
	}
	for a, until := range m.allow {
		if (until.IsZero() || until.After(now)) && a.Overlaps(p) {
			return metrics.SkipAllowed, "address is on the allow list (smtpban allow)"
		}
	}
	if !p.IsSingleIP() {
		// A prefix ban must not sweep up an ignored network or this host.
		for _, ig := range m.policy.Networks {
			if ig.Overlaps(p) {
				return metrics.SkipPrefixOverlap, fmt.Sprintf("prefix overlaps ignored %s", ig)
			}
		}
		if l.Overlaps(p) {
			return metrics.SkipPrefixOverlap, "prefix overlaps the jail's ignore list"
		}
	}
	return "", ""
}

// check says whether the firewall would take p for d: a ban it refuses
// (wider than min_prefix) is refused before it is stored, where it was
// retried every resync and kept the daemon from starting again.
func (m *Manager) check(p netip.Prefix, d time.Duration) error {
	c, ok := m.fw.(firewall.Checker)
	if !ok {
		return nil
	}
	if _, err := c.Check(firewall.Entry{Prefix: p, Timeout: max(d, time.Second)}); err != nil {
		return fmt.Errorf("%w: the firewall refuses %s: %w", ErrRefused, p, err)
	}
	return nil
}

// put saves bans in one transaction.
func (m *Manager) put(bans []state.Ban) ([]state.Ban, error) {
	saved, err := m.store.PutBans(bans)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotSaved, err)
	}
	return saved, nil
}

// apply puts saved bans in the firewall in one batch and reports them; on
// a firewall error they stay in state, and the next resync applies them.
func (m *Manager) apply(ctx context.Context, saved []state.Ban, decided time.Time) {
	if len(saved) == 0 {
		return
	}
	now := m.now()
	entries := make([]firewall.Entry, 0, len(saved))
	for _, b := range saved {
		entries = append(entries, firewall.Entry{Prefix: b.Prefix, Timeout: b.Until.Sub(now)})
	}
	if err := m.fw.Add(ctx, entries); err != nil {
		m.met.FirewallError(metrics.OpAdd)
		m.log.Error("bans not applied; the next resync tries again", "bans", len(entries), keyErr, err)
	}
	took := m.now().Sub(decided)
	for _, b := range saved {
		m.held.put(b)
		m.met.Ban(b.Jail, b.Origin, took)
		m.banned[b.Jail]++
		m.log.Info("ban", keyJail, b.Jail, keyAddr, b.Prefix, keyFailures, b.Failures,
			keyUntil, b.Until.UTC().Format(time.RFC3339), keyOrigin, b.Origin, "count", b.Count)
	}
}
