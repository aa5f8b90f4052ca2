// Command daemon measures the real smtpband in a network namespace it
// creates (nftables backend, file source): ban latency, restart with 100k
// bans in state, resident memory with 1M counted addresses, CPU at a
// steady line rate, and bans in a burst (beside an earlier build's, with
// -before). It needs root; it never touches the host's ruleset.
//
//	daemon -bin DIR -jails configs/jails.d latency|restart|memory|cpu|burst|cluster
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type options struct {
	bin     string // directory holding smtpband and smtpban
	jails   string // the shipped jails.d, copied into each run's config dir
	bans    int    // latency: how many addresses to ban
	restore int    // restart: bans in state
	addrs   int    // memory: distinct addresses
	rate    int    // cpu: lines per second
	secs    int    // cpu: seconds
	mixed   string // cpu: a generated log to take mixed traffic from
	gctrace bool   // run smtpband with GODEBUG=gctrace=1 (memory: Go heap)
	before  string // burst: directory with the binaries to compare against (optional)
	addrs4  int    // burst: distinct addresses in one burst
	bursts  int    // burst: how many bursts per binary
	// saslRetry, if set, replaces postfix-sasl's maxretry in the run's
	// copy of jails.d.
	saslRetry int
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", ".", "directory with the smtpband and smtpban binaries")
	flag.StringVar(&o.jails, "jails", "configs/jails.d", "shipped jails directory")
	flag.IntVar(&o.bans, "bans", 200, "latency: addresses to ban")
	flag.IntVar(&o.restore, "restore", 100_000, "restart: bans in state")
	flag.IntVar(&o.addrs, "addrs", 1_000_000, "memory: distinct addresses with one failure each")
	flag.IntVar(&o.rate, "rate", 5000, "cpu: lines per second")
	flag.IntVar(&o.secs, "secs", 30, "cpu: seconds")
	flag.StringVar(&o.before, "before", "", "burst: directory with the smtpband and smtpban binaries of an earlier build, measured in the same run")
	flag.IntVar(&o.addrs4, "burst", 5000, "burst: distinct IPv4 addresses, 3 failures each")
	flag.IntVar(&o.bursts, "bursts", 20, "burst: bursts per binary, each on a fresh daemon")
	flag.StringVar(&o.mixed, "mixed", "", "cpu: generated log (bench/gen) to replay at -rate")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "daemon: needs root (network namespaces, nftables)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch flag.Arg(0) {
	case "latency":
		err = latency(ctx, o)
	case "restart":
		err = restart(ctx, o)
	case "memory":
		err = memory(ctx, o)
	case "cpu":
		err = cpu(ctx, o)
	case "burst":
		err = burst(ctx, o)
	case "cluster":
		err = clusterBench(ctx, o)
	default:
		err = fmt.Errorf("usage: daemon [flags] latency|restart|memory|cpu|burst|cluster")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
}
