package daemon

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"smtpban/firewall"
	"smtpban/internal/config"
	"smtpban/internal/metrics"
	"smtpban/internal/source"
	"smtpban/jails"
	"smtpban/state"
)

// startSources starts every source an enabled jail reads, resuming from the
// saved positions. The caller holds mu.
func (d *Daemon) startSources(parent context.Context) (context.CancelFunc, *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(parent)
	used := map[string]bool{}
	for _, j := range d.cfg.Jails {
		if j.Enabled {
			for _, s := range j.Sources {
				used[s] = true
			}
		}
	}
	d.sources = d.sources[:0]
	var wg sync.WaitGroup
	for _, sc := range d.cfg.Sources {
		if !used[sc.Name] {
			continue
		}
		src := d.newSource(sc)
		d.sources = append(d.sources, runningSource{kind: sc.Kind, src: src})
		// Lines are counted on the source's goroutine, under parent: a
		// reload stops the source, but lines it already read are counted
		// in full, with bans that the firewall still gets.
		deliver := func(b []source.Line) { d.handleLines(parent, b) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := src.Run(ctx, deliver); err != nil && ctx.Err() == nil {
				// A source that fails for good must not take the bans down
				// with it: log it, the others keep going.
				d.log.Error("source stopped", keySource, src.Name(), keyErr, err)
			}
		}()
	}
	return cancel, &wg
}

func (d *Daemon) newSource(sc config.Source) source.Source {
	logger := d.log.With(keySource, sc.Name)
	resume := d.positions[sc.Name]
	if sc.Kind == "journal" {
		return source.NewJournal(source.JournalConfig{
			Name: sc.Name, Match: sc.Match, Trust: sc.Trust, Directory: sc.Directory, Files: sc.Files,
			Resume: resume, Logger: logger, Now: d.now,
		})
	}
	return source.NewFile(source.FileConfig{Name: sc.Name, Path: sc.Path, Format: sc.Format, Resume: resume, Logger: logger, Now: d.now})
}

// lineLoop applies reloads: the sources count their lines themselves
// (handleLines), and are stopped, and waited for, before the jails change,
// so that switching sources cannot interleave with a line being counted.
func (d *Daemon) lineLoop(ctx context.Context, stop context.CancelFunc, done *sync.WaitGroup) error {
	defer func() {
		stop()
		done.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-d.reloadReq:
			// Once the old sources are done, every line they read is
			// counted and its position kept: the new ones start from
			// exactly there.
			stop()
			done.Wait()
			d.mu.Lock()
			err := d.applyConfig(req.cfg)
			stop, done = d.startSources(ctx)
			d.mu.Unlock()
			req.reply <- err
		}
	}
}

// handleLines counts a batch a line at a time: mu is taken per line, so
// control calls and checkpoints still get in between lines. On shutdown
// the rest of the batch is left: its positions are not kept either, so it
// is read again at the next start.
func (d *Daemon) handleLines(ctx context.Context, b []source.Line) {
	for _, l := range b {
		if ctx.Err() != nil {
			return
		}
		d.handleLine(ctx, l)
	}
}

func (d *Daemon) handleLine(ctx context.Context, l source.Line) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hits = d.matcher.Match(l.Source, &l.Line, d.hits[:0])
	for _, h := range d.hits {
		d.jailStats[h.Jail.Name].failures += uint64(h.Failures())
		if h.Failures() > 0 { // a successregex match is no failure
			d.metrics.Match(h.Jail.Name)
		}
		dec, ok := d.counter.Add(h)
		if !ok {
			continue
		}
		d.banDecision(ctx, dec)
	}
	d.positions[l.Source] = l.Pos
	d.dirty = true
}

// housekeeping checkpoints counters and positions, sweeps expired bans and
// keeps the firewall in line with state, every resyncEvery (the config's,
// read under mu by the caller: a reload may change it meanwhile).
func (d *Daemon) housekeeping(ctx context.Context, resyncEvery time.Duration) error {
	cp := time.NewTicker(d.opts.CheckpointEvery)
	defer cp.Stop()
	sweep := time.NewTicker(d.opts.SweepEvery)
	defer sweep.Stop()
	if resyncEvery <= 0 {
		resyncEvery = 10 * time.Second
	}
	resync := time.NewTicker(resyncEvery)
	defer resync.Stop()
	var changed <-chan struct{}
	if w, ok := d.fw.(firewall.Watcher); ok {
		changed = w.Watch(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cp.C:
			if err := d.checkpoint(); err != nil {
				d.log.Error("checkpoint", keyErr, err)
			}
		case <-sweep.C:
			d.sweep()
		case <-resync.C:
			d.doResync(ctx, "periodic")
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			d.doResync(ctx, "changed")
		}
	}
}

func (d *Daemon) doResync(ctx context.Context, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	added, removed, err := d.resync(ctx)
	d.metrics.Resync(why)
	if err != nil {
		d.metrics.FirewallError(metrics.OpResync)
		d.log.Error("firewall resync", "why", why, keyErr, err)
		return
	}
	if added+removed > 0 {
		d.log.Warn("firewall was out of step with state; restored", "why", why, "added", added, "removed", removed)
	}
}

// checkpoint saves positions and the changed shards of windows together,
// so that after a crash the lines past the saved position are counted
// once, on top of the saved windows. The shards are encoded under mu (a
// few KB each, only those that changed) and written outside it.
func (d *Daemon) checkpoint() error {
	d.mu.Lock()
	replace := d.replaceWindows
	var shards []state.Shard
	saved := 0
	d.counter.Changes(replace, func(jail string, n int, ws []jails.Window) {
		d.ckptWindows = d.ckptWindows[:0]
		for _, w := range ws {
			d.ckptWindows = append(d.ckptWindows, state.Window{Jail: w.Jail, Key: w.Key, Times: w.Times, Users: w.Users, Passes: w.Passes})
		}
		// Encoded in scratch, then copied at its exact size: under a flood
		// every shard changes, and the values live until the commit.
		d.ckptBuf = state.AppendWindows(d.ckptBuf[:0], d.ckptWindows)
		shards = append(shards, state.Shard{Jail: jail, N: uint16(n), Value: bytes.Clone(d.ckptBuf)})
		saved += len(d.ckptBuf)
	})
	if len(shards) == 0 && !replace && !d.dirty {
		d.mu.Unlock()
		return nil
	}
	pos := maps.Clone(d.positions)
	d.dirty, d.replaceWindows = false, false
	clear(d.ckptWindows[:cap(d.ckptWindows)]) // no pointers kept into the counter's scratch
	d.mu.Unlock()
	start := d.now()
	err := d.store.Checkpoint(state.Checkpoint{Positions: pos, Shards: shards, Replace: replace, KeepWindows: true})
	d.metrics.Checkpoint(d.now().Sub(start), err)
	if err != nil {
		// The changes drained from the counter are lost to this
		// checkpoint: the next one saves every window.
		d.mu.Lock()
		d.dirty, d.replaceWindows = true, true
		d.mu.Unlock()
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if saved >= bigCheckpoint {
		// A flood: the encoded shards and bbolt's copies of them are
		// garbage now, and the GC's goal was set while they were live;
		// without this the heap would stay at twice that until the
		// runtime's own scavenger gets to it, minutes later.
		debug.FreeOSMemory()
	}
	return nil
}

// bigCheckpoint is the size of saved windows past which a checkpoint
// gives memory back at once: 4 MiB is some 200k windows saved, which only
// a flood or the first checkpoint after start-up makes (5000 lines/s of
// mail traffic change a few hundred windows a second: a few hundred
// shards of a few dozen windows).
const bigCheckpoint = 4 << 20

func (d *Daemon) sweep() {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counter.Expire(now)
	for p, until := range d.allow {
		if !until.IsZero() && !until.After(now) {
			delete(d.allow, p)
			if err := d.store.DeleteAllow(p); err != nil {
				d.log.Error("forget expired allow entry", keyAddr, p, keyErr, err)
			}
		}
	}
	gone, err := d.store.Sweep(now)
	if err != nil {
		d.log.Error("sweep expired bans", keyErr, err)
		return
	}
	for _, b := range gone {
		d.metrics.Expired(b.Jail, b.Origin)
		d.log.Info("ban expired", keyJail, b.Jail, keyAddr, b.Prefix, keyFailures, b.Failures,
			keyUntil, b.Until.UTC().Format(time.RFC3339), keyOrigin, b.Origin)
	}
}

// Reload loads the config again and applies it without losing bans or
// counters. An invalid config is refused; the running one stays.
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, diags := config.Load(d.opts.ConfigPath)
	if diags.HasErrors() {
		d.metrics.Reload(diags)
		return fmt.Errorf("reload refused, the running config stays:\n%w", diags)
	}
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	req := reloadReq{cfg: cfg, reply: make(chan error, 1)}
	select {
	case d.reloadReq <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		d.metrics.Reload(err)
		if err == nil {
			d.log.Info("config reloaded", "jails", len(cfg.Jails))
			d.warnRestartOnly(old, cfg)
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
