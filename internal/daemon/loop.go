package daemon

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/sdnotify"
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
	d.accountSources(used)
	d.sources = d.sources[:0]
	var wg sync.WaitGroup
	for _, sc := range d.cfg.Sources {
		if !used[sc.Name] {
			continue
		}
		src := d.newSource(sc)
		bz := &busy{}
		d.sources = append(d.sources, runningSource{kind: sc.Kind, src: src, busy: bz})
		// Lines are counted on the source's goroutine, under parent: a
		// reload stops the source, but lines it already read are counted
		// in full, with bans that the firewall still gets.
		deliver := func(b []source.Line) {
			bz.start(d.now())
			d.handleLines(parent, b)
			bz.done()
		}
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
	d.publishSummary()
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
		case p := <-d.probe:
			d.answerProbe(p)
		case req := <-d.reloadReq:
			// Once the old sources are done, every line they read is
			// counted and its position kept: the new ones start from
			// exactly there.
			stop()
			done.Wait()
			d.mu.Lock()
			d.keepOpenedPositions()
			err := d.applyConfig(req.cfg)
			stop, done = d.startSources(ctx)
			d.mu.Unlock()
			req.reply <- err
		}
	}
}

// keepOpenedPositions gives a stopped source that passed no line on the
// position it opened at, so that its successor does not start at the end
// and skip what was written meanwhile. The caller holds mu.
func (d *Daemon) keepOpenedPositions() {
	for _, s := range d.sources {
		if d.positions[s.src.Name()] != nil {
			continue
		}
		if o, ok := s.src.(source.Opener); ok {
			if p := o.Opened(); p != nil {
				d.positions[s.src.Name()] = p
			}
		}
	}
}

// handleLines counts a batch a line at a time: mu is taken per line, so
// control calls and checkpoints still get in between lines. The bans the
// batch decided go to the ban manager together, after it: the line path
// never waits for a disk or the kernel. On shutdown the rest of the batch
// is left: its positions are not kept either, so it is read again at the
// next start.
func (d *Daemon) handleLines(ctx context.Context, b []source.Line) {
	var decided []jails.Decision
	var seq uint64
	for _, l := range b {
		if ctx.Err() != nil {
			break
		}
		decided, seq = d.handleLine(l, decided, seq)
	}
	if len(decided) > 0 {
		d.bans.Submit(seq, decided)
	}
}

// handleLine counts one line and appends the bans it decides to decided;
// seq is the number of the last decision (see checkpoint).
func (d *Daemon) handleLine(l source.Line, decided []jails.Decision, seq uint64) ([]jails.Decision, uint64) {
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
		// (Add has dropped the window.) The manager bans, keeps the
		// decision until state takes it, or says why it will not.
		decided = append(decided, dec)
		d.decided++
		seq = d.decided
	}
	d.accountLine(&l)
	d.positions[l.Source] = l.Pos
	d.dirty = true
	return decided, seq
}

// housekeeping checkpoints counters and positions and expires old
// windows; the ban manager sweeps, retries and resyncs on its own.
func (d *Daemon) housekeeping(ctx context.Context) error {
	cp := time.NewTicker(d.opts.CheckpointEvery)
	defer cp.Stop()
	sweep := time.NewTicker(d.opts.SweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cp.C:
			if err := d.checkpoint(); err != nil {
				d.log.Error("checkpoint", keyErr, err)
			}
		case <-sweep.C:
			d.mu.Lock()
			d.counter.Expire(d.now())
			d.mu.Unlock()
		}
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
			d.ckptWindows = append(d.ckptWindows, toState(w))
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
	seq := d.decided
	d.dirty, d.replaceWindows = false, false
	clear(d.ckptWindows[:cap(d.ckptWindows)]) // no pointers kept into the counter's scratch
	d.mu.Unlock()
	// The lines up to pos decided bans up to seq: save pos only once
	// those are made, or a crash in between would lose them for good.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := d.bans.Wait(ctx, seq)
	cancel()
	if err != nil {
		d.mu.Lock()
		d.dirty, d.replaceWindows = true, true
		d.mu.Unlock()
		return fmt.Errorf("save checkpoint: bans still being made: %w", err)
	}
	start := d.now()
	err = d.store.Checkpoint(state.Checkpoint{Positions: pos, Shards: shards, Replace: replace, KeepWindows: true})
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
	d.notify(sdnotify.Reloading())
	// Whatever happens, systemd hears the reload is over.
	defer func() { d.notify("READY=1\nSTATUS=" + d.statusLine()) }()
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
