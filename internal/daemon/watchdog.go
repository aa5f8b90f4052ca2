package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"smtpban/internal/source"
)

// The daemon tells systemd how it is through Options.Notify: READY=1 and
// STATUS= at start, WATCHDOG=1 while its loops are alive, RELOADING=1 and
// READY=1 around a reload, STOPPING=1 on the way out (sd_notify(3)).

func (d *Daemon) notify(state string) {
	if d.opts.Notify != nil {
		d.opts.Notify(state)
	}
}

// watchdog sends WATCHDOG=1 with a STATUS= line every WatchdogEvery, but
// only while the line path answers: a line loop that is wedged (a line
// that never finishes holding mu, a source stuck handing on a batch, a
// reload that never ends, a ban manager stuck in the firewall) stops the
// pings, and systemd restarts the daemon after WatchdogSec=.
func (d *Daemon) watchdog(ctx context.Context) error {
	every := d.opts.WatchdogEvery
	t := time.NewTicker(every)
	defer t.Stop()
	wedged := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// The probe may take half an interval: pings are then at most 1.5
		// intervals apart, well inside WatchdogSec= (two intervals).
		err := d.alive(ctx, every/2)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !wedged {
				d.log.Error("not pinging the systemd watchdog: the line path is stuck; systemd will restart smtpband", keyErr, err)
			}
			wedged = true
			continue
		}
		if wedged {
			d.log.Warn("line path answers again; pinging the systemd watchdog")
			wedged = false
		}
		d.notify("WATCHDOG=1\nSTATUS=" + d.statusLine())
	}
}

// alive checks, within timeout, that the line loop answers (and so is
// not waiting on a reload that never ends), that mu can be taken (no line
// is stuck in a jail), that no source has been handing on one batch for
// longer than timeout (its lines would wait on the ban manager) and that
// the ban manager answers.
func (d *Daemon) alive(ctx context.Context, timeout time.Duration) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	probe := make(chan struct{})
	select {
	case d.probe <- probe:
	case <-tctx.Done():
		return fmt.Errorf("line loop did not take a probe within %v", timeout)
	}
	select {
	case <-probe:
	case <-tctx.Done():
		return fmt.Errorf("line loop could not take the daemon's lock within %v", timeout)
	}
	now := d.now()
	d.mu.Lock()
	var stuck []string
	for _, s := range d.sources {
		if since := s.busy.since(); !since.IsZero() && now.Sub(since) > timeout {
			stuck = append(stuck, fmt.Sprintf("%s for %v", s.src.Name(), now.Sub(since).Round(time.Millisecond)))
		}
	}
	d.mu.Unlock()
	if len(stuck) > 0 {
		return fmt.Errorf("source handing on one batch of lines: %s", strings.Join(stuck, ", "))
	}
	// The ban manager makes the bans the lines decide: stuck there, the
	// line path would notice only once its queue is full.
	return d.bans.Alive(tctx)
}

// answerProbe is the line loop's side of alive: it takes mu as a line
// would.
func (d *Daemon) answerProbe(p chan struct{}) {
	d.mu.Lock()
	d.mu.Unlock() //nolint:staticcheck // taking it is the point
	close(p)
}

// busy records since when a source has been handing on a batch; zero
// while it reads.
type busy struct{ ns atomic.Int64 }

func (b *busy) start(now time.Time) { b.ns.Store(now.UnixNano()) }
func (b *busy) done()               { b.ns.Store(0) }

func (b *busy) since() time.Time {
	if ns := b.ns.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// statusLine is the one-line summary systemctl status shows: jails, bans
// in force, and the sources' worst lag. It reads what the line loop last
// published, never taking mu: a wedged line path must not also wedge
// whoever asks for the status.
func (d *Daemon) statusLine() string {
	bans := "? bans"
	if counts, err := d.store.ActiveBanCounts(d.now()); err == nil {
		n := 0
		for _, c := range counts {
			n += c
		}
		bans = plural(n, "ban")
	}
	var sum summary
	if p := d.summary.Load(); p != nil {
		sum = *p
	}
	var lag time.Duration
	for _, s := range sum.sources {
		lag = max(lag, s.Stats().Lag)
	}
	return fmt.Sprintf("%s, %s, %s, lag %v", plural(sum.jails, "jail"), bans, plural(len(sum.sources), "source"), lag.Round(time.Millisecond))
}

// summary is what statusLine needs from under mu.
type summary struct {
	jails   int // enabled
	sources []source.Source
}

// publishSummary refreshes the summary; the caller holds mu.
func (d *Daemon) publishSummary() {
	sum := &summary{}
	for _, j := range d.cfg.Jails {
		if j.Enabled {
			sum.jails++
		}
	}
	for _, s := range d.sources {
		sum.sources = append(sum.sources, s.src)
	}
	d.summary.Store(sum)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
