package source

import (
	"time"

	"github.com/nxadm/tail/watch"
	"golang.org/x/sys/unix"
	"gopkg.in/tomb.v1"
)

// waker turns nxadm/tail's inotify watcher into plain wake-ups. It only makes
// us notice writes sooner: every decision (rotation, truncation) is made by
// comparing inode, size and fingerprint, and a poll ticker runs beside it, so
// a missed or absent inotify event costs latency, never lines.
type waker struct {
	path string
	c    chan struct{} // buffered 1: wake-ups coalesce
	// dead is closed by the forwarding goroutine once the watch is gone
	// (the file was renamed or deleted); nil when nothing is armed.
	dead chan struct{}
	t    *tomb.Tomb
	ok   bool // inotify usable at all
	used bool
}

func newWaker(path string) *waker {
	return &waker{path: path, c: make(chan struct{}, 1), ok: inotifyUsable()}
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

func (w *waker) poke() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// arm watches the file now at path, unless a watch is still live. nxadm/tail
// removes its watch before it reports a rename or delete, so re-arming only
// after that report never races its clean-up.
func (w *waker) arm() {
	if !w.ok {
		return
	}
	if w.dead != nil {
		select {
		case <-w.dead:
			w.dead = nil
		default:
			return
		}
	}
	t := new(tomb.Tomb)
	changes, err := watch.NewInotifyFileWatcher(w.path).ChangeEvents(t, 0)
	if err != nil {
		return // missing file or no watch left: the poll ticker covers it
	}
	w.used = true
	w.t = t
	dead := make(chan struct{})
	w.dead = dead
	go func() {
		defer close(dead)
		for {
			select {
			case <-changes.Modified:
				w.poke()
			case <-changes.Truncated:
				w.poke()
			case <-changes.Deleted:
				w.poke()
				return
			case <-t.Dying():
				return
			}
		}
	}()
}

// stop ends the watch and waits (bounded) until nxadm/tail's shared tracker
// has dropped it, so that a source restarted on the same path gets a fresh one.
func (w *waker) stop() {
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
