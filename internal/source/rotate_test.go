package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWriter appends numbered lines to a log file from its own goroutine,
// like a daemon would, until stopped; the test rotates under it.
type lineWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
	next int // number of the next line written
	stop chan struct{}
	done chan struct{}
}

func startWriter(t *testing.T, path string) *lineWriter {
	t.Helper()
	w := &lineWriter{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	w.reopen(t)
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *lineWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		w.mu.Lock()
		fmt.Fprintf(w.f, "line %06d\n", w.next)
		w.next++
		w.mu.Unlock()
		time.Sleep(20 * time.Microsecond)
	}
}

// reopen points the writer at whatever file is at path now, as a daemon does
// on SIGHUP after logrotate's rename.
func (w *lineWriter) reopen(t *testing.T) {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	if w.f != nil {
		w.f.Close()
	}
	w.f = f
	w.mu.Unlock()
}

func (w *lineWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

func (w *lineWriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	w.f.Close()
	w.mu.Unlock()
}

// lineNumbers parses the received lines, failing on anything unexpected.
func texts(lines []Line) []string {
	s := make([]string, 0, len(lines))
	for _, l := range lines {
		s = append(s, l.Raw)
	}
	return s
}

func lineNumbers(t *testing.T, lines []Line) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for _, l := range lines {
		n, err := strconv.Atoi(strings.TrimPrefix(l.Raw, "line "))
		if err != nil || !strings.HasPrefix(l.Raw, "line ") {
			t.Fatalf("unexpected line %q", l.Raw)
		}
		seen[n]++
	}
	return seen
}

func TestFileRotationWhileWriting(t *testing.T) {
	type window struct{ from, to int } // lines that logrotate itself may lose
	tests := []struct {
		name string
		// rotate rotates the file once while w keeps writing and returns
		// the window of lines allowed to be lost (empty when none).
		rotate func(t *testing.T, w *lineWriter, r *running) window
	}{
		{"rename and create", func(t *testing.T, w *lineWriter, r *running) window {
			os.Remove(w.path + ".1")
			if err := os.Rename(w.path, w.path+".1"); err != nil {
				t.Fatal(err)
			}
			// The writer goes on writing to the renamed file until it reopens.
			time.Sleep(30 * time.Millisecond)
			if err := os.WriteFile(w.path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Millisecond)
			w.reopen(t)
			return window{}
		}},
		{"copytruncate", func(t *testing.T, w *lineWriter, r *running) window {
			from := w.written() // lines before this were written before the copy
			copyFile(t, w.path, w.path+".1")
			if err := os.Truncate(w.path, 0); err != nil {
				t.Fatal(err)
			}
			return window{from, w.written()}
		}},
		{"truncate then grow", func(t *testing.T, w *lineWriter, r *running) window {
			// A writer that starts its file over: it stops, and only once
			// every line so far has been read is the file cut, so that any
			// loss is ours. It then grows past the old size in one write.
			w.mu.Lock()
			defer w.mu.Unlock()
			waitFor(t, func() bool { return len(r.got()) >= w.next }, "reader to catch up")
			if err := w.f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for range 3000 {
				fmt.Fprintf(&b, "line %06d\n", w.next)
				w.next++
			}
			if _, err := w.f.WriteString(b.String()); err != nil {
				t.Fatal(err)
			}
			return window{}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			r := runSource(t, newTestFile(t, path, nil))
			waitOpened(t, r.src)
			w := startWriter(t, path)
			var windows []window
			for range 3 {
				time.Sleep(100 * time.Millisecond)
				windows = append(windows, tc.rotate(t, w, r))
			}
			time.Sleep(100 * time.Millisecond)
			w.halt()
			total := w.written()
			inWindow := func(n int) bool {
				for _, win := range windows {
					if n >= win.from && n < win.to {
						return true
					}
				}
				return false
			}
			mustHave := 0
			for n := range total {
				if !inWindow(n) {
					mustHave++
				}
			}
			waitFor(t, func() bool {
				seen := lineNumbers(t, r.got())
				for n := range total {
					if !inWindow(n) && seen[n] == 0 {
						return false
					}
				}
				return true
			}, "all %d lines outside the copytruncate windows", mustHave)
			time.Sleep(5 * testPoll) // late duplicates would show up now
			seen := lineNumbers(t, r.got())
			lostInWindow, windowSize := 0, 0
			for n := range total {
				if inWindow(n) {
					windowSize++
					if seen[n] == 0 {
						lostInWindow++
					}
				}
			}
			for n, c := range seen {
				if c > 1 {
					t.Errorf("line %d received %d times", n, c)
				}
				if n >= total {
					t.Errorf("line %d received, only %d written", n, total)
				}
			}
			t.Logf("%d lines written, %d received, %d rotations; copytruncate windows %v: %d lines in them, %d of those lost",
				total, len(seen), len(windows), windows, windowSize, lostInWindow)
		})
	}
}

// TestFileRewrittenWhileBehind rewrites the file while the reader is behind
// (its consumer blocked, so it cannot notice in time): by copytruncate with
// more than a read chunk unread, whose rest must come from the copy, and by
// truncate-then-grow past the old size within one chunk, which only the
// fingerprint can tell from an append.
func TestFileRewrittenWhileBehind(t *testing.T) {
	tests := []struct {
		name    string
		before  int // lines in the file before the rewrite
		rewrite func(t *testing.T, path string)
		after   int // lines written after it
		// oldPrefix allows the old lines to end early (no copy to read
		// from); new lines must all arrive.
		oldPrefix bool
	}{
		{"copytruncate", 60000, func(t *testing.T, path string) {
			copyFile(t, path, path+".1")
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, 10, false},
		{"truncate then grow", 1000, func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, 3000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			src := newTestFile(t, path, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan []Line) // unbuffered: the reader blocks on every batch
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, toChan(ctx, out)) }()
			waitOpened(t, src)
			appendFile(t, path, numbered(0, tc.before))
			got := texts(<-out) // the reader is now mid-file: more than one batch was read
			tc.rewrite(t, path)
			appendFile(t, path, numbered(tc.before, tc.before+tc.after))
			newLines := strings.Split(strings.TrimSuffix(numbered(tc.before, tc.before+tc.after), "\n"), "\n")
			timeout := time.After(20 * time.Second)
			for len(got) == 0 || got[len(got)-1] != newLines[len(newLines)-1] {
				select {
				case b := <-out:
					got = append(got, texts(b)...)
				case <-timeout:
					t.Fatalf("got %d lines, last %q", len(got), got[len(got)-1])
				}
			}
			old := strings.Split(strings.TrimSuffix(numbered(0, tc.before), "\n"), "\n")
			nOld := len(got) - len(newLines)
			if nOld < 1 || (!tc.oldPrefix && nOld != len(old)) {
				t.Fatalf("got %d old lines of %d, then %d", nOld, len(old), len(got)-nOld)
			}
			if !slices.Equal(got[:nOld], old[:nOld]) || !slices.Equal(got[nOld:], newLines) {
				for i := range got {
					if i >= nOld && got[i] != newLines[i-nOld] || i < nOld && got[i] != old[i] {
						t.Fatalf("line %d = %q is not in order (%d old lines)", i, got[i], nOld)
					}
				}
			}
			t.Logf("%d of %d old lines, all %d new ones", nOld, len(old), len(newLines))
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}
