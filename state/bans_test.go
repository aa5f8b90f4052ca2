package state

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPutBanReplace(t *testing.T) {
	tests := []struct {
		name      string
		first     Ban
		second    Ban
		wantUntil time.Time // zero: permanent
		wantCount int
		wantJail  string
	}{
		{
			name:      "active ban extended keeps count",
			first:     ban("203.0.113.7", 0, time.Hour),
			second:    withJail(ban("203.0.113.7", time.Minute, 2*time.Hour), "dovecot"),
			wantUntil: t0.Add(2 * time.Hour),
			wantCount: 1,
			wantJail:  "dovecot",
		},
		{
			name:      "active ban keeps its later until",
			first:     ban("203.0.113.7", 0, 2*time.Hour),
			second:    ban("203.0.113.7", time.Minute, time.Hour),
			wantUntil: t0.Add(2 * time.Hour),
			wantCount: 1,
			wantJail:  "postfix-sasl",
		},
		{
			name:      "same ban delivered twice does not escalate",
			first:     ban("2001:db8::/64", 0, time.Hour),
			second:    ban("2001:db8::/64", 0, time.Hour),
			wantUntil: t0.Add(time.Hour),
			wantCount: 1,
			wantJail:  "postfix-sasl",
		},
		{
			name:      "expired but unswept ban is a new ban",
			first:     ban("203.0.113.7", 0, time.Hour),
			second:    ban("203.0.113.7", 2*time.Hour, 4*time.Hour),
			wantUntil: t0.Add(4 * time.Hour),
			wantCount: 2,
			wantJail:  "postfix-sasl",
		},
		{
			name:      "ban ending exactly at the new since is expired",
			first:     ban("203.0.113.7", 0, time.Hour),
			second:    ban("203.0.113.7", time.Hour, 3*time.Hour),
			wantUntil: t0.Add(3 * time.Hour),
			wantCount: 2,
			wantJail:  "postfix-sasl",
		},
		{
			name:      "permanent ban stays permanent",
			first:     ban("203.0.113.7", 0, 0),
			second:    ban("203.0.113.7", time.Minute, time.Hour),
			wantCount: 1,
			wantJail:  "postfix-sasl",
		},
		{
			name:      "finite ban made permanent",
			first:     ban("203.0.113.7", 0, time.Hour),
			second:    ban("203.0.113.7", time.Minute, 0),
			wantCount: 1,
			wantJail:  "postfix-sasl",
		},
		{
			name:      "unmasked prefix replaces the masked one",
			first:     ban("198.51.100.0/24", 0, time.Hour),
			second:    ban("198.51.100.77/24", time.Minute, 2*time.Hour),
			wantUntil: t0.Add(2 * time.Hour),
			wantCount: 1,
			wantJail:  "postfix-sasl",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpen(t)
			if _, err := s.PutBan(tt.first); err != nil {
				t.Fatal(err)
			}
			got, err := s.PutBan(tt.second)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Until.Equal(tt.wantUntil) || got.Count != tt.wantCount || got.Jail != tt.wantJail {
				t.Errorf("PutBan = until %v count %d jail %q, want %v %d %q",
					got.Until, got.Count, got.Jail, tt.wantUntil, tt.wantCount, tt.wantJail)
			}
			if got.Prefix != tt.second.Prefix.Masked() {
				t.Errorf("prefix %v, want %v", got.Prefix, tt.second.Prefix.Masked())
			}
			all, err := s.Bans()
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 {
				t.Fatalf("Bans() has %d bans, want 1: %v", len(all), all)
			}
			if d := diff(got, all[0]); d != "" {
				t.Errorf("stored ban differs from returned (-returned +stored):\n%s", d)
			}
			n, _, err := s.BanHistory(tt.second.Prefix)
			if err != nil || n != tt.wantCount {
				t.Errorf("BanHistory = %d, %v; want %d", n, err, tt.wantCount)
			}
			// The expiry index must follow the replacement: a sweep just
			// before the kept Until removes nothing, one at it removes it.
			if !tt.wantUntil.IsZero() {
				if gone, _ := s.Sweep(tt.wantUntil.Add(-time.Nanosecond)); len(gone) != 0 {
					t.Errorf("sweep before until removed %v", gone)
				}
				if gone, _ := s.Sweep(tt.wantUntil); len(gone) != 1 {
					t.Errorf("sweep at until removed %d bans, want 1", len(gone))
				}
			} else if gone, _ := s.Sweep(t0.Add(100 * 365 * 24 * time.Hour)); len(gone) != 0 {
				t.Errorf("permanent ban swept: %v", gone)
			}
		})
	}
}

func withJail(b Ban, jail string) Ban { b.Jail = jail; return b }

func TestPutBanRejects(t *testing.T) {
	tests := []struct {
		name string
		ban  Ban
	}{
		{"zero prefix", Ban{Since: t0, Until: t0.Add(time.Hour)}},
		{"zero since", Ban{Prefix: pfx("203.0.113.7"), Until: t0.Add(time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpen(t)
			if _, err := s.PutBan(tt.ban); err == nil {
				t.Fatal("PutBan succeeded, want an error")
			}
			if _, err := s.PutBans([]Ban{ban("192.0.2.1", 0, time.Hour), tt.ban}); err == nil {
				t.Fatal("PutBans succeeded, want an error")
			}
			// PutBans is one transaction: the good ban went with the bad.
			if all, _ := s.Bans(); len(all) != 0 {
				t.Errorf("failed PutBans left %v", all)
			}
		})
	}
}

func TestBanRoundTripAndDurability(t *testing.T) {
	s := mustOpen(t)
	want := []Ban{
		ban("203.0.113.7", 0, time.Hour),
		ban("2001:db8::1", time.Second, 0),
		ban("2001:db8:1::/64", 2*time.Second, time.Hour),
	}
	want[0].Lines = append(want[0].Lines, "second line \x00 with a NUL")
	for i, b := range want {
		got, err := s.PutBan(b)
		if err != nil {
			t.Fatal(err)
		}
		want[i].Count = 1
		if d := diff(want[i], got); d != "" {
			t.Errorf("PutBan returned (-want +got):\n%s", d)
		}
	}
	s = reopen(t, s)
	got, err := s.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Bans after reopen (-want +got):\n%s", d)
	}
	b, ok, err := s.Ban(pfx("2001:db8:1::/64"))
	if err != nil || !ok || b.Prefix != pfx("2001:db8:1::/64") {
		t.Errorf("Ban(2001:db8:1::/64) = %v, %v, %v", b, ok, err)
	}
	if _, ok, err := s.Ban(pfx("2001:db8:1::/48")); ok || err != nil {
		t.Errorf("Ban of a wider prefix found %v, %v: prefixes are exact keys", ok, err)
	}
}

func TestSweep(t *testing.T) {
	s := mustOpen(t)
	bans := []Ban{
		ban("192.0.2.1", 0, 3*time.Minute),
		ban("192.0.2.2", 0, time.Minute),
		ban("192.0.2.3", 0, 2*time.Minute),
		ban("192.0.2.4", 0, time.Minute), // same instant as .2: keys stay distinct
		ban("192.0.2.5", 0, 0),           // permanent
		ban("192.0.2.6", 0, -time.Hour),  // already expired when stored
	}
	if _, err := s.PutBans(bans); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		now  time.Time
		want []string // in Until order
	}{
		{"past the stale ban", t0, []string{"192.0.2.6/32"}},
		{"nothing due", t0.Add(time.Minute - 1), nil},
		{"two at the same instant", t0.Add(time.Minute), []string{"192.0.2.2/32", "192.0.2.4/32"}},
		{"the rest but the permanent", t0.Add(24 * time.Hour), []string{"192.0.2.3/32", "192.0.2.1/32"}},
		{"nothing left", t0.Add(24 * time.Hour), nil},
	}
	for _, st := range steps {
		gone, err := s.Sweep(st.now)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []string
		for _, b := range gone {
			got = append(got, b.Prefix.String())
			if _, ok, _ := s.Ban(b.Prefix); ok {
				t.Errorf("%s: swept %v is still stored", st.name, b.Prefix)
			}
		}
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: swept %v, want %v", st.name, got, st.want)
		}
	}
	left, _ := s.Bans()
	if len(left) != 1 || left[0].Prefix != pfx("192.0.2.5") {
		t.Errorf("left %v, want only the permanent ban", left)
	}
	// History outlives the bans.
	if n, _, _ := s.BanHistory(pfx("192.0.2.1")); n != 1 {
		t.Errorf("history of a swept ban = %d, want 1", n)
	}
}

func TestEscalationHistory(t *testing.T) {
	s := mustOpen(t)
	p := pfx("203.0.113.9")
	for i := range 3 {
		since := time.Duration(i) * 24 * time.Hour
		b, err := s.PutBan(ban("203.0.113.9", since, since+time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if b.Count != i+1 {
			t.Errorf("ban %d: Count = %d, want %d", i, b.Count, i+1)
		}
		if _, err := s.Sweep(t0.Add(since + time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Lifting a ban by hand does not forgive the offender.
	if _, err := s.PutBan(ban("203.0.113.9", 72*time.Hour, 73*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.DeleteBan(p); !ok || err != nil {
		t.Fatalf("DeleteBan = %v, %v", ok, err)
	}
	if _, ok, err := s.DeleteBan(p); ok || err != nil {
		t.Errorf("second DeleteBan = %v, %v; want false, nil", ok, err)
	}
	s = reopen(t, s)
	n, last, err := s.BanHistory(p)
	if err != nil || n != 4 || !last.Equal(t0.Add(72*time.Hour)) {
		t.Errorf("BanHistory = %d, %v, %v; want 4, %v", n, last, err, t0.Add(72*time.Hour))
	}
	if n, last, err := s.BanHistory(pfx("198.51.100.1")); n != 0 || !last.IsZero() || err != nil {
		t.Errorf("BanHistory of a stranger = %d, %v, %v", n, last, err)
	}
}

func TestPutBansBatch(t *testing.T) {
	s := mustOpen(t)
	got, err := s.PutBans([]Ban{
		ban("192.0.2.1", 0, time.Hour),
		ban("192.0.2.2", 0, time.Hour),
		ban("192.0.2.1", time.Minute, 2*time.Hour), // same prefix later in the batch
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Count != 1 || !got[2].Until.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("PutBans returned %+v", got)
	}
	all, _ := s.Bans()
	if len(all) != 2 {
		t.Errorf("stored %d bans, want 2", len(all))
	}
}

// TestConcurrent runs every operation at once; run with -race.
func TestConcurrent(t *testing.T) {
	s := mustOpen(t)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p := netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i)})
				b := ban(p.String(), time.Duration(i)*time.Second, time.Hour+time.Duration(i%5)*time.Minute)
				if _, err := s.PutBan(b); err != nil {
					t.Error(err)
					return
				}
				// Another one already expired, for the sweeps to find.
				if _, err := s.PutBans([]Ban{ban(fmt.Sprintf("10.%d.1.%d", w, i), 0, time.Second)}); err != nil {
					t.Error(err)
				}
				if _, ok, err := s.Ban(b.Prefix); err != nil || !ok {
					t.Errorf("Ban(%v) = %v, %v right after PutBan", b.Prefix, ok, err)
				}
				if _, err := s.Bans(); err != nil {
					t.Error(err)
				}
				if _, err := s.Sweep(t0.Add(time.Duration(i) * time.Second)); err != nil {
					t.Error(err)
				}
				err := s.Checkpoint(Checkpoint{
					Positions: map[string][]byte{fmt.Sprint("src", w): {byte(i)}},
					Windows:   []Window{{Jail: "j", Key: b.Prefix, Times: []time.Time{b.Since}}},
				})
				if err != nil {
					t.Error(err)
				}
				if ws, err := s.Windows(); err != nil || len(ws) != 1 {
					t.Errorf("Windows = %d, %v; want 1 (a checkpoint replaces them all)", len(ws), err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := s.Sweep(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.Bans(); len(all) != workers*each {
		t.Errorf("%d bans left, want %d: every expired one swept, no other", len(all), workers*each)
	}
	pos, err := s.Positions()
	if err != nil || len(pos) != workers {
		t.Fatalf("Positions = %v, %v", pos, err)
	}
	for name, p := range pos {
		if len(p) != 1 || p[0] != each-1 {
			t.Errorf("position %s = %v, want the last one written", name, p)
		}
	}
	for w := range workers {
		for i := range each {
			if n, _, _ := s.BanHistory(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i)}), 32)); n != 1 {
				t.Errorf("history of 10.%d.0.%d = %d, want 1", w, i, n)
			}
		}
	}
}

// TestDecodeBanJailUntil checks the key-scanning reader against
// json.Unmarshal on records built to mislead it: log lines and origins
// that spell out the keys, jails with escapes, omitted and odd times.
func TestDecodeBanJailUntil(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tricky := []string{
		``, `"jail":"evil"`, `"until":"2099-01-01T00:00:00Z"`, `\"jail\":\"x`, `a\`,
		`"until":`, `}`, `{"jail":"inner"}`, "\u00e9\u2028<>&", `\\"jail\\":\\"y`,
	}
	jails := []string{"postfix-sasl", "", `we"ird`, `back\slash`, "d\u00e9j\u00e0", "x<y>&z"}
	for i := range 2000 {
		b := banRecord{
			Prefix: benchAddr(i), Jail: jails[r.IntN(len(jails))], Since: t0,
			Failures: r.IntN(10), Origin: tricky[r.IntN(len(tricky))], Count: r.IntN(3),
		}
		switch r.IntN(3) {
		case 0: // zero: omitted
		case 1:
			b.Until = t0.Add(time.Duration(r.Int64N(1e15)))
		case 2:
			b.Until = t0.Add(time.Duration(r.Int64N(1e6)) * time.Second).In(time.FixedZone("X", 3600))
		}
		for range r.IntN(3) {
			b.Lines = append(b.Lines, tricky[r.IntN(len(tricky))]+tricky[r.IntN(len(tricky))])
		}
		v, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var want banRecord
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		jail, until, err := decodeBanJailUntil(v)
		if err != nil || jail != want.Jail || !until.Equal(want.Until) {
			t.Fatalf("%s: got %q %v %v, want %q %v", v, jail, until, err, want.Jail, want.Until)
		}
	}
	if _, _, err := decodeBanJailUntil([]byte(`{"jail":`)); err == nil {
		t.Fatal("a truncated record decoded")
	}
}

// TestActiveBanCounts counts per jail only the bans still in force.
func TestActiveBanCounts(t *testing.T) {
	s := mustOpen(t)
	for i, b := range []struct {
		jail  string
		until time.Duration
	}{{"a", time.Hour}, {"a", time.Hour}, {"b", time.Minute}, {"b", -time.Minute}, {"c", -time.Hour}} {
		if _, err := s.PutBan(Ban{Prefix: benchAddr(i), Jail: b.jail, Since: t0.Add(-2 * time.Hour), Until: t0.Add(b.until)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ActiveBanCounts(t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"a": 2, "b": 1}; !maps.Equal(got, want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
}
