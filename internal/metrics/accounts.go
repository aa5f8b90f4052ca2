package metrics

import "github.com/prometheus/client_golang/prometheus"

// AccountStats is what the account and policy metrics read at each scrape:
// counters the account watch and the policy service keep themselves
// (atomics, or a copy under the watch's short lock), so that neither a
// log line nor a policy answer pays for the metrics.
type AccountStats struct {
	Held    int               // accounts held now
	Alerts  map[string]uint64 // alerts since start, by limit; every limit present
	Banned  uint64            // addresses banned for accounts since start
	Dropped uint64            // alerts or bans dropped: the watch's queue was full
	// Policy is nil without a policy service: its metrics are left out.
	Policy *PolicyStats
}

// PolicyStats are the policy service's counters since start.
type PolicyStats struct {
	Dunno, Hold, Defer, Reject uint64 // answers by action
	Malformed, Oversized       uint64 // requests closed unanswered
	Refused                    uint64 // connections over the service's limit
}

// Policy actions and bad request reasons, the label values.
const (
	ActionDunno  = "dunno"
	ActionHold   = "hold"
	ActionDefer  = "defer"
	ActionReject = "reject"

	BadMalformed = "malformed"
	BadOversized = "oversized"
)

const (
	labelLimit  = "limit"
	labelAction = "action"
)

// WatchAccounts adds the account watch's and the policy service's metrics,
// read from f at each scrape. The account name is never a label: only
// the limit, the action and the reason are.
func (m *Metrics) WatchAccounts(f func() AccountStats) {
	if m == nil {
		return
	}
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	m.reg.MustRegister(&accountCollector{
		f: f,
		held: prometheus.NewDesc(name("accounts_held"),
			"Accounts held now: over a limit, their mail held (or deferred, rejected) until smtpban account release.", nil, nil),
		alerts: prometheus.NewDesc(name("account_alerts_total"),
			"Account alerts since start, by the limit gone over (messages_per_hour, guess_addresses...).", []string{labelLimit}, nil),
		banned: prometheus.NewDesc(name("account_addresses_banned_total"),
			"Client addresses banned since start for using an account over its limit or guessing its password.", nil, nil),
		dropped: prometheus.NewDesc(name("account_jobs_dropped_total"),
			"Account alerts or bans dropped since start because the watch's queue was full (the hold itself stays in force).", nil, nil),
		answers: prometheus.NewDesc(name("policy_answers_total"),
			"Policy service answers since start, by action (dunno, hold, defer, reject).", []string{labelAction}, nil),
		bad: prometheus.NewDesc(name("policy_bad_requests_total"),
			"Policy requests refused since start, by reason (malformed, oversized): answered DUNNO and the connection closed.", []string{labelReason}, nil),
		refused: prometheus.NewDesc(name("policy_connections_refused_total"),
			"Policy service connections closed at once since start: too many open.", nil, nil),
	})
}

type accountCollector struct {
	f                             func() AccountStats
	held, alerts, banned, dropped *prometheus.Desc
	answers, bad, refused         *prometheus.Desc
}

func (c *accountCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.held, c.alerts, c.banned, c.dropped, c.answers, c.bad, c.refused} {
		ch <- d
	}
}

func (c *accountCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f()
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(s.Held))
	for limit, n := range s.Alerts {
		ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(n), limit)
	}
	ch <- prometheus.MustNewConstMetric(c.banned, prometheus.CounterValue, float64(s.Banned))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
	p := s.Policy
	if p == nil {
		return
	}
	for _, a := range []struct {
		action string
		n      uint64
	}{{ActionDunno, p.Dunno}, {ActionHold, p.Hold}, {ActionDefer, p.Defer}, {ActionReject, p.Reject}} {
		ch <- prometheus.MustNewConstMetric(c.answers, prometheus.CounterValue, float64(a.n), a.action)
	}
	ch <- prometheus.MustNewConstMetric(c.bad, prometheus.CounterValue, float64(p.Malformed), BadMalformed)
	ch <- prometheus.MustNewConstMetric(c.bad, prometheus.CounterValue, float64(p.Oversized), BadOversized)
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(p.Refused))
}
