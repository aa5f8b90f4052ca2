package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	alertRules = "../../configs/monitoring/smtpban-alerts.yml"
	dashboard  = "../../configs/monitoring/smtpban-dashboard.json"
)

// notYetExported are metrics the shipped rules use that this registry
// does not have: smtpban_cluster_degraded is registered by
// internal/cluster, only on a daemon with a cluster block.
var notYetExported = []string{"smtpban_cluster_degraded"}

// promtool finds promtool (Debian's prometheus package); it skips the test
// without it, except in CI.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is needed to check the alert rules; .ci/run installs the prometheus package")
		}
		t.Skip("promtool not installed (apt-get install prometheus): the alert rules are not checked")
	}
	return p
}

// TestAlertRules checks the shipped rules with promtool: they parse, and
// each alert fires on the series that should fire it and not on healthy
// ones (testdata/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", alertRules},
		{"test", "rules", "testdata/alerts_test.yml"},
	} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert in the rules has a test.
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("testdata/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1) {
		if !strings.Contains(string(tests), "alertname: "+m[1]+"\n") {
			t.Errorf("alert %s has no promtool test in testdata/alerts_test.yml", m[1])
		}
	}
}

// exported gathers every metric family name a daemon with one source, one
// jail, the account watch and the policy service exports.
func exported(t *testing.T) []string {
	t.Helper()
	m := New(Options{Version: "dev", View: &fakeView{
		sources: []Source{{Name: "mail"}}, active: map[string]int{"postfix-sasl": 1},
	}})
	m.InitJail("postfix-sasl", "mx1")
	m.Ban("postfix-sasl", "mx1", time.Millisecond)
	m.Expired("postfix-sasl", "mx1")
	m.Resync("start")
	m.Checkpoint(time.Millisecond, nil)
	m.WatchAccounts(func() AccountStats {
		return AccountStats{Alerts: map[string]uint64{"messages_per_hour": 0}, Policy: &PolicyStats{}}
	})
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}

var metricName = regexp.MustCompile(`\b(?:smtpban|go|process)_[a-z0-9_]+`)

// unknownMetrics returns the metric names in exprs that the daemon does
// not export (histogram series by their family's name; up is Prometheus's).
func unknownMetrics(names []string, exprs []string, allowed []string) []string {
	var bad []string
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			fam := n
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				if f, ok := strings.CutSuffix(n, suf); ok && slices.Contains(names, f) {
					fam = f
				}
			}
			if !slices.Contains(names, fam) && !slices.Contains(allowed, fam) && !slices.Contains(bad, n) {
				bad = append(bad, n)
			}
		}
	}
	return bad
}

// TestMonitoringUsesExportedMetrics: the dashboard parses as a Grafana
// dashboard, and it and the alert rules name only metrics the daemon
// exports, so that a renamed metric cannot leave an empty panel or a
// silent alert behind.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no title, uid or panels", dashboard)
	}
	var exprs []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if bad := unknownMetrics(names, exprs, nil); len(bad) > 0 {
		t.Errorf("the dashboard uses metrics smtpband does not export: %q", bad)
	}
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	if bad := unknownMetrics(names, []string{string(rules)}, notYetExported); len(bad) > 0 {
		t.Errorf("the alert rules use metrics smtpband does not export: %q", bad)
	}
	// The check itself finds a wrong name.
	if bad := unknownMetrics(names, []string{"rate(smtpban_bans_made_total[5m])"}, nil); len(bad) != 1 {
		t.Errorf("unknownMetrics missed a name the daemon does not export: %q", bad)
	}
}
