package daemon

import (
	"slices"

	"smtpban/internal/ban"
	"smtpban/internal/config"
	"smtpban/internal/metrics"
)

// metricsView lets the metrics read the daemon at scrape time. It holds mu
// only to copy what it needs; bbolt and the sources' counters are safe
// to read without it.
type metricsView struct{ d *Daemon }

var _ metrics.View = metricsView{}

func (v metricsView) Sources() []metrics.Source {
	v.d.mu.Lock()
	srcs := slices.Clone(v.d.sources)
	v.d.mu.Unlock()
	out := make([]metrics.Source, 0, len(srcs))
	for _, s := range srcs {
		st := s.src.Stats()
		out = append(out, metrics.Source{Name: s.src.Name(), Read: st.Read, Skipped: st.Skipped, Restarts: st.Restarts, Lag: st.Lag})
	}
	return out
}

func (v metricsView) ActiveBans() (map[string]int, error) {
	v.d.mu.Lock()
	out := map[string]int{ban.Manual: 0}
	for _, j := range v.d.cfg.Jails {
		if j.Enabled {
			out[j.Name] = 0
		}
	}
	v.d.mu.Unlock()
	counts, err := v.d.store.ActiveBanCounts(v.d.now())
	if err != nil {
		return nil, err
	}
	for jail, n := range counts {
		out[jail] += n
	}
	return out, nil
}

func (v metricsView) FailureWindows() int {
	v.d.mu.Lock()
	defer v.d.mu.Unlock()
	return v.d.counter.Len()
}

// warnRestartOnly says which changed settings a reload does not apply:
// they hold open sockets and files.
func (d *Daemon) warnRestartOnly(old, cfg *config.Config) {
	for _, c := range []struct {
		name     string
		was, now string
	}{
		{"socket", old.Socket, cfg.Socket},
		{"socket_group", old.SocketGroup, cfg.SocketGroup},
		{"metrics", old.Metrics, cfg.Metrics},
		{"state_dir", old.StateDir, cfg.StateDir},
		{"firewall", old.Firewall.Kind, cfg.Firewall.Kind},
	} {
		if c.was != c.now {
			d.log.Warn("setting changed; it takes effect when smtpband restarts", "setting", c.name, "running", c.was, "config", c.now)
		}
	}
}
