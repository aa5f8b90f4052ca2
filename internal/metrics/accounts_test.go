package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWatchAccounts: the account and policy metrics follow the figures
// read at each scrape, the policy's only with a policy service, and pass
// the linter.
func TestWatchAccounts(t *testing.T) {
	m := New(Options{Version: "dev"})
	s := AccountStats{Alerts: map[string]uint64{"messages_per_hour": 0, "guess_addresses": 0}}
	m.WatchAccounts(func() AccountStats { return s })
	names := []string{"smtpban_accounts_held", "smtpban_account_alerts_total", "smtpban_account_addresses_banned_total",
		"smtpban_account_jobs_dropped_total", "smtpban_policy_answers_total", "smtpban_policy_bad_requests_total",
		"smtpban_policy_connections_refused_total"}
	const head = `# HELP smtpban_account_addresses_banned_total Client addresses banned since start for using an account over its limit or guessing its password.
# TYPE smtpban_account_addresses_banned_total counter
# HELP smtpban_account_alerts_total Account alerts since start, by the limit gone over (messages_per_hour, guess_addresses...).
# TYPE smtpban_account_alerts_total counter
# HELP smtpban_account_jobs_dropped_total Account alerts or bans dropped since start because the watch's queue was full (the hold itself stays in force).
# TYPE smtpban_account_jobs_dropped_total counter
# HELP smtpban_accounts_held Accounts held now: over a limit, their mail held (or deferred, rejected) until smtpban account release.
# TYPE smtpban_accounts_held gauge
`
	const policyHead = `# HELP smtpban_policy_answers_total Policy service answers since start, by action (dunno, hold, defer, reject).
# TYPE smtpban_policy_answers_total counter
# HELP smtpban_policy_bad_requests_total Policy requests refused since start, by reason (malformed, oversized): answered DUNNO and the connection closed.
# TYPE smtpban_policy_bad_requests_total counter
# HELP smtpban_policy_connections_refused_total Policy service connections closed at once since start: too many open.
# TYPE smtpban_policy_connections_refused_total counter
`
	for _, tt := range []struct {
		name string
		s    AccountStats
		want string
	}{
		{"quiet, no policy service", s, head + `smtpban_account_addresses_banned_total 0
smtpban_account_alerts_total{limit="guess_addresses"} 0
smtpban_account_alerts_total{limit="messages_per_hour"} 0
smtpban_account_jobs_dropped_total 0
smtpban_accounts_held 0
`},
		{"a hold, with a policy service", AccountStats{
			Held: 1, Alerts: map[string]uint64{"messages_per_hour": 1, "guess_addresses": 2}, Banned: 7, Dropped: 3,
			Policy: &PolicyStats{Dunno: 40, Hold: 5, Defer: 1, Reject: 2, Malformed: 3, Oversized: 4, Refused: 6},
		}, head + `smtpban_account_addresses_banned_total 7
smtpban_account_alerts_total{limit="guess_addresses"} 2
smtpban_account_alerts_total{limit="messages_per_hour"} 1
smtpban_account_jobs_dropped_total 3
smtpban_accounts_held 1
` + policyHead + `smtpban_policy_answers_total{action="defer"} 1
smtpban_policy_answers_total{action="dunno"} 40
smtpban_policy_answers_total{action="hold"} 5
smtpban_policy_answers_total{action="reject"} 2
smtpban_policy_bad_requests_total{reason="malformed"} 3
smtpban_policy_bad_requests_total{reason="oversized"} 4
smtpban_policy_connections_refused_total 6
`},
	} {
		s = tt.s
		if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(tt.want), names...); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if problems, err := testutil.GatherAndLint(m.Gatherer()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	var none *Metrics
	none.WatchAccounts(func() AccountStats { t.Fatal("read without metrics"); return AccountStats{} })
}
