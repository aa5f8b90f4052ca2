package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJournalDropsFilePosition: a source switched from file to journal
// under the same name (the shipped config offers both) finds a file
// offset saved as its position. Passed to journalctl as a cursor it made
// every start fail, for good; it is dropped, and the journal is read from
// its end.
func TestJournalDropsFilePosition(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" >>"+argsFile+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	j := NewJournal(JournalConfig{
		Name: "mail", Command: script, Backoff: 50 * time.Millisecond,
		Trust:  []string{"_SYSTEMD_UNIT=postfix@-.service"},
		Resume: filePos{Inode: 1234, Offset: 5678, FPLen: 10, FPHash: 99}.encode(),
	})
	if err := j.Run(ctx, func([]Line) {}); err != nil {
		t.Fatal(err)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatalf("journalctl never ran: %v", err)
	}
	if strings.Contains(string(args), "--cursor") {
		t.Errorf("journalctl was given a file position as its cursor:\n%s", args)
	}
	if !strings.Contains(string(args), "--lines=0") {
		t.Errorf("journalctl does not start at the end:\n%s", args)
	}
}

// TestFileOpenedPosition: a file source stopped before it passed any line
// on (a reload right after start) says where it opened the file, and a
// source resumed there reads what was written meanwhile; without it, the
// successor started at the end and skipped those lines.
func TestFileOpenedPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, []byte("Nov 24 00:00:00 mx1 app[1]: before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := NewFile(FileConfig{Name: "mail", Path: path, Poll: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, func(ls []Line) { t.Errorf("first source passed on %d lines", len(ls)) }) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.Opened() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the source never opened the file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("Nov 24 00:00:01 mx1 app[1]: written while reloading\n")
	fh.Close()

	f2 := NewFile(FileConfig{Name: "mail", Path: path, Poll: 10 * time.Millisecond, Resume: f.Opened()})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	got := make(chan string, 4)
	go f2.Run(ctx2, func(ls []Line) {
		for _, l := range ls {
			got <- l.Message
		}
	})
	select {
	case m := <-got:
		if m != "written while reloading" {
			t.Errorf("first line after the reload: %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the line written between start and reload was skipped")
	}
}

// TestJournalNoSignalAfterReap: once journalctl has exited and been
// reaped, nothing is signalled in its name. The reader used to send
// SIGTERM to journalctl's process group after the reap: a process that
// got that group id (or, as here, one left in the group) was hit.
func TestJournalNoSignalAfterReap(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	script := filepath.Join(dir, "journalctl")
	// A child left behind in journalctl's group stands for whatever holds
	// the group id once journalctl is gone.
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 30 </dev/null >/dev/null 2>&1 &\necho $! >"+pidFile+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := NewJournal(JournalConfig{Name: "mail", Command: script, Backoff: time.Hour, Trust: []string{"_UID=0"}})
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx, func([]Line) {}) }()
	var pid int
	deadline := time.Now().Add(5 * time.Second)
	for pid == 0 {
		if time.Now().After(deadline) {
			t.Fatal("journalctl never ran")
		}
		time.Sleep(10 * time.Millisecond)
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 1 {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// journalctl has exited; Run waits out its backoff. Then stop it.
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	// Gone, or a zombie nobody reaped (a container's init may not): killed.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if f := strings.Fields(string(stat)); err != nil || len(f) < 3 || f[2] == "Z" {
		t.Errorf("the process left in journalctl's group was signalled after journalctl was reaped (stat %q, %v)", stat, err)
	}
}
