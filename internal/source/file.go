package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"smtpban/internal/logline"
	"sync/atomic"
	"syscall"
	"time"
)

// FileConfig describes a followed log file.
type FileConfig struct {
	Name string
	Path string
	// Resume is a Line.Pos from an earlier run; nil means first sight, which
	// starts at the end of the file.
	Resume []byte
	Logger *slog.Logger
	Now    func() time.Time
	// Poll is how often the file is checked even without an inotify event.
	Poll time.Duration
	// Format is the file's layout; lines are decoded with it as they are read.
	Format logline.Format
}

// File follows one log file across rotations and restarts. It reads the
// descriptor itself and keeps its own position (inode, offset after the last
// complete line, fingerprint of the first 256 bytes); nxadm/tail's inotify
// watch only wakes it up, and it also looks every poll interval.
//
//   - rename+create: the old descriptor is kept and read while the new file
//     is empty; once the new one has data the old one is drained to EOF
//     again and only then dropped. A second writer still writing to the old
//     file after that is not followed.
//   - copytruncate, truncate-then-grow: a file smaller than our offset, or
//     no longer starting with the bytes we saw, was rewritten. The rest of
//     the old content is read from a copy (name.1, name.0, name-*, not
//     compressed) that starts with the same bytes, then the file from 0.
//     A file rewritten with the very same first 256 bytes cannot be told
//     from an append.
//   - restart with Resume: the same file (inode, fingerprint, size) goes on
//     at the offset; otherwise the rotated file (same inode, or a copy with
//     the same fingerprint, under the names above, or else a gzip-compressed
//     one, name.N.gz or name-*.gz, whose content starts the same) is read
//     from the offset to its end, then the new file from its start. Without
//     a rotated file the new file is read from its start and the loss is
//     logged.
//   - first sight: the end of the file (the start of its last, unfinished
//     line); a file that appears after Run started is read from its start.
type File struct {
	name   string
	path   string
	resume []byte
	log    *slog.Logger
	now    func() time.Time
	poll   time.Duration
	format logline.Format

	read        atomic.Uint64
	skipped     atomic.Uint64
	opened      atomic.Pointer[[]byte] // the position the file was opened at
	posIno      atomic.Uint64
	posOff      atomic.Int64
	behindSince atomic.Int64 // unix nanoseconds; 0 when caught up
}

var _ Source = (*File)(nil)

// NewFile returns a source for cfg; nothing is opened before Run.
func NewFile(cfg FileConfig) *File {
	f := &File{
		name:   cfg.Name,
		path:   filepath.Clean(cfg.Path),
		resume: cfg.Resume,
		log:    cfg.Logger,
		now:    cfg.Now,
		poll:   cfg.Poll,
		format: cfg.Format,
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.poll <= 0 {
		f.poll = 250 * time.Millisecond
	}
	f.log = f.log.With("source", cfg.Name, "path", f.path)
	return f
}

// Name is the source's configured name.
func (f *File) Name() string { return f.name }

// Opened returns the position the source first opened its file at, nil
// before that. A source stopped before it passed any line on (a reload
// right after start) resumes from here, not from the end of the file,
// which would skip what was written meanwhile.
func (f *File) Opened() []byte {
	if p := f.opened.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats reports counters and the position after the last line passed on.
func (f *File) Stats() Stats {
	s := Stats{
		Read:     f.read.Load(),
		Skipped:  f.skipped.Load(),
		Position: fmt.Sprintf("%s inode %d offset %d", f.path, f.posIno.Load(), f.posOff.Load()),
	}
	if b := f.behindSince.Load(); b != 0 {
		s.Lag = f.now().Sub(time.Unix(0, b))
	}
	return s
}

// Run follows the file until ctx is done; it returns nil then. A missing file
// is waited for, never an error.
func (f *File) Run(ctx context.Context, deliver Deliver) error {
	r := &fileRun{File: f, deliver: deliver, wake: newWatcher(ctx, f.path, f.poll), curWd: -1}
	defer r.close()
	if err := r.start(ctx); err != nil {
		return stopped(ctx, err)
	}
	why := wakeLayout
	for {
		if err := r.step(ctx, why); err != nil {
			return stopped(ctx, err)
		}
		why = r.wake.wait(ctx)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// stopped turns the error of an interrupted send into a clean stop.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// fileRun is the state of one Run.
type fileRun struct {
	*File
	deliver Deliver
	wake    *watcher
	cur     *tailFile // nil while the file is missing
	// curWd is the number of the watch on cur (see watcher.watchPath), -1
	// for none.
	curWd int
	// lastLook is when step last compared the file at path with cur.
	lastLook time.Time
	batch    []Line // lines not sent yet
	posBuf   []byte // backing array of the batch's positions
	batchAt  time.Time
	lastIno  uint64 // where the batch's last line ends
	lastOff  int64
	// expect is how many lines the chunk being split still holds: the
	// size of a new batch.
	expect int
	// warnedMissing keeps a missing file to one warning until it appears.
	warnedMissing bool
}

func (r *fileRun) close() {
	if r.cur != nil {
		r.cur.f.Close()
	}
	r.wake.close()
}

// start opens the file at the resumed position, or at its end on first sight.
func (r *fileRun) start(ctx context.Context) error {
	fi, err := os.Stat(r.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("cannot stat log file; waiting for it", "err", err)
	}
	if r.resume == nil {
		if err != nil {
			return nil // step waits for it and reads it from the start
		}
		return r.open(lineStartBefore(r.path, fi.Size()))
	}
	p, perr := decodePos(r.resume)
	if perr != nil {
		r.log.Warn("saved position unreadable; starting at the end of the file", "err", perr)
		if err != nil {
			return nil
		}
		return r.open(fi.Size())
	}
	if err == nil && inode(fi) == p.Inode && fi.Size() >= p.Offset {
		if ok, _ := headHash(r.path, p.FPLen, p.FPHash); ok {
			return r.open(p.Offset)
		}
	}
	// The file was rotated or truncated while we were down: finish the old
	// one if a rotated name still holds it, then read the new one from its
	// start (step does that once cur is not the file at path).
	if old, name := findRotated(r.path, p); old != nil {
		r.log.Info("log rotated while stopped; reading the rest of the rotated file", "rotated", name, "position", p.String())
		r.cur = old
		return nil
	}
	if g := findCompressed(r.path, p); g != nil {
		r.log.Info("log rotated and compressed while stopped; reading the rest of the compressed file", "rotated", g.name, "position", p.String())
		cerr := r.catchUpCompressed(ctx, g, p)
		g.Close()
		if ctx.Err() != nil {
			return cerr
		}
		if cerr != nil {
			r.log.Warn("reading the compressed rotated file failed; the rest of it is lost", "rotated", g.name, "err", cerr)
		}
		if err != nil {
			return nil // step waits for the new file
		}
		return r.open(0)
	}
	r.log.Warn("log rotated or truncated while stopped and the old file was not found; lines written to it after the saved position are lost", "position", p.String())
	if err != nil {
		return nil
	}
	return r.open(0)
}

// open makes the file at path current, reading from off.
func (r *fileRun) open(off int64) error {
	tf, err := openTail(r.path, off)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	r.cur = tf
	r.posIno.Store(tf.ino)
	r.posOff.Store(off)
	if r.opened.Load() == nil {
		p := tf.pos().encode()
		r.opened.Store(&p)
	}
	r.curWd = r.wake.watchPath()
	r.wake.cur = r.curWd
	return nil
}

// step does everything one wake-up calls for: read what is new, notice a
// truncation, and switch to a new file once the old one is drained. After
// a wake-up by writes alone, the path is looked at only once per poll
// interval: a rotation wakes us up by itself (rename, unlink).
func (r *fileRun) step(ctx context.Context, why wake) error {
	if r.cur == nil {
		if _, err := os.Stat(r.path); err != nil {
			if !r.warnedMissing {
				r.log.Warn("log file missing; waiting for it to appear", "err", err)
				r.warnedMissing = true
			}
			return nil
		}
		// It appeared after we started: all of it is new.
		r.log.Info("log file appeared")
		r.warnedMissing = false
		if err := r.open(0); err != nil {
			return err
		}
		if r.cur == nil {
			return nil
		}
	}
	if err := r.drain(ctx, r.cur); err != nil {
		return err
	}
	now := time.Now() // not f.now: tests fake that one, this paces syscalls
	if why == wakeWrite && now.Sub(r.lastLook) < r.poll {
		return nil
	}
	r.lastLook = now
	pfi, err := os.Stat(r.path)
	if err != nil {
		if !r.warnedMissing {
			r.log.Warn("log file gone; still reading the open one and waiting for a new one", "err", err)
			r.warnedMissing = true
		}
		return nil
	}
	r.warnedMissing = false
	if inode(pfi) == r.cur.ino {
		// Re-armed if the watch was lost (out of watches at open, or
		// the file renamed away and back); a live one is kept.
		r.curWd = r.wake.watchPath()
		r.wake.cur = r.curWd
		return nil
	}
	// A new file is at path. Writers keep writing to the old one until they
	// reopen; once the new one has data the (single) writer has moved on, so
	// a last drain of the old descriptor gets everything it wrote there.
	if pfi.Size() == 0 {
		r.wake.watchPath() // its first write wakes us up
		return nil
	}
	if err := r.drain(ctx, r.cur); err != nil {
		return err
	}
	if err := r.flushPartial(ctx, r.cur); err != nil {
		return err
	}
	r.log.Info("log rotated; switching to the new file", "old_inode", r.cur.ino, "old_offset", r.cur.lineOff)
	r.cur.f.Close()
	r.cur = nil
	old := r.curWd
	r.curWd, r.wake.cur = -1, -1
	if err := r.open(0); err != nil {
		return err
	}
	if old != r.curWd {
		r.wake.unwatch(old)
	}
	if r.cur == nil {
		return nil
	}
	return r.drain(ctx, r.cur)
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
