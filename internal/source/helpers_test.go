package source

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// skipOrFatal skips a test whose requirement is missing, except in CI,
// where everything is installed and a skip would hide a broken setup.
func skipOrFatal(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// running is a source running in the background, collecting its lines.
type running struct {
	t      *testing.T
	src    Source
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	lines  []Line
}

func runSource(t *testing.T, src Source) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, src: src, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- src.Run(ctx, func(b []Line) {
			r.mu.Lock()
			r.lines = append(r.lines, b...)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the source and waits for Run to return, failing on an error.
func (r *running) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("Run did not return after cancel")
	}
}

// toChan delivers batches to out, until ctx is done.
func toChan(ctx context.Context, out chan<- []Line) Deliver {
	return func(b []Line) {
		select {
		case out <- b:
		case <-ctx.Done():
		}
	}
}

func (r *running) got() []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.lines...)
}

// texts are the lines received, as read (Raw).
func (r *running) texts() []string {
	var s []string
	for _, l := range r.got() {
		s = append(s, l.Raw)
	}
	return s
}

// waitOpened waits until the file source has opened its file, and so
// chosen where it starts: a line written before that races with first
// sight, which starts at the end, and a sleep loses that race on a loaded
// machine. It fails after 20s.
func waitOpened(t *testing.T, src Source) {
	t.Helper()
	f := src.(*File)
	waitFor(t, func() bool { return f.Opened() != nil }, "the source to open its file")
}

// waitLines polls until at least n lines arrived; it fails after 20s.
func (r *running) waitLines(n int) []Line {
	r.t.Helper()
	waitFor(r.t, func() bool { return len(r.got()) >= n }, "%d lines (have %d)", n, func() int { return len(r.got()) })
	return r.got()
}

func waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				if f, ok := a.(func() int); ok {
					args[i] = f()
				}
			}
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
