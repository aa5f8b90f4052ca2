// Package metrics is smtpband's Prometheus instrumentation: the events the
// daemon reports (matches, bans, resyncs, checkpoints) and the values read
// from it at scrape time (sources, active bans, failure windows). Every
// name starts with smtpban_ and uses base units. Addresses and user names
// are never label values: labels are jail, source, origin host, and small
// fixed sets (why, op, result).
package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "smtpban"

// Label names.
const (
	labelJail    = "jail"
	labelOrigin  = "origin"
	labelSource  = "source"
	labelWhy     = "why"
	labelOp      = "op"
	labelResult  = "result"
	labelReason  = "reason"
	labelVersion = "version"
	labelGo      = "goversion"
)

// Firewall operations, the values of smtpban_firewall_errors_total's op.
const (
	OpAdd    = "add"
	OpRemove = "remove"
	OpResync = "resync"
)

// Why a decided ban was not made, the values of smtpban_bans_skipped_total's
// reason: a small fixed set, never the address.
const (
	SkipNeverBan      = "never_ban"      // loopback, multicast... (neverban)
	SkipIgnored       = "ignored"        // ignore lists, the host's own addresses
	SkipAllowed       = "allowed"        // smtpban allow
	SkipPrefixOverlap = "prefix_overlap" // a prefix ban would cover an ignored network
	SkipCovered       = "covered"        // inside an active wider ban
	SkipOver          = "over"           // would have ended already (old lines read late)
	SkipRefused       = "refused"        // the firewall refuses it (wider than min_prefix)
	SkipDropped       = "dropped"        // state unwritable too long: retry queue full
)

// SkipReasons lists every reason, so that each series exists from the start.
var SkipReasons = []string{SkipNeverBan, SkipIgnored, SkipAllowed, SkipPrefixOverlap, SkipCovered, SkipOver, SkipRefused, SkipDropped}

// banApplyBuckets span a local netlink batch (~100µs) to a stuck kernel or
// a slow disk (1s).
var banApplyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// checkpointBuckets: a checkpoint is one bbolt transaction with an fsync.
var checkpointBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Options configure Metrics.
type Options struct {
	Version string // the daemon's version, for smtpban_build_info
	// View is read at each scrape; nil leaves those metrics out.
	View View
}

// Metrics holds smtpband's metrics in a registry of its own. A nil
// *Metrics is valid and records nothing: the daemon calls it whether or
// not metrics are served.
type Metrics struct {
	reg *prometheus.Registry

	matches    *prometheus.CounterVec
	bans       *prometheus.CounterVec
	unbans     *prometheus.CounterVec
	expired    *prometheus.CounterVec
	banApply   prometheus.Histogram
	resyncs    *prometheus.CounterVec
	fwErrors   *prometheus.CounterVec
	checkpoint prometheus.Histogram
	cpErrors   prometheus.Counter
	banWrites  prometheus.Counter
	pending    prometheus.Gauge
	reloads    *prometheus.CounterVec
	buildInfo  *prometheus.GaugeVec
	skipped    *prometheus.CounterVec
}

// New returns Metrics registered in a fresh registry, with the Go runtime
// and process collectors (memory, file descriptors) alongside.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "matches_total",
			Help: "Log lines a jail's failregex matched (failures counted), per jail.",
		}, []string{labelJail}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bans_total",
			Help: "Bans applied, per jail and origin host (a ban extended counts again).",
		}, []string{labelJail, labelOrigin}),
		unbans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "unbans_total",
			Help: "Bans lifted before their end (smtpban unban or allow), per jail and origin host.",
		}, []string{labelJail, labelOrigin}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bans_expired_total",
			Help: "Bans that ran out and were forgotten, per jail and origin host.",
		}, []string{labelJail, labelOrigin}),
		banApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ban_apply_duration_seconds",
			Help:    "Time from a ban decision to the firewall holding it (state write included).",
			Buckets: banApplyBuckets,
		}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "firewall_resyncs_total",
			Help: "Reconciliations of the firewall with state, by why they ran (start, periodic, changed).",
		}, []string{labelWhy}),
		fwErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "firewall_errors_total",
			Help: "Firewall operations that failed, by operation (add, remove, resync).",
		}, []string{labelOp}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "state_checkpoint_duration_seconds",
			Help:    "Time to save failure windows and read positions to state.",
			Buckets: checkpointBuckets,
		}),
		cpErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "state_checkpoint_errors_total",
			Help: "Checkpoints that failed to save (retried at the next one).",
		}),
		banWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "state_ban_write_errors_total",
			Help: "Bans that could not be saved to state (disk full, read-only); each is kept and retried.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "bans_pending",
			Help: "Bans decided but not yet saved to state, waiting for a retry.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_reloads_total",
			Help: "Config reloads, by result (ok, refused).",
		}, []string{labelResult}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; the labels say which smtpband runs.",
		}, []string{labelVersion, labelGo}),
	}
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "bans_skipped_total",
		Help: "Ban decisions not made, by reason (never_ban, ignored, allowed, prefix_overlap, covered, over, refused, dropped).",
	}, []string{labelReason})
	for _, r := range SkipReasons {
		m.skipped.WithLabelValues(r)
	}
	m.reg.MustRegister(m.skipped)
	m.buildInfo.WithLabelValues(opts.Version, runtime.Version()).Set(1)
	for _, r := range []string{"ok", "refused"} {
		m.reloads.WithLabelValues(r)
	}
	for _, op := range []string{OpAdd, OpRemove, OpResync} {
		m.fwErrors.WithLabelValues(op)
	}
	m.reg.MustRegister(m.matches, m.bans, m.unbans, m.expired, m.banApply, m.resyncs,
		m.fwErrors, m.checkpoint, m.cpErrors, m.banWrites, m.pending, m.reloads, m.buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.View != nil {
		m.reg.MustRegister(newViewCollector(opts.View))
	}
	return m
}

// Gatherer is the registry, for tests and for serving elsewhere.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Registerer is the registry, for parts that keep their own metrics (the
// shared ban list); nil when there are no metrics.
func (m *Metrics) Registerer() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// InitJail makes jail's series exist at 0 before its first event, so that
// rate() and absence alerts work from the start.
func (m *Metrics) InitJail(jail, origin string) {
	if m == nil {
		return
	}
	m.matches.WithLabelValues(jail)
	m.bans.WithLabelValues(jail, origin)
	m.unbans.WithLabelValues(jail, origin)
}

// Match counts a failregex match in jail.
func (m *Metrics) Match(jail string) {
	if m == nil {
		return
	}
	m.matches.WithLabelValues(jail).Inc()
}

// Ban counts a ban applied, and how long it took from the decision to the
// firewall holding it.
func (m *Metrics) Ban(jail, origin string, took time.Duration) {
	if m == nil {
		return
	}
	m.bans.WithLabelValues(jail, origin).Inc()
	m.banApply.Observe(took.Seconds())
}

// Unban counts a ban lifted by hand.
func (m *Metrics) Unban(jail, origin string) {
	if m == nil {
		return
	}
	m.unbans.WithLabelValues(jail, origin).Inc()
}

// Expired counts a ban that ran out.
func (m *Metrics) Expired(jail, origin string) {
	if m == nil {
		return
	}
	m.expired.WithLabelValues(jail, origin).Inc()
}

// Resync counts a reconciliation of the firewall with state.
func (m *Metrics) Resync(why string) {
	if m == nil {
		return
	}
	m.resyncs.WithLabelValues(why).Inc()
}

// FirewallError counts a failed firewall operation (OpAdd, OpRemove, OpResync).
func (m *Metrics) FirewallError(op string) {
	if m == nil {
		return
	}
	m.fwErrors.WithLabelValues(op).Inc()
}

// Checkpoint records a checkpoint's duration, or counts its failure.
func (m *Metrics) Checkpoint(took time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.cpErrors.Inc()
		return
	}
	m.checkpoint.Observe(took.Seconds())
}

// BanWriteFailed counts a ban that could not be saved; pending is how many
// now wait for a retry.
func (m *Metrics) BanWriteFailed(pending int) {
	if m == nil {
		return
	}
	m.banWrites.Inc()
	m.pending.Set(float64(pending))
}

// BansPending sets how many bans wait for a retry.
func (m *Metrics) BansPending(n int) {
	if m == nil {
		return
	}
	m.pending.Set(float64(n))
}

// BanSkipped counts a ban decision that was not made, by reason (Skip*).
func (m *Metrics) BanSkipped(reason string) {
	if m == nil {
		return
	}
	m.skipped.WithLabelValues(reason).Inc()
}

// Reload counts a config reload, applied or refused.
func (m *Metrics) Reload(err error) {
	if m == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "refused"
	}
	m.reloads.WithLabelValues(r).Inc()
}
