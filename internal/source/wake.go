package source

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nxadm/tail/watch"
	"golang.org/x/sys/unix"
	"gopkg.in/tomb.v1"
)

// wake is what ended a wait.
type wake int

const (
	wakeWrite  wake = iota // only writes to the current file
	wakeLayout             // anything else: truncation, rename, delete, another file
	wakePoll               // nothing happened for the poll interval
)

// watcher wakes Run when the followed file changes, from nxadm/tail's
// inotify watch of the path. It only makes us notice changes sooner: every
// decision (rotation, truncation) is made by comparing inode, size and
// fingerprint, and Run also looks every poll interval, so a missed or
// absent inotify event costs latency, never lines.
type watcher struct {
	path string
	poll time.Duration
	ok   bool // inotify usable at all
	used bool // a watch was ever made: close waits for its clean-up
	// cur is the watch (see watchPath) of the file being read: writes
	// seen by any other watch need a look at the path.
	cur   int
	gen   int           // the live watch's number; 0: none yet
	dead  chan struct{} // closed once the live watch is gone; nil: none
	t     *tomb.Tomb
	c     chan struct{} // buffered 1: wake-ups coalesce
	write atomic.Int64  // number of the watch whose writes woke us, if writes alone
	// layout is set by any event but a write: the next wake is a layout one.
	layout atomic.Bool
	timer  *time.Timer
}

func newWatcher(ctx context.Context, path string, poll time.Duration) *watcher {
	t := time.NewTimer(poll)
	t.Stop()
	return &watcher{path: path, poll: poll, ok: inotifyUsable(), cur: -1, c: make(chan struct{}, 1), timer: t}
}

// inotifyUsable probes for an inotify instance first: nxadm/tail's shared
// tracker calls os.Exit when it cannot create one (instance limit reached).
func inotifyUsable() bool {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// watchPath watches the file now at path, unless a watch is still live, and
// returns the watch's number, or -1 when there is none. nxadm/tail removes
// its watch before it reports a rename or delete, so re-arming only after
// that report never races its clean-up.
func (w *watcher) watchPath() int {
	if !w.ok {
		return -1
	}
	if w.dead != nil {
		select {
		case <-w.dead:
			w.dead = nil
		default:
			return w.gen
		}
	}
	t := new(tomb.Tomb)
	changes, err := watch.NewInotifyFileWatcher(w.path).ChangeEvents(t, 0)
	if err != nil {
		return -1 // missing file or no watch left: polling covers it
	}
	w.used, w.t = true, t
	w.gen++
	gen := int64(w.gen)
	dead := make(chan struct{})
	w.dead = dead
	go func() {
		defer close(dead)
		for {
			select {
			case <-changes.Modified:
				w.poke(gen, false)
			case <-changes.Truncated:
				w.poke(gen, true)
			case <-changes.Deleted:
				w.poke(gen, true)
				return
			case <-t.Dying():
				return
			}
		}
	}()
	return w.gen
}

func (w *watcher) poke(gen int64, layout bool) {
	if layout {
		w.layout.Store(true)
	} else if old := w.write.Swap(gen); old != 0 && old != gen {
		w.layout.Store(true) // writes to two files since the last wait
	}
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// unwatch is a no-op: nxadm/tail drops a watch when its file is renamed or
// deleted, and watchPath makes a new one only then.
func (w *watcher) unwatch(int) {}

// wait blocks until the file changes, the poll interval passes or ctx is
// done (then ctx.Err() is set and the result does not matter).
func (w *watcher) wait(ctx context.Context) wake {
	w.timer.Reset(w.poll)
	defer w.timer.Stop()
	select {
	case <-ctx.Done():
		return wakePoll
	case <-w.timer.C:
		return wakePoll
	case <-w.c:
	}
	gen := w.write.Swap(0)
	if w.layout.Swap(false) || gen != int64(w.cur) {
		return wakeLayout
	}
	return wakeWrite
}

// close ends the watch and waits (bounded) until nxadm/tail's shared tracker
// has dropped it, so that a source restarted on the same path gets a fresh one.
func (w *watcher) close() {
	if w.t != nil {
		w.t.Kill(nil)
	}
	if !w.used {
		return
	}
	for range 1000 {
		if watch.Events(w.path) == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
