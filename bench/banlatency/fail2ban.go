package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const f2bJail = "bench"

// fail2ban runs fail2ban-server in the foreground on a config directory of
// its own (one jail: the stock postfix[mode=auth] filter on a temp log, an
// action that only records the time) and times o.bans bans.
func fail2ban(ctx context.Context, o options) error {
	d := f2bPaths(o.dir)
	if err := writeF2bConfig(o, d); err != nil {
		return err
	}
	cmd := exec.Command("fail2ban-server", "-f", "-x", "-c", d.conf, "-s", d.socket, "-p", d.pidfile,
		"--logtarget", d.serverLog, "--loglevel", "INFO")
	stop, outPath, err := startGroup(cmd, o.dir, "fail2ban-server")
	if err != nil {
		return err
	}
	defer stop()
	backend, err := waitF2bStarted(ctx, d.serverLog, 30*time.Second)
	if err != nil {
		return fmt.Errorf("%w (see %s and %s)", err, d.serverLog, outPath)
	}
	trials, err := drive(ctx, o, d.log, d.records)
	if err != nil {
		return err
	}
	stop()
	found, banned, err := parseF2bLog(d.serverLog)
	if err != nil {
		return err
	}
	report := f2bReport(trials, found, banned)
	fmt.Printf("fail2ban-server (%s), jail %q: filter postfix[mode=auth], maxretry %d, backend %s, actionban %s\n",
		f2bVersion(), f2bJail, o.attacks, backend, stampCmd(o.stamp, "<ip>", d.records))
	fmt.Printf("%d bans (+1 warm-up not counted), random idle in [0, %s) before each, %s pause before the tipping line; work files in %s\n", len(trials), o.idle, o.pause, o.dir)
	fmt.Printf("  append -> action's timestamp:              %s\n", summarize(latencies(trials)))
	fmt.Printf("  append -> 'Found' (filter; log ms, n=%d):  %s\n", len(report.found), summarize(report.found))
	fmt.Printf("  append -> 'Ban' (actions thread; n=%d):    %s\n", len(report.ban), summarize(report.ban))
	fmt.Printf("  'Ban' -> action's timestamp (sh + %s):   %s\n", o.stamp, summarize(report.action))
	fmt.Println(summarize(latencies(trials)).row(fmt.Sprintf("fail2ban-server, backend %s, action's timestamp (%s)", backend, o.stamp), len(trials)))
	return nil
}

type f2bDirs struct {
	conf, socket, pidfile, db, serverLog, log, records string
}

func f2bPaths(dir string) f2bDirs {
	return f2bDirs{
		conf:      filepath.Join(dir, "conf"),
		socket:    filepath.Join(dir, "fail2ban.sock"),
		pidfile:   filepath.Join(dir, "fail2ban.pid"),
		db:        filepath.Join(dir, "fail2ban.sqlite3"),
		serverLog: filepath.Join(dir, "fail2ban.log"),
		log:       filepath.Join(dir, "mail.log"),
		records:   filepath.Join(dir, "bans.txt"),
	}
}

// stampCmd is the shell command the action runs (as run: fail2ban's
// config wants each % doubled, see writeF2bConfig).
func stampCmd(stamp, ip, records string) string {
	if stamp == "python" {
		return fmt.Sprintf(`/usr/bin/python3 -c 'import sys,time; t=time.time_ns(); open(sys.argv[2],"a").write("%%s %%d.%%09d\n" %% (sys.argv[1], t//10**9, t%%10**9))' %s %s`, ip, records)
	}
	return fmt.Sprintf(`echo "%s $(date +%%s.%%N)" >> %s`, ip, records)
}

func writeF2bConfig(o options, d f2bDirs) error {
	if o.stamp != "date" && o.stamp != "python" {
		return fmt.Errorf("-stamp %q: want date or python", o.stamp)
	}
	files := map[string]string{
		"fail2ban.conf": fmt.Sprintf("[Definition]\nloglevel = INFO\nlogtarget = %s\nsocket = %s\npidfile = %s\ndbfile = %s\ndbpurgeage = 1d\n",
			d.serverLog, d.socket, d.pidfile, d.db),
		"jail.conf": fmt.Sprintf("[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\nusedns = no\n\n[%s]\nenabled = true\nfilter = postfix[mode=auth]\nlogpath = %s\nbackend = %s\nmaxretry = %d\nfindtime = 1h\nbantime = 1h\naction = record\n",
			f2bJail, d.log, o.backend, o.attacks),
		"action.d/record.conf": fmt.Sprintf("[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionban = %s\nactionunban =\n",
			strings.ReplaceAll(stampCmd(o.stamp, "<ip>", d.records), "%", "%%")),
	}
	for _, name := range []string{"filter.d/postfix.conf", "filter.d/common.conf"} {
		b, err := os.ReadFile(filepath.Join(o.f2bConfs, name))
		if err != nil {
			return fmt.Errorf("reading fail2ban's stock filter (is fail2ban installed?): %w", err)
		}
		files[name] = string(b)
	}
	for name, body := range files {
		p := filepath.Join(d.conf, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("making the fail2ban config dir: %w", err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return fmt.Errorf("writing the fail2ban config: %w", err)
		}
	}
	return os.WriteFile(d.log, nil, 0o644)
}

var f2bUses = regexp.MustCompile(`Jail '` + f2bJail + `' uses (\S+)`)

// waitF2bStarted waits for "Jail 'bench' started" in the server's log and
// returns the backend it says it uses.
func waitF2bStarted(ctx context.Context, serverLog string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(serverLog)
		if s := string(b); strings.Contains(s, "Jail '"+f2bJail+"' started") {
			if m := f2bUses.FindStringSubmatch(s); m != nil {
				return m[1], nil
			}
			return "unknown", nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("fail2ban-server did not start jail %q in %s", f2bJail, timeout)
}

// fail2ban's log: "2026-11-24 19:40:01,234 fail2ban.filter [12]: INFO [bench] Found 198.18.0.1 - ...".
var f2bEvent = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*\[` + f2bJail + `\] (Found|Ban) (\S+)`)

// parseF2bLog returns, per address, the time of its last "Found" (the
// tipping failure: the ban follows it) and of its "Ban", to the ms.
func parseF2bLog(path string) (found, banned map[netip.Addr]time.Time, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening fail2ban's log: %w", err)
	}
	defer f.Close()
	found, banned = map[netip.Addr]time.Time{}, map[netip.Addr]time.Time{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := f2bEvent.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, terr := time.ParseInLocation("2006-01-02 15:04:05,000", m[1], time.Local)
		a, aerr := netip.ParseAddr(m[3])
		if terr != nil || aerr != nil {
			continue
		}
		if m[2] == "Found" {
			found[a] = t
		} else {
			banned[a] = t
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading fail2ban's log: %w", err)
	}
	return found, banned, nil
}

type f2bStages struct{ found, ban, action []time.Duration }

// f2bReport splits each ban's latency at fail2ban's own log lines.
func f2bReport(ts []trial, found, banned map[netip.Addr]time.Time) f2bStages {
	var s f2bStages
	for _, t := range ts {
		if f, ok := found[t.addr]; ok {
			s.found = append(s.found, f.Sub(t.wrote))
		}
		if b, ok := banned[t.addr]; ok {
			s.ban = append(s.ban, b.Sub(t.wrote))
			s.action = append(s.action, t.action.Sub(b))
		}
	}
	return s
}

func f2bVersion() string {
	out, err := exec.Command("fail2ban-server", "-V").Output()
	if err != nil {
		return "version unknown"
	}
	return "v" + strings.TrimSpace(string(out))
}
