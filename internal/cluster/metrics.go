package cluster

import "github.com/prometheus/client_golang/prometheus"

// Registerer is where the Node's metrics go (the daemon's registry).
type Registerer = prometheus.Registerer

type nodeMetrics struct {
	degraded  prometheus.Gauge
	revision  prometheus.Gauge
	queued    prometheus.Gauge
	published *prometheus.CounterVec
	received  prometheus.Counter
	lifted    prometheus.Counter
	refused   prometheus.Counter
	invalid   *prometheus.CounterVec
	dropped   prometheus.Counter
	relists   *prometheus.CounterVec
}

func newNodeMetrics(reg Registerer) *nodeMetrics {
	m := &nodeMetrics{
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smtpban_cluster_degraded",
			Help: "1 while etcd cannot be reached: bans are made here and queued to publish."}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smtpban_cluster_revision",
			Help: "The last etcd revision of the shared ban list seen."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smtpban_cluster_queued",
			Help: "Changes waiting to be published to the shared ban list."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smtpban_cluster_published_total",
			Help: "Changes published to the shared ban list, by op (put, delete, skipped: a later until was there)."}, []string{"op"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "smtpban_cluster_received_total",
			Help: "Other hosts' bans applied here."}),
		lifted: prometheus.NewCounter(prometheus.CounterOpts{Name: "smtpban_cluster_lifted_total",
			Help: "Bans lifted here because their key left the shared ban list."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "smtpban_cluster_refused_total",
			Help: "Other hosts' bans refused here by protection (never-ban classes, own and peer addresses, ignore and allow lists, min_prefix)."}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smtpban_cluster_invalid_total",
			Help: "Keys under the prefix skipped as invalid, by reason."}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "smtpban_cluster_queue_dropped_total",
			Help: "Changes dropped from a full publish queue (oldest first)."}),
		relists: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smtpban_cluster_relists_total",
			Help: "Full lists of the shared ban list, by why (start, compacted)."}, []string{"why"}),
	}
	for _, r := range []string{invalidKey, invalidJSON, invalidField, invalidLength} {
		m.invalid.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.degraded, m.revision, m.queued, m.published, m.received, m.lifted,
			m.refused, m.invalid, m.dropped, m.relists)
	}
	return m
}
