package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// View is what the metrics read from the daemon at scrape time, so that
// no log line pays for them and nothing is counted twice.
type View interface {
	// Sources returns each running source's counters.
	Sources() []Source
	// ActiveBans counts the bans in force per jail; configured jails
	// without bans should be there with 0.
	ActiveBans() (map[string]int, error)
	// FailureWindows counts the (jail, address or prefix) failure windows
	// held in memory.
	FailureWindows() int
}

// Source is one log source's counters. A source restarted by a reload
// starts again from 0, which Prometheus reads as a counter reset.
type Source struct {
	Name    string
	Read    uint64 // lines passed on to the jails
	Skipped uint64 // lines dropped: too long, invalid UTF-8, binary
	// Restarts counts the times the source started reading again after
	// its reader failed (journalctl exited).
	Restarts uint64
	// Lag is how long the oldest line not yet passed on has waited: 0
	// when the source has passed on all there is (see source.Stats).
	Lag time.Duration
}

// viewCollector turns a View into metrics at each scrape.
type viewCollector struct {
	v        View
	read     *prometheus.Desc
	skipped  *prometheus.Desc
	restarts *prometheus.Desc
	lag      *prometheus.Desc
	active   *prometheus.Desc
	windows  *prometheus.Desc
}

func newViewCollector(v View) *viewCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &viewCollector{
		v: v,
		read: prometheus.NewDesc(name("source_lines_read_total"),
			"Lines a log source passed on to the jails, since it started.", []string{labelSource}, nil),
		skipped: prometheus.NewDesc(name("source_lines_skipped_total"),
			"Lines a log source skipped (too long, invalid UTF-8, binary), since it started.", []string{labelSource}, nil),
		restarts: prometheus.NewDesc(name("source_restarts_total"),
			"Times a log source started reading again after its reader failed (journalctl exited), since it started.", []string{labelSource}, nil),
		lag: prometheus.NewDesc(name("source_lag_seconds"),
			"How long the oldest line a log source has not passed on yet has waited (journal: since its timestamp; file: since the source found it unread); 0 when caught up.", []string{labelSource}, nil),
		active: prometheus.NewDesc(name("bans_active"),
			"Bans in force now, per jail.", []string{labelJail}, nil),
		windows: prometheus.NewDesc(name("failure_windows"),
			"Addresses or prefixes with failures being counted now, all jails together.", nil, nil),
	}
}

func (c *viewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.read
	ch <- c.skipped
	ch <- c.restarts
	ch <- c.lag
	ch <- c.active
	ch <- c.windows
}

func (c *viewCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.v.Sources() {
		ch <- prometheus.MustNewConstMetric(c.read, prometheus.CounterValue, float64(s.Read), s.Name)
		ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(s.Skipped), s.Name)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts), s.Name)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, s.Lag.Seconds(), s.Name)
	}
	active, err := c.v.ActiveBans()
	if err != nil {
		// The scrape reports the error; the other metrics still go out.
		ch <- prometheus.NewInvalidMetric(c.active, err)
	} else {
		for jail, n := range active {
			ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(n), jail)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.windows, prometheus.GaugeValue, float64(c.v.FailureWindows()))
}
