// Package journalstream writes slog records the way journald's stdout
// stream reads them: each line starts with its syslog priority ("<3>" for
// an error, sd-daemon(3)), so that `journalctl -p err` finds the errors.
// The record itself is the text or JSON handler's, attributes and all.
package journalstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// Connected reports whether f is the journal's stream: systemd sets
// $JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected stdout and
// stderr to, and a process whose stderr was redirected elsewhere since
// (a shell's 2>file) must not prefix its lines (systemd.exec(5)).
func Connected(f *os.File) bool {
	env := os.Getenv("JOURNAL_STREAM")
	if env == "" {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); n != 2 || err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// Priority is the syslog priority of a slog level: debug 7, info 6, warn
// 4, error 3; levels between take the lower one's.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// NewHandler returns a handler that writes what build's handler writes
// to w, each record prefixed with its priority. build gets the writer to
// write to; slog's text and JSON handlers write a record in one Write,
// on one line, which is what makes the prefix land on the right line.
func NewHandler(w io.Writer, build func(io.Writer) slog.Handler) slog.Handler {
	pw := &prefixWriter{w: w}
	return &handler{inner: build(pw), w: pw}
}

type handler struct {
	inner slog.Handler
	w     *prefixWriter // shared by the handlers derived with With...
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	// The priority is set and the record written under one lock: another
	// goroutine's record cannot take this one's prefix.
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prio = Priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{inner: h.inner.WithAttrs(as), w: h.w}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{inner: h.inner.WithGroup(name), w: h.w}
}

// prefixWriter writes "<prio>" and then p in one write: journald reads a
// line as one entry.
type prefixWriter struct {
	mu   sync.Mutex // held by Handle around the inner handler's Write
	w    io.Writer
	prio int
	buf  []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf[:0], '<', byte('0'+p.prio), '>')
	p.buf = append(p.buf, b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// DropTime is a ReplaceAttr for handlers writing to the journal, which
// stamps every entry itself.
func DropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
