package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeView is a View with fixed answers.
type fakeView struct {
	sources []Source
	active  map[string]int
	err     error
	windows int
}

func (v *fakeView) Sources() []Source                   { return v.sources }
func (v *fakeView) ActiveBans() (map[string]int, error) { return v.active, v.err }
func (v *fakeView) FailureWindows() int                 { return v.windows }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestEvents checks each event method against the exposition it must
// produce.
func TestEvents(t *testing.T) {
	tests := []struct {
		name   string
		events func(m *Metrics)
		metric string
		want   string
	}{
		{
			name: "matches per jail",
			events: func(m *Metrics) {
				m.InitJail("dovecot", "mx1")
				m.Match("postfix-sasl")
				m.Match("postfix-sasl")
			},
			metric: "smtpban_matches_total",
			want: `
# HELP smtpban_matches_total Log lines a jail's failregex matched (failures counted), per jail.
# TYPE smtpban_matches_total counter
smtpban_matches_total{jail="dovecot"} 0
smtpban_matches_total{jail="postfix-sasl"} 2
`,
		},
		{
			name: "bans per jail and origin",
			events: func(m *Metrics) {
				m.Ban("postfix-sasl", "mx1", time.Millisecond)
				m.Ban("postfix-sasl", "mx2", time.Millisecond)
				m.Ban("postfix-sasl", "mx1", time.Millisecond)
			},
			metric: "smtpban_bans_total",
			want: `
# HELP smtpban_bans_total Bans applied, per jail and origin host (a ban extended counts again).
# TYPE smtpban_bans_total counter
smtpban_bans_total{jail="postfix-sasl",origin="mx1"} 2
smtpban_bans_total{jail="postfix-sasl",origin="mx2"} 1
`,
		},
		{
			name:   "unbans",
			events: func(m *Metrics) { m.Unban("manual", "mx1") },
			metric: "smtpban_unbans_total",
			want: `
# HELP smtpban_unbans_total Bans lifted before their end (smtpban unban or allow), per jail and origin host.
# TYPE smtpban_unbans_total counter
smtpban_unbans_total{jail="manual",origin="mx1"} 1
`,
		},
		{
			name:   "expired",
			events: func(m *Metrics) { m.Expired("dovecot", "mx1"); m.Expired("dovecot", "mx1") },
			metric: "smtpban_bans_expired_total",
			want: `
# HELP smtpban_bans_expired_total Bans that ran out and were forgotten, per jail and origin host.
# TYPE smtpban_bans_expired_total counter
smtpban_bans_expired_total{jail="dovecot",origin="mx1"} 2
`,
		},
		{
			name: "ban apply latency in seconds",
			events: func(m *Metrics) {
				m.Ban("a", "mx1", 50*time.Microsecond)
				m.Ban("a", "mx1", 3*time.Millisecond)
				m.Ban("a", "mx1", 2*time.Second)
			},
			metric: "smtpban_ban_apply_duration_seconds",
			want: `
# HELP smtpban_ban_apply_duration_seconds Time from a ban decision to the firewall holding it (state write included).
# TYPE smtpban_ban_apply_duration_seconds histogram
smtpban_ban_apply_duration_seconds_bucket{le="0.0001"} 1
smtpban_ban_apply_duration_seconds_bucket{le="0.00025"} 1
smtpban_ban_apply_duration_seconds_bucket{le="0.0005"} 1
smtpban_ban_apply_duration_seconds_bucket{le="0.001"} 1
smtpban_ban_apply_duration_seconds_bucket{le="0.0025"} 1
smtpban_ban_apply_duration_seconds_bucket{le="0.005"} 2
smtpban_ban_apply_duration_seconds_bucket{le="0.01"} 2
smtpban_ban_apply_duration_seconds_bucket{le="0.025"} 2
smtpban_ban_apply_duration_seconds_bucket{le="0.05"} 2
smtpban_ban_apply_duration_seconds_bucket{le="0.1"} 2
smtpban_ban_apply_duration_seconds_bucket{le="0.25"} 2
smtpban_ban_apply_duration_seconds_bucket{le="0.5"} 2
smtpban_ban_apply_duration_seconds_bucket{le="1"} 2
smtpban_ban_apply_duration_seconds_bucket{le="+Inf"} 3
smtpban_ban_apply_duration_seconds_sum 2.00305
smtpban_ban_apply_duration_seconds_count 3
`,
		},
		{
			name: "resyncs by why",
			events: func(m *Metrics) {
				m.Resync("start")
				m.Resync("periodic")
				m.Resync("periodic")
			},
			metric: "smtpban_firewall_resyncs_total",
			want: `
# HELP smtpban_firewall_resyncs_total Reconciliations of the firewall with state, by why they ran (start, periodic, changed).
# TYPE smtpban_firewall_resyncs_total counter
smtpban_firewall_resyncs_total{why="periodic"} 2
smtpban_firewall_resyncs_total{why="start"} 1
`,
		},
		{
			name:   "firewall errors, every op present",
			events: func(m *Metrics) { m.FirewallError(OpAdd) },
			metric: "smtpban_firewall_errors_total",
			want: `
# HELP smtpban_firewall_errors_total Firewall operations that failed, by operation (add, remove, resync).
# TYPE smtpban_firewall_errors_total counter
smtpban_firewall_errors_total{op="add"} 1
smtpban_firewall_errors_total{op="remove"} 0
smtpban_firewall_errors_total{op="resync"} 0
`,
		},
		{
			name: "checkpoint failures are counted, not timed",
			events: func(m *Metrics) {
				m.Checkpoint(time.Second, errors.New("disk full"))
				m.Checkpoint(2*time.Millisecond, nil)
			},
			metric: "smtpban_state_checkpoint_errors_total",
			want: `
# HELP smtpban_state_checkpoint_errors_total Checkpoints that failed to save (retried at the next one).
# TYPE smtpban_state_checkpoint_errors_total counter
smtpban_state_checkpoint_errors_total 1
`,
		},
		{
			name:   "reloads",
			events: func(m *Metrics) { m.Reload(nil); m.Reload(errors.New("bad")); m.Reload(nil) },
			metric: "smtpban_config_reloads_total",
			want: `
# HELP smtpban_config_reloads_total Config reloads, by result (ok, refused).
# TYPE smtpban_config_reloads_total counter
smtpban_config_reloads_total{result="ok"} 2
smtpban_config_reloads_total{result="refused"} 1
`,
		},
		{
			name:   "view at scrape time",
			metric: "smtpban_bans_active",
			want: `
# HELP smtpban_bans_active Bans in force now, per jail.
# TYPE smtpban_bans_active gauge
smtpban_bans_active{jail="dovecot"} 0
smtpban_bans_active{jail="postfix-sasl"} 3
`,
		},
		{
			name:   "source counters from the view",
			metric: "smtpban_source_lines_read_total",
			want: `
# HELP smtpban_source_lines_read_total Lines a log source passed on to the jails, since it started.
# TYPE smtpban_source_lines_read_total counter
smtpban_source_lines_read_total{source="journal"} 7
smtpban_source_lines_read_total{source="mail"} 1234
`,
		},
		{
			name:   "source lag in seconds",
			metric: "smtpban_source_lag_seconds",
			want: `
# HELP smtpban_source_lag_seconds How long the oldest line a log source has not passed on yet has waited (journal: since its timestamp; file: since the source found it unread); 0 when caught up.
# TYPE smtpban_source_lag_seconds gauge
smtpban_source_lag_seconds{source="journal"} 0
smtpban_source_lag_seconds{source="mail"} 1.5
`,
		},
		{
			name:   "source restarts from the view",
			metric: "smtpban_source_restarts_total",
			want: `
# HELP smtpban_source_restarts_total Times a log source started reading again after its reader failed (journalctl exited), since it started.
# TYPE smtpban_source_restarts_total counter
smtpban_source_restarts_total{source="journal"} 3
smtpban_source_restarts_total{source="mail"} 0
`,
		},
		{
			name: "skipped bans by reason, every reason from the start",
			events: func(m *Metrics) {
				m.BanSkipped(SkipAllowed)
				m.BanSkipped(SkipNeverBan)
				m.BanSkipped(SkipAllowed)
			},
			metric: "smtpban_bans_skipped_total",
			want: `
# HELP smtpban_bans_skipped_total Ban decisions not made, by reason (never_ban, ignored, allowed, prefix_overlap, covered, over, refused, dropped).
# TYPE smtpban_bans_skipped_total counter
smtpban_bans_skipped_total{reason="allowed"} 2
smtpban_bans_skipped_total{reason="covered"} 0
smtpban_bans_skipped_total{reason="dropped"} 0
smtpban_bans_skipped_total{reason="ignored"} 0
smtpban_bans_skipped_total{reason="never_ban"} 1
smtpban_bans_skipped_total{reason="over"} 0
smtpban_bans_skipped_total{reason="prefix_overlap"} 0
smtpban_bans_skipped_total{reason="refused"} 0
`,
		},
		{
			name:   "failure windows",
			metric: "smtpban_failure_windows",
			want: `
# HELP smtpban_failure_windows Addresses or prefixes with failures being counted now, all jails together.
# TYPE smtpban_failure_windows gauge
smtpban_failure_windows 42
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{Version: "1.2.3", View: &fakeView{
				sources: []Source{{Name: "mail", Read: 1234, Skipped: 2, Lag: 1500 * time.Millisecond}, {Name: "journal", Read: 7, Restarts: 3}},
				active:  map[string]int{"postfix-sasl": 3, "dovecot": 0},
				windows: 42,
			}})
			if tt.events != nil {
				tt.events(m)
			}
			if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(tt.want), tt.metric); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestLint runs promlint over every smtpban_ metric: base units, _total on
// counters only, help text.
func TestLint(t *testing.T) {
	m := New(Options{Version: "dev", View: &fakeView{sources: []Source{{Name: "mail"}}, active: map[string]int{"a": 1}}})
	m.InitJail("a", "mx1")
	m.Ban("a", "mx1", time.Millisecond)
	m.Expired("a", "mx1")
	m.Resync("start")
	m.Checkpoint(time.Millisecond, nil)
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, mf := range mfs {
		name := mf.GetName()
		switch {
		case strings.HasPrefix(name, "smtpban_"):
			ours++
		case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"):
			// The standard runtime and process collectors.
		default:
			t.Errorf("metric %s has neither the smtpban_ prefix nor a standard one", name)
		}
	}
	if ours < 15 {
		t.Errorf("only %d smtpban_ metrics gathered, want at least 15", ours)
	}
}

func TestBuildInfo(t *testing.T) {
	m := New(Options{Version: "1.2.3"})
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smtpban_build_info" {
			continue
		}
		ls := mf.GetMetric()[0].GetLabel()
		got := map[string]string{}
		for _, l := range ls {
			got[l.GetName()] = l.GetValue()
		}
		if got["version"] != "1.2.3" || !strings.HasPrefix(got["goversion"], "go") {
			t.Errorf("build_info labels = %v", got)
		}
		if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 1 {
			t.Errorf("build_info = %v, want 1", v)
		}
		return
	}
	t.Fatal("no smtpban_build_info")
}

// TestViewError: a failing view reports an error for its metric and the
// rest is still served.
func TestViewError(t *testing.T) {
	m := New(Options{View: &fakeView{err: errors.New("state closed"), windows: 3}})
	_, err := m.Gatherer().Gather()
	if err == nil || !strings.Contains(err.Error(), "state closed") {
		t.Fatalf("Gather error = %v, want the view's error", err)
	}
	srv := &http.Server{Handler: m.Handler(discard())}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	body, code := get(t, "http://"+ln.Addr().String()+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "smtpban_failure_windows 3") {
		t.Errorf("scrape with a failing view: %d\n%s", code, body)
	}
}

// TestNil: a nil *Metrics records nothing and does not panic.
func TestNil(t *testing.T) {
	var m *Metrics
	m.InitJail("a", "b")
	m.Match("a")
	m.Ban("a", "b", time.Second)
	m.Unban("a", "b")
	m.Expired("a", "b")
	m.Resync("start")
	m.FirewallError(OpAdd)
	m.Checkpoint(time.Second, nil)
	m.Reload(nil)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.StatusCode
}

// TestServe serves on a real listener, answers /metrics and nothing else,
// and stops cleanly when ctx is done.
func TestServe(t *testing.T) {
	m := New(Options{Version: "9.9"})
	m.Ban("postfix-sasl", "mx1", time.Millisecond)
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln, discard()) }()
	base := "http://" + ln.Addr().String()
	tests := []struct {
		path     string
		code     int
		contains string
	}{
		{"/metrics", http.StatusOK, `smtpban_bans_total{jail="postfix-sasl",origin="mx1"} 1`},
		{"/metrics", http.StatusOK, `smtpban_build_info{goversion="go`},
		{"/", http.StatusNotFound, "/metrics"},
		{"/debug/pprof/", http.StatusNotFound, "/metrics"},
	}
	for _, tt := range tests {
		body, code := get(t, base+tt.path)
		if code != tt.code || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s = %d, want %d with %q:\n%s", tt.path, code, tt.code, tt.contains, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after ctx was done")
	}
}
