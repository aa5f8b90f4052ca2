package source

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWatcherWakes checks what ends a wait: a write to the watched file
// alone may skip the look at the path; a rename may not.
func TestWatcherWakes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	appendFile(t, path, "a\n")
	const poll = time.Hour // a poll wake-up here would be a wrong answer
	w := newWatcher(t.Context(), path, poll)
	defer w.close()
	if !w.ok {
		skipOrFatal(t, "no inotify instance")
	}
	if w.cur = w.watchPath(); w.cur < 0 {
		t.Fatal("no watch on an existing file")
	}
	appendFile(t, path, "b\n")
	if got := w.wait(t.Context()); got != wakeWrite {
		t.Errorf("after a write: wake %d, want %d (write)", got, wakeWrite)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if got := w.wait(t.Context()); got != wakeLayout {
		t.Errorf("after a rename: wake %d, want %d (layout)", got, wakeLayout)
	}
}

// TestWatcherStops checks that a cancelled context ends a wait at once,
// not at the next poll.
func TestWatcherStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	appendFile(t, path, "a\n")
	ctx, cancel := context.WithCancel(t.Context())
	w := newWatcher(ctx, path, time.Hour)
	defer w.close()
	w.cur = w.watchPath()
	done := make(chan wake, 1)
	go func() { done <- w.wait(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return after cancel")
	}
}

// TestPreadAt checks that a read is short only at the end of the file and
// returns the file's bytes, from the page cache or not.
func TestPreadAt(t *testing.T) {
	for _, cold := range []bool{false, true} {
		t.Run(map[bool]string{false: "cached", true: "cold"}[cold], func(t *testing.T) { testPreadAt(t, cold) })
	}
}

func testPreadAt(t *testing.T, cold bool) {
	path := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tf := &tailFile{f: f, name: path}
	for _, tc := range []struct {
		off  int64
		size int
		want int
	}{
		{0, 100, 100},
		{0, len(data), len(data)},
		{0, len(data) + 10, len(data)},
		{70000, 65536, 10000},
		{int64(len(data)), 10, 0},
		{int64(len(data)) + 5, 10, 0},
	} {
		if cold {
			// Written back, then dropped: RWF_NOWAIT finds nothing cached.
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
		}
		b := make([]byte, tc.size)
		n, err := tf.pread(b, tc.off)
		if err != nil || n != tc.want {
			t.Errorf("pread(%d bytes at %d) = %d, %v; want %d", tc.size, tc.off, n, err, tc.want)
			continue
		}
		if !bytes.Equal(b[:n], data[min(tc.off, int64(len(data))):min(tc.off, int64(len(data)))+int64(n)]) {
			t.Errorf("pread(%d bytes at %d): wrong bytes", tc.size, tc.off)
		}
	}
}
