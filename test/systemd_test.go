package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// settingLine is a unit file's section header or Key=value line.
var settingLine = regexp.MustCompile(`^(\[[A-Za-z]+\]$|[A-Za-z]+=)`)

// TestUnitSystemdIntegration: the unit is Type=notify with a watchdog the
// daemon can keep (it pings at half of WatchdogSec=), tests the config
// before starting with the same -config as ExecStart, and the shipped
// metrics drop-in, once uncommented, opens IP for the listener only and
// keeps the unit valid and at an exposure of 2.5 or lower.
func TestUnitSystemdIntegration(t *testing.T) {
	u := parseUnit(t, unitPath)
	if v := u.one(t, "Type"); v != "notify" {
		t.Errorf("Type=%q, want notify", v)
	}
	wd, err := time.ParseDuration(u.one(t, "WatchdogSec"))
	if err != nil || wd < 10*time.Second {
		t.Errorf("WatchdogSec=%q (%v): want a duration of 10s or more (a busy host must not miss pings)", u["WatchdogSec"], err)
	}
	start, pre := u["ExecStart"], u["ExecStartPre"]
	if len(pre) < 2 || pre[0] != start[0] || !slices.Contains(pre, "-t") {
		t.Errorf("ExecStartPre=%q, want %s -t", pre, start[0])
	}
	if i, j := slices.Index(start, "-config"), slices.Index(pre, "-config"); i < 0 || j < 0 || start[i+1] != pre[j+1] {
		t.Errorf("ExecStartPre=%q and ExecStart=%q test and run different configs", pre, start)
	}

	sa, err := exec.LookPath("systemd-analyze")
	requireFeature(t, err == nil, "systemd-analyze is needed to check the unit with the metrics drop-in; .ci/run installs systemd")
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile("../configs/monitoring/smtpband-metrics.conf")
	if err != nil {
		t.Fatal(err)
	}
	// Uncommented as its header says: every "#Key=" and "#[Section]" line.
	var settings []string
	for _, l := range strings.Split(string(dropIn), "\n") {
		if s, ok := strings.CutPrefix(l, "#"); ok && settingLine.MatchString(s) {
			settings = append(settings, s)
		}
	}
	if len(settings) < 3 || settings[0] != "[Service]" {
		t.Fatalf("drop-in settings %q: want [Service] and its lines", settings)
	}
	// A section given again merges into the first, as a drop-in does.
	merged := strings.ReplaceAll(string(unit), "/usr/sbin/smtpband", filepath.Join(binDir, "smtpband")) + "\n" + strings.Join(settings, "\n") + "\n"
	tmp := filepath.Join(t.TempDir(), "smtpband.service")
	writeFile(t, tmp, merged)
	mu := parseUnit(t, tmp)
	if fams := mu["RestrictAddressFamilies"]; !slices.Contains(fams, "AF_INET") || !slices.Contains(fams, "AF_UNIX") || !slices.Contains(fams, "AF_NETLINK") {
		t.Errorf("with the drop-in RestrictAddressFamilies=%q, want AF_INET added to the unit's", fams)
	}
	if deny := mu["IPAddressDeny"]; !slices.Equal(deny, []string{"any"}) {
		t.Errorf("with the drop-in IPAddressDeny=%q, want any (only IPAddressAllow= opens)", deny)
	}
	out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=25", tmp).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		t.Errorf("systemd-analyze security with the metrics drop-in: %v, want 2.5 or lower:\n%s", err, out)
	}
	t.Log("with the metrics drop-in: ", lines[len(lines)-1])
	// --man=no: Documentation= names smtpband(8), installed by the package.
	if out, err := exec.Command(sa, "verify", "--man=no", tmp).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify with the metrics drop-in: %v\n%s", err, out)
	}
}
