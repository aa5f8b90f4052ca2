package metrics

import "github.com/prometheus/client_golang/prometheus"

// StateHealth is what the state metrics read at each scrape.
type StateHealth struct {
	Writable  bool // state takes writes
	Recovered int  // salvages of a damaged database not yet acknowledged
}

// WatchState adds smtpban_state_writable (0 while state refuses writes:
// bans reach the kernel only) and smtpban_state_recovered (salvages of a
// damaged database not acknowledged yet), read from f at each scrape.
func (m *Metrics) WatchState(f func() StateHealth) {
	if m == nil {
		return
	}
	m.reg.MustRegister(stateCollector{
		f: f,
		writable: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "state_writable"),
			"1 while state takes writes; 0 while it refuses them (disk full, read-only): bans then reach the kernel only and wait to be saved.", nil, nil),
		recovered: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "state_recovered"),
			"Salvages of a damaged state database not yet acknowledged (smtpban status -ack-recovery).", nil, nil),
	})
}

type stateCollector struct {
	f                   func() StateHealth
	writable, recovered *prometheus.Desc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.writable
	ch <- c.recovered
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.f()
	w := 0.0
	if h.Writable {
		w = 1
	}
	ch <- prometheus.MustNewConstMetric(c.writable, prometheus.GaugeValue, w)
	ch <- prometheus.MustNewConstMetric(c.recovered, prometheus.GaugeValue, float64(h.Recovered))
}
