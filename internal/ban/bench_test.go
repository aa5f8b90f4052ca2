package ban

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"smtpban/firewall"
	"smtpban/jails"
	"smtpban/state"
)

// BenchmarkDecideBurst makes a 5,000-address burst's bans in one batch
// over a real bbolt store and the dry-run firewall (no kernel): the
// manager's share of a burst's time. The baseline in the same run is the
// state transaction alone, PutBans of the same 5,000 bans.
func BenchmarkDecideBurst(b *testing.B) {
	const n = 5000
	j := &jails.Jail{Name: "sasl", BanTime: time.Hour, MaxRetry: 3, Key: jails.Key{V4Bits: 32, V6Bits: 64}}
	decisions := func(round int) []jails.Decision {
		ds := make([]jails.Decision, n)
		for i := range ds {
			a := netip.AddrFrom4([4]byte{198, byte(18 + round%2), byte(i >> 8), byte(i)})
			ds[i] = jails.Decision{Jail: j, Key: j.Key.Prefix(a), Addr: a, Time: time.Now(), Failures: 3,
				Lines: []string{"Dec  1 10:00:00 mx1 postfix/smtpd[1]: warning: unknown[" + a.String() + "]: SASL LOGIN authentication failed: x"}}
		}
		return ds
	}
	open := func(b *testing.B) *state.Store {
		st, err := state.Open(filepath.Join(b.TempDir(), "smtpban.db"), state.Options{Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	b.Run("manager", func(b *testing.B) {
		round := 0
		for b.Loop() {
			b.StopTimer()
			st := open(b)
			m := New(Options{Store: st, Firewall: firewall.NewDryRun(slog.New(slog.DiscardHandler), time.Now, firewall.Limits{}), Logger: slog.New(slog.DiscardHandler)})
			m.SetPolicy(PolicyFor([]*jails.Jail{j}, nil, nil))
			ds := decisions(round)
			round++
			b.StartTimer()
			saved, err := m.Decide(context.Background(), ds)
			if err != nil || len(saved) != n {
				b.Fatalf("%d bans, %v", len(saved), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/ban")
	})
	b.Run("state-only", func(b *testing.B) {
		round := 0
		for b.Loop() {
			b.StopTimer()
			st := open(b)
			ds := decisions(round)
			round++
			bans := make([]state.Ban, n)
			for i, d := range ds {
				bans[i] = state.Ban{Prefix: d.Key, Jail: j.Name, Since: d.Time, Until: d.Time.Add(time.Hour), Failures: 3, Lines: d.Lines, Origin: "mx1"}
			}
			b.StartTimer()
			if _, err := st.PutBans(bans); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/ban")
	})
}
