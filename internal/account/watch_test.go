package account

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeStore keeps records in maps, as state.Store does in bbolt.
type fakeStore struct {
	mu       sync.Mutex
	accounts map[string][]byte
	alerts   map[string][][]byte
}

func newFakeStore() *fakeStore {
	return &fakeStore{accounts: map[string][]byte{}, alerts: map[string][][]byte{}}
}

func (s *fakeStore) PutAccounts(put map[string][]byte, del []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range del {
		delete(s.accounts, u)
	}
	for u, v := range put {
		s.accounts[u] = slices.Clone(v)
	}
	return nil
}

func (s *fakeStore) Accounts() (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for u, v := range s.accounts {
		out[u] = slices.Clone(v)
	}
	return out, nil
}

func (s *fakeStore) PutAlert(at time.Time, user string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts[user] = append(s.alerts[user], slices.Clone(v))
	return nil
}

func (s *fakeStore) Alerts(user string, max int) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alerts[user], nil
}

type fakeBanner struct {
	mu     sync.Mutex
	banned []netip.Addr
}

func (b *fakeBanner) BanAccount(_ context.Context, addrs []netip.Addr, _ time.Duration) ([]netip.Prefix, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.banned = append(b.banned, addrs...)
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (b *fakeBanner) list() []netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.banned)
}

// clock is a settable time for the watch.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type harness struct {
	w      *Watch
	clock  *clock
	store  *fakeStore
	banner *fakeBanner
}

func newHarness(t *testing.T, s Settings) *harness {
	t.Helper()
	h := &harness{clock: &clock{time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, store: newFakeStore(), banner: &fakeBanner{}}
	h.w = New(Options{Settings: s, Now: h.clock.now, Store: h.store, Banner: h.banner, Host: "mx1"})
	return h
}

// work does the queued slow work (alerts, bans) as Run would.
func (h *harness) work() {
	h.w.drainJobs(context.Background())
}

func (h *harness) ev(e Event) { h.w.Event(e, h.clock.t) }

func (h *harness) submit(id, user, addr string) {
	h.ev(Event{Kind: Submit, QueueID: id, User: user, Addr: netip.MustParseAddr(addr)})
}

func (h *harness) queued(id string, n int) { h.ev(Event{Kind: Queued, QueueID: id, Rcpt: n}) }

func (h *harness) summary(t *testing.T, user string) Summary {
	t.Helper()
	for _, s := range h.w.Accounts() {
		if s.User == user {
			return s
		}
	}
	t.Fatalf("no account %q", user)
	return Summary{}
}

func limited(l Limits) Settings {
	s := DefaultSettings()
	s.Rules = []Rule{{Pattern: "*", Limits: l}}
	return s
}

func TestJoin(t *testing.T) {
	tests := []struct {
		name           string
		do             func(h *harness)
		msgs, rcpt     int
		joinLenAtLeast int
	}{
		{"in order", func(h *harness) {
			h.submit("A1", "alice", "192.0.2.1")
			h.queued("A1", 3)
		}, 1, 3, 0},
		{"qmgr first", func(h *harness) {
			h.queued("A1", 3)
			h.submit("A1", "alice", "192.0.2.1")
		}, 1, 3, 0},
		{"qmgr lost: the message still counts", func(h *harness) {
			h.submit("A1", "alice", "192.0.2.1")
		}, 1, 0, 0},
		{"smtpd lost: nobody to count for", func(h *harness) {
			h.queued("A1", 3)
		}, 0, 0, 0},
		{"retried message: qmgr's second line is not counted", func(h *harness) {
			h.submit("A1", "alice", "192.0.2.1")
			h.queued("A1", 3)
			h.queued("A1", 3)
		}, 1, 3, 0},
		{"the same smtpd line twice", func(h *harness) {
			h.submit("A1", "alice", "192.0.2.1")
			h.submit("A1", "alice", "192.0.2.1")
			h.queued("A1", 2)
		}, 1, 2, 0},
		{"two messages interleaved", func(h *harness) {
			h.submit("A1", "alice", "192.0.2.1")
			h.submit("A2", "alice", "192.0.2.1")
			h.queued("A2", 5)
			h.queued("A1", 1)
		}, 2, 6, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, DefaultSettings())
			tc.do(h)
			if tc.msgs == 0 {
				if len(h.w.Accounts()) != 0 {
					t.Errorf("accounts = %+v, want none", h.w.Accounts())
				}
				return
			}
			s := h.summary(t, "alice")
			if s.MessagesHour != tc.msgs || s.RecipientsHour != tc.rcpt {
				t.Errorf("messages %d recipients %d, want %d and %d", s.MessagesHour, s.RecipientsHour, tc.msgs, tc.rcpt)
			}
		})
	}
}

// TestJoinBounded: the join forgets the oldest past its bound and what
// is older than its ttl.
func TestJoinBounded(t *testing.T) {
	s := DefaultSettings()
	s.JoinMax = 100
	h := newHarness(t, s)
	for i := range 1000 {
		h.queued(fmt.Sprintf("Q%d", i), 1) // qmgr lines whose smtpd line never comes
	}
	if n := h.w.join.len(); n > 100 {
		t.Fatalf("join holds %d, want at most 100", n)
	}
	h.clock.t = h.clock.t.Add(2 * time.Hour)
	h.w.Expire()
	if n := h.w.join.len(); n != 0 {
		t.Errorf("join holds %d after its ttl, want 0", n)
	}
	// A late smtpd line for a forgotten queue ID counts its message only.
	h.submit("Q999", "alice", "192.0.2.1")
	if s := h.summary(t, "alice"); s.MessagesHour != 1 || s.RecipientsHour != 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestLimits(t *testing.T) {
	base := Limits{Action: Hold}
	tests := []struct {
		name  string
		lim   func(l *Limits)
		send  func(h *harness, i int) // the i-th message
		n     int                     // messages sent
		trips int                     // the message that trips (1-based), 0 none
		limit string
	}{
		{"messages per hour", func(l *Limits) { l.MessagesPerHour = 10 },
			func(h *harness, i int) { h.submit(fmt.Sprint("M", i), "alice", "192.0.2.1") }, 15, 11, LimitMessagesPerHour},
		{"under messages per hour", func(l *Limits) { l.MessagesPerHour = 10 },
			func(h *harness, i int) { h.submit(fmt.Sprint("M", i), "alice", "192.0.2.1") }, 10, 0, ""},
		{"messages per hour is a sliding window", func(l *Limits) { l.MessagesPerHour = 10 },
			func(h *harness, i int) {
				h.clock.t = h.clock.t.Add(7 * time.Minute)
				h.submit(fmt.Sprint("M", i), "alice", "192.0.2.1")
			}, 30, 0, ""},
		{"messages per day", func(l *Limits) { l.MessagesPerDay = 20 },
			func(h *harness, i int) {
				h.clock.t = h.clock.t.Add(30 * time.Minute)
				h.submit(fmt.Sprint("M", i), "alice", "192.0.2.1")
			}, 30, 21, LimitMessagesPerDay},
		{"recipients per hour", func(l *Limits) { l.RecipientsPerHour = 50 },
			func(h *harness, i int) {
				h.submit(fmt.Sprint("M", i), "alice", "192.0.2.1")
				h.queued(fmt.Sprint("M", i), 20)
			}, 5, 3, LimitRecipientsPerHour},
		{"addresses per hour", func(l *Limits) { l.AddressesPerHour = 3 },
			func(h *harness, i int) { h.submit(fmt.Sprint("M", i), "alice", fmt.Sprintf("192.0.2.%d", i+1)) }, 5, 4, LimitAddressesPerHour},
		{"networks per hour", func(l *Limits) { l.NetworksPerHour = 2 },
			func(h *harness, i int) { h.submit(fmt.Sprint("M", i), "alice", fmt.Sprintf("198.51.%d.1", i)) }, 5, 3, LimitNetworksPerHour},
		{"many addresses in one network", func(l *Limits) { l.NetworksPerHour = 2 },
			func(h *harness, i int) { h.submit(fmt.Sprint("M", i), "alice", fmt.Sprintf("198.51.100.%d", i+1)) }, 20, 0, ""},
		{"new network while sending", func(l *Limits) { l.NewNetworkMessages = 5; l.NewNetworkAge = 30 * 24 * time.Hour },
			func(h *harness, i int) {
				if i == 0 { // the account's known network, two days ago
					h.clock.t = h.clock.t.Add(-48 * time.Hour)
					h.submit("OLD", "alice", "192.0.2.1")
					h.clock.t = h.clock.t.Add(48 * time.Hour)
				}
				h.submit(fmt.Sprint("M", i), "alice", "203.0.113.9")
			}, 10, 6, LimitNewNetwork},
		{"known network is not new", func(l *Limits) { l.NewNetworkMessages = 5; l.NewNetworkAge = 30 * 24 * time.Hour },
			func(h *harness, i int) {
				if i == 0 {
					h.clock.t = h.clock.t.Add(-48 * time.Hour)
					h.submit("OLD", "alice", "192.0.2.1")
					h.clock.t = h.clock.t.Add(48 * time.Hour)
				}
				h.submit(fmt.Sprint("M", i), "alice", "192.0.2.7")
			}, 10, 0, ""},
		{"a fresh account learns its networks first", func(l *Limits) { l.NewNetworkMessages = 5; l.NewNetworkAge = 30 * 24 * time.Hour },
			func(h *harness, i int) { h.submit(fmt.Sprint("M", i), "alice", "203.0.113.9") }, 10, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := base
			tc.lim(&l)
			h := newHarness(t, limited(l))
			tripped := 0
			for i := range tc.n {
				tc.send(h, i)
				if tripped == 0 && h.summary(t, "alice").Held {
					tripped = i + 1
				}
			}
			if tripped != tc.trips {
				t.Fatalf("held at message %d, want %d", tripped, tc.trips)
			}
			if tc.trips == 0 {
				return
			}
			h.work()
			if s := h.summary(t, "alice"); s.HeldWhy != tc.limit {
				t.Errorf("held for %q, want %q", s.HeldWhy, tc.limit)
			}
			if len(h.store.alerts["alice"]) != 1 {
				t.Errorf("%d alerts, want 1", len(h.store.alerts["alice"]))
			}
			if len(h.banner.list()) == 0 {
				t.Errorf("no address banned")
			}
		})
	}
}

func TestMostSpecificRule(t *testing.T) {
	s := Settings{Rules: []Rule{
		{Pattern: "*", Limits: Limits{MessagesPerHour: 1}},
		{Pattern: "*@example.test", Limits: Limits{MessagesPerHour: 2}},
		{Pattern: "news*@example.test", Limits: Limits{MessagesPerHour: 3}},
		{Pattern: "newsletter@example.test", Limits: Limits{MessagesPerHour: 4}},
	}}
	for user, want := range map[string]int{
		"bob@elsewhere": 1, "alice@example.test": 2, "news2@example.test": 3, "newsletter@example.test": 4,
	} {
		if got := s.For(user).MessagesPerHour; got != want {
			t.Errorf("For(%q) = %d, want %d", user, got, want)
		}
	}
}

// TestPolicyCountsOnce: the policy service counts a message at its
// first recipient; the smtpd log line that follows does not count it
// again, nor does qmgr's.
func TestPolicyCountsOnce(t *testing.T) {
	h := newHarness(t, limited(Limits{MessagesPerHour: 3}))
	addr := netip.MustParseAddr("192.0.2.1")
	for i := range 3 {
		inst := fmt.Sprint("inst", i)
		for r := range 2 { // two recipients
			v := h.w.Check(Request{User: "alice", Addr: addr, State: "RCPT", Instance: inst})
			if v.Held {
				t.Fatalf("message %d recipient %d held", i, r)
			}
		}
		h.submit(fmt.Sprint("Q", i), "alice", "192.0.2.1")
		h.queued(fmt.Sprint("Q", i), 2)
	}
	if s := h.summary(t, "alice"); s.MessagesHour != 3 || s.RecipientsHour != 6 {
		t.Fatalf("summary %+v, want 3 messages, 6 recipients", s)
	}
	// The 4th message is held at its first recipient.
	v := h.w.Check(Request{User: "alice", Addr: netip.MustParseAddr("203.0.113.5"), State: "RCPT", Instance: "inst3"})
	if !v.Held || v.Action != Hold {
		t.Fatalf("4th message: %+v, want held", v)
	}
	// Other requests (DATA) and other accounts are answered, not counted.
	if v := h.w.Check(Request{User: "bob", Addr: addr, State: "DATA"}); v.Held {
		t.Errorf("bob held")
	}
	h.work()
	if got := h.banner.list(); !slices.Contains(got, netip.MustParseAddr("203.0.113.5")) {
		t.Errorf("banned %v, want 203.0.113.5 among them", got)
	}
}

func TestGuessing(t *testing.T) {
	s := DefaultSettings()
	s.GuessAddresses = 50
	h := newHarness(t, s)
	fail := func(addr string) {
		h.ev(Event{Kind: Fail, User: "alice", Addr: netip.MustParseAddr(addr)})
	}
	// 49 addresses, 2 failures each, over hours: not yet.
	for i := range 49 {
		fail(fmt.Sprintf("10.79.%d.%d", i/100, i%100+1))
		h.clock.t = h.clock.t.Add(time.Minute)
		fail(fmt.Sprintf("10.79.%d.%d", i/100, i%100+1))
	}
	h.work()
	if len(h.banner.list()) != 0 {
		t.Fatalf("banned %d before the limit", len(h.banner.list()))
	}
	fail("10.79.5.1")
	h.work()
	if n := len(h.banner.list()); n != 50 {
		t.Fatalf("banned %d, want all 50", n)
	}
	if s := h.summary(t, "alice"); s.Held {
		t.Fatalf("held before any login")
	}
	// A new guesser after the limit is banned at once.
	fail("10.80.0.1")
	h.work()
	if n := len(h.banner.list()); n != 51 {
		t.Fatalf("banned %d, want 51", n)
	}
	// A login from elsewhere is alice.
	h.submit("OK1", "alice", "192.0.2.1")
	if h.summary(t, "alice").Held {
		t.Fatalf("held for a login from an innocent network")
	}
	// A login from one of the guessers' networks: the password is found.
	v := h.w.Check(Request{User: "alice", Addr: netip.MustParseAddr("10.79.0.200"), State: "RCPT", Instance: "x"})
	if !v.Held {
		t.Fatalf("login from a guessing network not held")
	}
	if s := h.summary(t, "alice"); s.HeldWhy != LimitGuessedLogin {
		t.Errorf("held for %q", s.HeldWhy)
	}
	// The window passes: the guessers are forgotten.
	h.clock.t = h.clock.t.Add(25 * time.Hour)
	h.w.Expire()
	if s := h.summary(t, "alice"); s.Failing != 0 {
		t.Errorf("failing %d after the window", s.Failing)
	}
}

// TestRestart: counts, holds and guessers survive a restart.
func TestRestart(t *testing.T) {
	s := DefaultSettings()
	s.GuessAddresses = 5
	s.Rules = []Rule{{Pattern: "*", Limits: Limits{MessagesPerHour: 3}}}
	h := newHarness(t, s)
	for i := range 4 {
		h.submit(fmt.Sprint("Q", i), "alice", "192.0.2.1")
	}
	for i := range 4 {
		h.ev(Event{Kind: Fail, User: "bob", Addr: netip.MustParseAddr(fmt.Sprintf("10.79.1.%d", i+1))})
	}
	h.submit("B1", "carol", "192.0.2.3")
	if err := h.w.Save(); err != nil {
		t.Fatal(err)
	}
	w2 := New(Options{Settings: s, Now: h.clock.now, Store: h.store, Banner: h.banner})
	if n, err := w2.Restore(); err != nil || n != 3 {
		t.Fatalf("Restore = %d, %v; want 3", n, err)
	}
	h.w = w2
	if s := h.summary(t, "alice"); !s.Held || s.MessagesHour != 4 {
		t.Errorf("alice after restart: %+v", s)
	}
	if v := w2.Check(Request{User: "alice", State: "RCPT"}); !v.Held {
		t.Errorf("alice not held after restart")
	}
	// bob's 5th guesser trips the limit counted before the restart.
	h.ev(Event{Kind: Fail, User: "bob", Addr: netip.MustParseAddr("10.79.1.9")})
	h.work()
	if n := len(h.banner.list()); n < 5 {
		t.Errorf("banned %d after bob's 5th guesser, want 5 or more", n)
	}
	// Release: carol's counts start again, alice can send.
	r, err := w2.Release("alice")
	if err != nil || !r.WasHeld || len(r.QueueIDs) != 0 && r.Commands[0] == "" {
		t.Fatalf("Release = %+v, %v", r, err)
	}
	if v := w2.Check(Request{User: "alice", State: "RCPT", Instance: "i"}); v.Held {
		t.Errorf("alice held after release")
	}
	// A bad record does not keep the rest from loading.
	h.store.accounts["mallory"] = []byte("{not json")
	w3 := New(Options{Settings: s, Now: h.clock.now, Store: h.store})
	if n, err := w3.Restore(); err != nil || n != 3 {
		t.Errorf("Restore with a bad record = %d, %v; want 3, nil", n, err)
	}
}

func TestPostsuperCommands(t *testing.T) {
	got := PostsuperCommands([]string{"4Xab", "4Xcd"})
	if got[0] != "postsuper -H 4Xab -H 4Xcd" || got[1] != "postqueue -f" {
		t.Errorf("commands %q", got)
	}
}

// TestHeldQueueIDs: the queue IDs of mail sent while held are what
// release prints.
func TestHeldQueueIDs(t *testing.T) {
	h := newHarness(t, limited(Limits{MessagesPerHour: 1}))
	h.submit("Q1", "alice", "192.0.2.1")
	h.submit("Q2", "alice", "192.0.2.1") // trips
	h.submit("Q3", "alice", "192.0.2.1")
	r, err := h.w.Release("alice")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.QueueIDs, []string{"Q2", "Q3"}) {
		t.Errorf("queue IDs %v, want [Q2 Q3]", r.QueueIDs)
	}
}

// TestPolicyEndOfData: asked at the end of data, the service counts the
// message with its recipients; asked at RCPT as well, once.
func TestPolicyEndOfData(t *testing.T) {
	h := newHarness(t, limited(Limits{RecipientsPerHour: 10}))
	addr := netip.MustParseAddr("192.0.2.1")
	if v := h.w.Check(Request{User: "alice", Addr: addr, State: "END-OF-MESSAGE", Instance: "i1", Recipients: 6}); v.Held {
		t.Fatal("held at 6 recipients")
	}
	h.w.Check(Request{User: "alice", Addr: addr, State: "RCPT", Instance: "i2"})
	h.w.Check(Request{User: "alice", Addr: addr, State: "END-OF-MESSAGE", Instance: "i2", Recipients: 1})
	if s := h.summary(t, "alice"); s.MessagesHour != 2 || s.RecipientsHour != 7 {
		t.Fatalf("summary %+v, want 2 messages, 7 recipients", s)
	}
	if v := h.w.Check(Request{User: "alice", Addr: addr, State: "END-OF-MESSAGE", Instance: "i3", Recipients: 4}); !v.Held {
		t.Errorf("11 recipients not held")
	}
}

// TestEstablishedNetworkNotBanned: a hold bans the addresses that sent as
// the account in the hour, but not those of a network the account has
// used for more than a day: the owner's office keeps working.
func TestEstablishedNetworkNotBanned(t *testing.T) {
	h := newHarness(t, limited(Limits{MessagesPerHour: 3}))
	h.clock.t = h.clock.t.Add(-48 * time.Hour)
	h.submit("OLD", "alice", "192.0.2.1") // the office, two days ago
	h.clock.t = h.clock.t.Add(48 * time.Hour)
	h.submit("Q1", "alice", "192.0.2.7") // the office today
	for i := range 3 {
		h.submit(fmt.Sprint("S", i), "alice", "203.0.113.9")
	}
	if !h.summary(t, "alice").Held {
		t.Fatal("not held")
	}
	h.submit("Q2", "alice", "192.0.2.8") // the office, while held
	h.work()
	got := h.banner.list()
	if !slices.Equal(got, []netip.Addr{netip.MustParseAddr("203.0.113.9")}) {
		t.Errorf("banned %v, want only 203.0.113.9", got)
	}
}

// TestStats: the figures the metrics read follow holds, releases, a
// restart, alerts by limit and the addresses banned.
func TestStats(t *testing.T) {
	s := DefaultSettings()
	s.GuessAddresses = 3
	s.Rules = []Rule{{Pattern: "*", Limits: Limits{MessagesPerHour: 2}}}
	h := newHarness(t, s)
	want := func(held int, alerts map[string]uint64, banned uint64) {
		t.Helper()
		st := h.w.Stats()
		if st.Held != held || st.Banned != banned || st.Dropped != 0 {
			t.Errorf("held, banned, dropped = %d, %d, %d; want %d, %d, 0", st.Held, st.Banned, st.Dropped, held, banned)
		}
		for _, l := range LimitNames {
			if st.Alerts[l] != alerts[l] {
				t.Errorf("alerts[%s] = %d, want %d", l, st.Alerts[l], alerts[l])
			}
		}
		if len(st.Alerts) != len(LimitNames) {
			t.Errorf("alerts has %d limits, want every one of %d: %v", len(st.Alerts), len(LimitNames), st.Alerts)
		}
	}
	want(0, nil, 0)
	for i := range 3 {
		h.submit(fmt.Sprint("Q", i), "alice", fmt.Sprintf("192.0.2.%d", i+1))
	}
	h.submit("Q9", "alice", "192.0.2.1") // held already: no second alert
	h.work()
	want(1, map[string]uint64{LimitMessagesPerHour: 1}, 3)
	for i := range 3 {
		h.ev(Event{Kind: Fail, User: "bob", Addr: netip.MustParseAddr(fmt.Sprintf("10.79.1.%d", i+1))})
	}
	h.work()
	want(1, map[string]uint64{LimitMessagesPerHour: 1, LimitGuessing: 1}, 6)
	if err := h.w.Save(); err != nil {
		t.Fatal(err)
	}
	// A restart keeps the hold; the counters start again.
	h.w = New(Options{Settings: s, Now: h.clock.now, Store: h.store, Banner: h.banner})
	if _, err := h.w.Restore(); err != nil {
		t.Fatal(err)
	}
	want(1, nil, 0)
	if _, err := h.w.Release("alice"); err != nil {
		t.Fatal(err)
	}
	want(0, nil, 0)
	if _, err := h.w.Release("alice"); err != nil { // twice: still 0
		t.Fatal(err)
	}
	want(0, nil, 0)
}
