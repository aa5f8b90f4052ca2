package source

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for Stats.Lag.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// lagWhileBlocked runs src with a Deliver that blocks until released;
// write makes one line appear. It returns Stats.Lag while the line waits
// in Deliver at the clock's time `at`; after Deliver returns it must
// fall back to 0.
func lagWhileBlocked(t *testing.T, src Source, c *clock, write func(), at time.Time) time.Duration {
	t.Helper()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func([]Line) {
			entered <- struct{}{}
			<-release
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if _, ok := src.(*File); ok {
		waitOpened(t, src) // the journal resumes from a cursor: nothing to wait for
	}
	write()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no line delivered")
	}
	c.set(at)
	blocked := src.Stats().Lag
	close(release)
	waitFor(t, func() bool { return src.Stats().Lag == 0 }, "lag back to 0 (is %v)", func() int { return int(src.Stats().Lag) })
	return blocked
}

// TestLagOneMeaning: for a file and for the journal, lag is how long the
// oldest line not yet passed on has waited: it grows while a line waits
// in Deliver and is 0 once everything is passed on.
func TestLagOneMeaning(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "mail.log")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		c := &clock{t: start}
		src := NewFile(FileConfig{Name: "mail", Path: path, Poll: 10 * time.Millisecond, Now: c.now, Logger: testLogger(t)})
		write := func() {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.WriteString("Dec  1 10:00:00 mx1 postfix/smtpd[1]: connect\n")
		}
		blocked := lagWhileBlocked(t, src, c, write, start.Add(time.Hour))
		if blocked != time.Hour {
			t.Errorf("lag while the line waits an hour in Deliver = %v, want 1h", blocked)
		}
	})
	t.Run("journal", func(t *testing.T) {
		needJournal(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "test.journal")
		writeJournal(t, path, ent(0, "x", "start"))
		// ent(10) is stamped 10s after ent's epoch; the clock reads an
		// hour later while it waits.
		stamp := time.Unix(1_700_000_010, 0)
		c := &clock{t: stamp}
		src := NewJournal(JournalConfig{Name: "journal", Files: []string{path}, Trust: root, Resume: []byte(cursors(t, path)[0]), Now: c.now, Logger: testLogger(t)})
		blocked := lagWhileBlocked(t, src, c, func() { writeJournal(t, path, ent(10, "x", "m")) }, stamp.Add(time.Hour))
		if blocked != time.Hour {
			t.Errorf("lag while the entry waits an hour in Deliver = %v, want 1h", blocked)
		}
	})
}
