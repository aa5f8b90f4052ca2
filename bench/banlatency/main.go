// Command banlatency measures the live ban latency of the tools smtpban is
// compared with, on this machine: from the moment the Nth failure line for
// a fresh address is appended to a log file (one write) to the moment the
// tool's ban action runs and records a timestamp.
//
//	banlatency -dir DIR -bans 100 fail2ban   # fail2ban-server -f, its own config dir
//	banlatency -dir DIR -bans 100 sshguard   # sshg-logtail | sshg-parser | sshg-blocker | backend
//	banlatency -dir DIR -bans 100 -firewall sshguard   # backend sshg-fw-nft-sets, own netns
//
// The host's firewall is never touched: the fail2ban action and the
// sshguard backend only record "<addr> <time>"; with -firewall, sshguard's
// own nftables backend runs in a network namespace made for the run.
// Every process it starts runs in its own process group, killed at exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	dir      string        // work directory (config, log, records); created
	bans     int           // timed bans
	pause    time.Duration // between the first N-1 failures and the Nth
	idle     time.Duration // random wait before each ban, uniform in [0, idle)
	timeout  time.Duration // per ban
	attacks  int           // failures that make a ban (fail2ban maxretry, sshguard threshold/10)
	backend  string        // fail2ban: pyinotify, polling, auto
	stamp    string        // fail2ban: "date" or "python" records the time
	f2bConfs string        // fail2ban: where the stock filter.d lives
	firewall bool          // sshguard: its nft-sets backend, in a network namespace
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "", "work directory (made if missing; default a new one under /tmp)")
	flag.IntVar(&o.bans, "bans", 100, "bans to time (one warm-up ban more is made and not counted)")
	flag.DurationVar(&o.pause, "pause", 30*time.Millisecond, "pause before the failure that tips the ban")
	flag.DurationVar(&o.idle, "idle", 2*time.Second, "random wait before each ban, uniform in [0, idle): spreads the bans over the tool's polling cycle")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on a ban after this long")
	flag.IntVar(&o.attacks, "attacks", 5, "failures per ban: fail2ban maxretry; sshguard threshold is 10 per attack")
	flag.StringVar(&o.backend, "backend", "pyinotify", "fail2ban backend: pyinotify, polling or auto")
	flag.StringVar(&o.stamp, "stamp", "date", "fail2ban actionban records the time with: date (sh + date +%s.%N) or python (sh + python3 -c)")
	flag.StringVar(&o.f2bConfs, "fail2ban-conf", "/etc/fail2ban", "fail2ban's stock config (filter.d/postfix.conf, common.conf)")
	flag.BoolVar(&o.firewall, "firewall", false, "sshguard: use its sshg-fw-nft-sets backend in a network namespace made for the run, timing until nft returns")
	flag.Parse()
	if o.bans < 1 || o.attacks < 1 {
		fmt.Fprintln(os.Stderr, "banlatency: -bans and -attacks must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.dir == "" {
		o.dir, err = os.MkdirTemp("", "banlatency.")
	} else {
		err = os.MkdirAll(o.dir, 0o755)
	}
	if err == nil {
		switch flag.Arg(0) {
		case "fail2ban":
			err = fail2ban(ctx, o)
		case "sshguard":
			err = sshguard(ctx, o)
		default:
			err = fmt.Errorf("usage: banlatency [flags] fail2ban|sshguard")
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "banlatency:", err)
		os.Exit(1)
	}
}
