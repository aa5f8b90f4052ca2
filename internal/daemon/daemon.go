// Package daemon wires smtpband together: config, state, firewall, log
// sources, jails and the control API. cmd/smtpband only parses flags and
// handles signals.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"smtpban/firewall"
	"smtpban/internal/account"
	"smtpban/internal/ban"
	"smtpban/internal/cluster"
	"smtpban/internal/config"
	"smtpban/internal/control"
	"smtpban/internal/metrics"
	"smtpban/internal/policy"
	"smtpban/internal/source"
	"smtpban/jails"
	"smtpban/state"
)

// Log attribute keys, one spelling everywhere.
const (
	keySource = "source"
	keyErr    = "err"
)

// Options configure a Daemon. Zero values are filled with real defaults.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	Now        func() time.Time
	Hostname   string // origin of this host's bans; default os.Hostname
	Version    string
	// LocalAddrs lists the host's own addresses, never banned.
	LocalAddrs func() ([]netip.Addr, error)
	// Ready is called once the bans are restored and sources started.
	Ready func()
	// Notify, if set, is given sd_notify(3) messages: STATUS= with
	// READY=1 and WATCHDOG=1, RELOADING=1, STOPPING=1 (see watchdog.go).
	Notify func(state string)
	// WatchdogEvery, if set, is how often Notify gets WATCHDOG=1 while the
	// line path is alive: half of systemd's WatchdogSec=.
	WatchdogEvery time.Duration
	// DryRun forces the dryrun firewall whatever the config says.
	DryRun          bool
	CheckpointEvery time.Duration // default 1s
	SweepEvery      time.Duration // default 10s
	RetryEvery      time.Duration // bans state could not save; default 1s
}

// Daemon is a running smtpband.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	started time.Time
	store   *state.Store
	fw      firewall.Backend
	fwKind  string
	bans    *ban.Manager     // the ban path: protection, state, firewall
	cluster *cluster.Node    // the shared ban list; nil without a cluster block
	peers   []netip.Addr     // the cluster's etcd members, never banned
	metrics *metrics.Metrics // nil when the config has no metrics address
	// accounts is the account watch, policy its Postfix policy service;
	// nil when the config has none.
	accounts *account.Watch
	policy   *policy.Server

	reloadReq chan reloadReq
	probe     chan chan struct{} // the watchdog's, answered by lineLoop
	summary   atomic.Pointer[summary]

	// mu guards everything below; the line loop, the housekeeping loop and
	// control API calls all take it.
	mu        sync.Mutex
	cfg       *config.Config
	matcher   *jails.Matcher
	counter   *jails.Counter
	jails     map[string]*jails.Jail
	positions map[string][]byte
	dirty     bool // positions moved since the last checkpoint
	// replaceWindows: the next checkpoint saves every window rather than
	// the changed shards, after start-up (dropping the windows of jails
	// that are gone) or a failed checkpoint.
	replaceWindows bool
	ckptWindows    []state.Window // scratch for checkpoint
	ckptBuf        []byte         // scratch for checkpoint
	jailStats      map[string]*jailCounters
	sources        []runningSource
	hits           []jails.Hit
	// decided numbers the decisions handed to the ban manager, so that a
	// checkpoint knows which bans its positions depend on.
	decided uint64
}

type jailCounters struct {
	failures uint64
}

type runningSource struct {
	kind string
	src  source.Source
	busy *busy // handing on a batch since (the watchdog looks)
}

type reloadReq struct {
	cfg   *config.Config
	reply chan error
}

// New loads the config and opens state and firewall. Config problems come
// back as config.Diagnostics.
func New(opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		return nil, errors.New("daemon: no logger")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("daemon: hostname: %w", err)
		}
		opts.Hostname = h
	}
	if opts.LocalAddrs == nil {
		opts.LocalAddrs = interfaceAddrs
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = time.Second
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = 10 * time.Second
	}
	if opts.RetryEvery == 0 {
		opts.RetryEvery = time.Second
	}
	cfg, diags := config.Load(opts.ConfigPath)
	if diags.HasErrors() {
		return nil, diags
	}
	for _, dg := range diags {
		opts.Logger.Warn(dg.String())
	}
	if cfg.Cluster != nil && cfg.Cluster.HostName != "" {
		opts.Hostname = cfg.Cluster.HostName // the origin of this host's bans
	}
	d := &Daemon{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		reloadReq: make(chan reloadReq),
		probe:     make(chan chan struct{}),
		// Past max_windows the one closest to expiry is dropped: a botnet
		// flood costs bounded memory.
		counter:   jails.NewCounter(cfg.MaxWindows, cfg.Jails...),
		positions: map[string][]byte{},
		jailStats: map[string]*jailCounters{},
	}
	if cfg.Metrics != "" {
		d.metrics = metrics.New(metrics.Options{Version: opts.Version, View: metricsView{d}})
	}
	// Salvage: a damaged database is moved aside and what still reads is
	// kept; it never keeps the daemon from banning.
	store, err := state.Open(filepath.Join(cfg.StateDir, "smtpban.db"), state.Options{Logger: opts.Logger, Timeout: 5 * time.Second, Salvage: true, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	d.store = store
	fw, kind, err := newFirewall(cfg.Firewall, opts)
	if err != nil {
		store.Close()
		return nil, err
	}
	d.fw, d.fwKind = fw, kind
	node, peers, err := newCluster(cfg, opts, store, d.metrics.Registerer())
	if err != nil {
		fw.Close()
		store.Close()
		return nil, err
	}
	d.cluster, d.peers = node, peers
	bo := ban.Options{
		Store: store, Firewall: fw, Logger: opts.Logger, Now: opts.Now,
		Origin: opts.Hostname, Metrics: d.metrics,
	}
	if node != nil {
		bo.Publisher = node
	}
	d.bans = ban.New(bo)
	if node != nil {
		node.SetManager(d.bans)
	}
	d.metrics.WatchState(d.stateHealth)
	d.newAccounts(cfg, store)
	if err := d.applyConfig(cfg); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func newFirewall(fc config.Firewall, opts Options) (firewall.Backend, string, error) {
	lim := firewall.Limits{MinV4: fc.MinPrefixV4, MinV6: fc.MinPrefixV6}
	if opts.DryRun || fc.Kind == "dryrun" {
		return firewall.NewDryRun(opts.Logger, opts.Now, lim), "dryrun", nil
	}
	ports := make([]uint16, 0, len(fc.Ports))
	for _, p := range fc.Ports {
		ports = append(ports, uint16(p))
	}
	fw, err := firewall.NewNFT(firewall.NFTOptions{
		Table:    fc.Table,
		Ports:    ports,
		AllPorts: fc.AllPorts,
		Reject:   fc.Reject,
		Limits:   lim,
		Logger:   opts.Logger,
	})
	if err != nil {
		return nil, "", fmt.Errorf("start nftables backend: %w", err)
	}
	return fw, "nftables", nil
}

// applyConfig installs cfg's jails, and its ignore lists in the ban
// manager. The caller holds mu (or is New, before anyone else can).
func (d *Daemon) applyConfig(cfg *config.Config) error {
	own, err := d.opts.LocalAddrs()
	if err != nil {
		return fmt.Errorf("list the host's own addresses: %w", err)
	}
	own = append(own, d.peers...)
	var enabled []*jails.Jail
	byName := map[string]*jails.Jail{}
	for _, j := range cfg.Jails {
		byName[j.Name] = j
		if j.Enabled {
			enabled = append(enabled, j)
		}
		if d.jailStats[j.Name] == nil {
			d.jailStats[j.Name] = &jailCounters{}
		}
		d.metrics.InitJail(j.Name, d.opts.Hostname)
	}
	d.metrics.InitJail(ban.Manual, d.opts.Hostname)
	d.applyAccounts(cfg)
	d.counter.SetMaxKeys(cfg.MaxWindows)
	d.cfg = cfg
	d.jails = byName
	d.matcher = jails.NewMatcher(enabled)
	d.bans.SetPolicy(ban.PolicyFor(cfg.Jails, cfg.Ignore, own))
	return nil
}

func interfaceAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// Run restores bans, starts the sources and serves until ctx is done. It
// checkpoints state before returning and leaves the firewall's bans in place.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()
	d.started = d.now()
	if err := d.restore(ctx); err != nil {
		return err
	}
	if err := d.startAccounts(); err != nil {
		return err
	}
	var metricsLn net.Listener
	if d.metrics != nil {
		ln, err := net.Listen("tcp", d.cfg.Metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		metricsLn = ln
	}
	srv := control.NewServer(d, control.ServerOptions{Path: d.cfg.Socket, Group: d.cfg.SocketGroup, Logger: d.log, Now: d.now})
	// Listening before READY=1: whoever was told we are up can connect.
	if err := srv.Listen(); err != nil {
		if metricsLn != nil {
			metricsLn.Close()
		}
		return fmt.Errorf("control socket: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx) })
	if metricsLn != nil {
		g.Go(func() error {
			// Metrics that fail must not take the bans down with them.
			if err := d.metrics.Serve(gctx, metricsLn, d.log); err != nil {
				d.log.Error("metrics stopped", keyErr, err)
			}
			return nil
		})
	}
	// Read the config under mu: once lineLoop runs, a reload may replace it.
	d.mu.Lock()
	stopSources, srcDone := d.startSources(gctx)
	nJails, nSources, resyncEvery := len(d.cfg.Jails), len(d.sources), d.cfg.Firewall.Resync
	d.mu.Unlock()
	g.Go(func() error { return d.lineLoop(gctx, stopSources, srcDone) })
	g.Go(func() error { return d.housekeeping(gctx) })
	d.runAccounts(gctx, g.Go)
	g.Go(func() error {
		return d.bans.Run(gctx, ban.Timers{Sweep: d.opts.SweepEvery, Retry: d.opts.RetryEvery, Resync: resyncEvery})
	})
	if d.opts.WatchdogEvery > 0 {
		g.Go(func() error { return d.watchdog(gctx) })
	}
	if d.cluster != nil {
		g.Go(func() error { return d.cluster.Run(gctx) })
	}
	if d.opts.Ready != nil {
		d.opts.Ready()
	}
	d.notify("READY=1\nSTATUS=" + d.statusLine())
	d.log.Info("smtpband running", "version", d.opts.Version, "firewall", d.fwKind, "jails", nJails, "sources", nSources)
	err := g.Wait()
	d.notify("STOPPING=1\nSTATUS=stopping: saving state")
	// Lines handled after the manager stopped may have queued bans.
	d.bans.Drain()
	if cerr := d.checkpoint(); cerr != nil {
		d.log.Error("final checkpoint", keyErr, cerr)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *Daemon) close() {
	if d.cluster != nil {
		d.cluster.Close()
	}
	if err := d.fw.Close(); err != nil {
		d.log.Warn("close firewall", keyErr, err)
	}
	if err := d.store.Close(); err != nil {
		d.log.Warn("close state", keyErr, err)
	}
}

// restore puts the live bans back in the firewall (the ban manager) and
// reloads counters and read positions.
func (d *Daemon) restore(ctx context.Context) error {
	start := d.now()
	added, removed, err := d.bans.Restore(ctx)
	if err != nil {
		return err
	}
	hashKey, err := d.store.HashKey()
	if err != nil {
		return fmt.Errorf("load failure windows: %w", err)
	}
	// The counter is not running yet: it can take the windows a shard at
	// a time, as they are read.
	d.counter.SetHashKey(hashKey)
	windows := 0
	var jws []jails.Window
	err = d.store.EachWindows(func(ws []state.Window) error {
		jws = jws[:0]
		for _, w := range ws {
			jws = append(jws, fromState(w))
		}
		windows += d.counter.Restore(jws)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load failure windows: %w", err)
	}
	pos, err := d.store.Positions()
	if err != nil {
		return fmt.Errorf("load read positions: %w", err)
	}
	d.mu.Lock()
	d.replaceWindows = true
	d.positions = pos
	d.mu.Unlock()
	d.log.Info("state restored", "bans_added", added, "strays_removed", removed, "windows", windows, "took", d.now().Sub(start))
	return nil
}

// Uninstall removes smtpban's nftables table: the bans stop working. State
// is kept, so the next start applies them again.
func Uninstall(ctx context.Context, configPath string, logger *slog.Logger) error {
	cfg, diags := config.Load(configPath)
	if diags.HasErrors() {
		return diags
	}
	fw, kind, err := newFirewall(cfg.Firewall, Options{Logger: logger, Now: time.Now})
	if err != nil {
		return err
	}
	defer fw.Close()
	u, ok := fw.(firewall.Uninstaller)
	if !ok {
		return fmt.Errorf("firewall %q has nothing to uninstall", kind)
	}
	if err := u.Uninstall(ctx); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	logger.Info("nftables table removed", "table", cfg.Firewall.Table)
	return nil
}
