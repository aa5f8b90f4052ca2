package test

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDaemonAndReplayAgreeOnBenchLog: the benchmark's generated traffic
// (bench/gen: ordinary mail with guessing, relay probing and Dovecot
// failures from thousands of addresses, IPv6 included), read by the
// running daemon and by `smtpban replay`, ends in the same bans: both run
// the same ban manager.
func TestDaemonAndReplayAgreeOnBenchLog(t *testing.T) {
	quickExit(t)
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.log")
	// 500 lines/s of log time: 200,000 lines span under 7 minutes, so
	// every ban is still in force when the daemon reads them.
	cmd := exec.Command(filepath.Join(binDir, "gen"), "-n", "200000", "-seed", "3", "-rate", "500",
		"-end", time.Now().Add(-time.Second).UTC().Format(time.RFC3339), "-out", gen, "-truth", filepath.Join(dir, "truth.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "mail.log")
	config := writeAllJailsConfig(t, dir, logPath)
	d := startDaemon(t, config, filepath.Join(dir, "smtpband.sock"))
	waitSourcesOpen(t, d)
	b, err := os.ReadFile(gen)
	if err != nil {
		t.Fatal(err)
	}
	appendLines(t, logPath, strings.TrimSuffix(string(b), "\n"))
	lines := uint64(strings.Count(string(b), "\n"))

	// Read every line, then let the manager settle: the same bans twice.
	waitFor(t, 60*time.Second, "the daemon to read the whole log", func() bool {
		var st struct {
			Sources []struct {
				Read uint64 `json:"read"`
			} `json:"sources"`
		}
		out, _, code := d.client("status", "-json")
		return code == 0 && jsonUnmarshal(out, &st) == nil && len(st.Sources) == 1 && st.Sources[0].Read >= lines
	})
	type key struct{ prefix, jail string }
	var daemonBans []key
	prev := -1
	waitFor(t, 30*time.Second, "the bans to settle", func() bool {
		daemonBans = daemonBans[:0]
		for _, b := range d.bans(t) {
			daemonBans = append(daemonBans, key{b.Prefix, b.Jail})
		}
		n := len(daemonBans)
		settled := n == prev && n > 0
		prev = n
		return settled
	})

	out, errOut, code := d.client("replay", "-json", logPath)
	if code != 0 {
		t.Fatalf("smtpban replay: exit %d: %s", code, errOut)
	}
	last := map[netip.Prefix]key{} // a ban continued shows again; the last one stands
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct{ Event, Jail, IP string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("replay output %q: %v", l, err)
		}
		if ev.Event == "ban" {
			p := netip.MustParsePrefix(ev.IP)
			last[p] = key{ev.IP, ev.Jail}
		}
	}
	var replayBans []key
	for p, k := range last {
		covered := false
		for q := range last {
			covered = covered || (q.Bits() < p.Bits() && q.Contains(p.Addr()))
		}
		if !covered { // a widened ban took its place
			replayBans = append(replayBans, k)
		}
	}
	cmp := func(a, b key) int { return strings.Compare(a.prefix+" "+a.jail, b.prefix+" "+b.jail) }
	slices.SortFunc(daemonBans, cmp)
	slices.SortFunc(replayBans, cmp)
	if len(daemonBans) < 50 {
		t.Fatalf("only %d bans: the generated traffic should ban over a hundred", len(daemonBans))
	}
	if !slices.Equal(daemonBans, replayBans) {
		var onlyD, onlyR []key
		for _, k := range daemonBans {
			if _, ok := slices.BinarySearchFunc(replayBans, k, cmp); !ok {
				onlyD = append(onlyD, k)
			}
		}
		for _, k := range replayBans {
			if _, ok := slices.BinarySearchFunc(daemonBans, k, cmp); !ok {
				onlyR = append(onlyR, k)
			}
		}
		t.Errorf("daemon %d bans, replay %d; daemon only %v; replay only %v", len(daemonBans), len(replayBans), onlyD, onlyR)
	}
	t.Logf("%d lines, %d bans, the same in both", lines, len(daemonBans))
}
