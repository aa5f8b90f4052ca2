package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxEntryBytes bounds one JSON entry from journalctl. With --all an entry
// carries every field whole, so it may be far larger than its MESSAGE.
const maxEntryBytes = 4 << 20

// errNoJournalctl marks a journalctl that cannot be run at all: retrying
// will not help.
var errNoJournalctl = errors.New("journalctl cannot be run")

// maxBackoff caps the wait between journalctl restarts.
const maxBackoff = 30 * time.Second

// JournalConfig describes a followed systemd journal.
type JournalConfig struct {
	Name string
	// Match are journalctl matches, FIELD=value: the same field given twice
	// is ORed, different fields are ANDed, "+" separates ORed groups.
	Match []string
	// Directory and Files read other journals than the system's
	// (journalctl -D, --file); at most one of them.
	Directory string
	Files     []string
	// Trust are trusted-field matches, "_FIELD=value": only entries with
	// one of them are read (see trust). None: nothing is read.
	Trust []string
	// Resume is a Line.Pos (a journal cursor) from an earlier run; nil
	// means first sight: only entries that arrive from now on.
	Resume []byte
	Logger *slog.Logger
	Now    func() time.Time
	// Command is the journalctl binary; "journalctl" from PATH if empty.
	Command string
	// Backoff is the first wait before restarting journalctl after it
	// exited; it doubles on each exit up to 30s. 1s if zero.
	Backoff time.Duration
}

// Journal follows the journal through a `journalctl --follow -o json` child.
type Journal struct {
	cfg     JournalConfig
	log     *slog.Logger
	now     func() time.Time
	trust   trust
	read    atomic.Uint64
	skipped atomic.Uint64
	// behind is the timestamp (unix ns) of the entry being passed on, 0
	// once journalctl's output is read to its end: see Stats.Lag.
	behind   atomic.Int64
	restarts atomic.Uint64

	mu     sync.Mutex
	cursor string
}

var _ Source = (*Journal)(nil)

// NewJournal returns a source for cfg; nothing runs before Run.
func NewJournal(cfg JournalConfig) *Journal {
	j := &Journal{cfg: cfg, log: cfg.Logger, now: cfg.Now, cursor: string(cfg.Resume), trust: parseTrust(cfg.Trust)}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.cfg.Command == "" {
		j.cfg.Command = "journalctl"
	}
	if j.cfg.Backoff <= 0 {
		j.cfg.Backoff = time.Second
	}
	j.log = j.log.With("source", cfg.Name)
	if j.cursor != "" && !isCursor(j.cursor) {
		// A position of another kind, such as a file offset saved when
		// this source was a file of the same name: passed to journalctl
		// as a cursor it made every start fail, for good.
		j.log.Warn("saved position is not a journal cursor (was this source a file?); starting at the end of the journal")
		j.cursor = ""
	}
	return j
}

// isCursor reports whether s looks like a journal cursor
// ("s=...;i=...;b=...;m=...;t=...;x=..."): printable ASCII, fields k=v.
func isCursor(s string) bool {
	if !strings.HasPrefix(s, "s=") || !strings.Contains(s, ";i=") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Name is the source's configured name.
func (j *Journal) Name() string { return j.cfg.Name }

// Stats reports counters, the cursor after the last entry read and how old
// that entry was when it was read.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	cur := j.cursor
	j.mu.Unlock()
	s := Stats{
		Read:     j.read.Load(),
		Skipped:  j.skipped.Load(),
		Position: "cursor " + cur,
		Restarts: j.restarts.Load(),
	}
	if b := j.behind.Load(); b != 0 {
		s.Lag = max(0, j.now().Sub(time.Unix(0, b)))
	}
	return s
}

var matchRE = regexp.MustCompile(`^[A-Z0-9_]+=`)

func (j *Journal) validate() error {
	if j.cfg.Directory != "" && len(j.cfg.Files) > 0 {
		return fmt.Errorf("journal source %s: directory and files are exclusive", j.cfg.Name)
	}
	for _, m := range j.cfg.Match {
		if m != "+" && !matchRE.MatchString(m) {
			return fmt.Errorf("journal source %s: match %q: want FIELD=value with FIELD in A-Z, 0-9, _", j.cfg.Name, m)
		}
	}
	return nil
}

// args builds the journalctl command line. Without a cursor it starts at the
// end (--lines=0). With one it starts AT the cursor and the caller drops that
// entry: journalctl 252's --after-cursor skips one matching entry blindly, so
// when the cursor's own entry does not pass the matches (they were changed)
// the first new entry would be lost. --no-tail keeps --follow from showing
// only the last 10 entries after the cursor.
func (j *Journal) args(cursor string) ([]string, error) {
	args := []string{"--follow", "--merge", "--output=json", "--all", "--no-pager", "--quiet"}
	if cursor != "" {
		args = append(args, "--cursor="+cursor, "--no-tail")
	} else {
		args = append(args, "--lines=0")
	}
	// journalctl 252 cannot follow a --file given as a relative path.
	if j.cfg.Directory != "" {
		d, err := filepath.Abs(j.cfg.Directory)
		if err != nil {
			return nil, fmt.Errorf("journal directory %s: %w", j.cfg.Directory, err)
		}
		args = append(args, "--directory="+d)
	}
	for _, f := range j.cfg.Files {
		a, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("journal file %s: %w", f, err)
		}
		args = append(args, "--file="+a)
	}
	args = append(args, "--")
	return append(args, j.cfg.Match...), nil
}

// Run follows the journal until ctx is done (it returns nil then) or
// journalctl cannot be run at all. When journalctl exits it is restarted
// after a backoff from the last cursor read.
func (j *Journal) Run(ctx context.Context, deliver Deliver) error {
	if err := j.validate(); err != nil {
		return err
	}
	backoff := j.cfg.Backoff
	for {
		started := j.now()
		err := j.follow(ctx, deliver)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, errNoJournalctl) {
			return fmt.Errorf("journal source %s: %w", j.cfg.Name, err)
		}
		if j.now().Sub(started) > time.Minute {
			backoff = j.cfg.Backoff // it ran fine for a while: not a crash loop
		}
		j.log.Warn("journalctl exited; restarting from the last cursor", "err", err, "after", backoff, "cursor", j.Stats().Position)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		j.restarts.Add(1)
		backoff = min(2*backoff, maxBackoff)
	}
}

// follow runs journalctl once, until it exits or ctx is done.
func (j *Journal) follow(ctx context.Context, deliver Deliver) error {
	j.mu.Lock()
	cursor := j.cursor
	j.mu.Unlock()
	args, err := j.args(cursor)
	if err != nil {
		return err
	}
	cmd := exec.Command(j.cfg.Command, args...)
	// Its own process group, so that stopping it stops anything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("journalctl stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w: %w", errNoJournalctl, err)
		}
		return fmt.Errorf("start journalctl: %w", err)
	}
	j.log.Debug("journalctl started", "args", args, "pid", cmd.Process.Pid)
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-stop:
		}
		// Through os.Process (a pidfd): once Wait has reaped journalctl
		// this signals nothing, where kill(-pgid) could hit a process
		// that reused the id.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-stop:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
		}
	}()
	readErr := j.readOutput(ctx, bufio.NewReaderSize(stdout, 64<<10), deliver, cursor)
	// Whatever ended reading, journalctl goes too: kill the group, then reap
	// it (Wait also closes stdout, unblocking a journalctl stuck writing).
	select {
	case <-ctx.Done():
	default:
		if readErr != nil {
			cmd.Process.Signal(syscall.SIGTERM) // not reaped yet: Wait is below
		}
	}
	waitErr := cmd.Wait()
	close(stop)
	<-stopped
	if readErr != nil {
		return readErr
	}
	return fmt.Errorf("journalctl: %v: %s", waitErr, bytes.TrimSpace(stderr.Bytes()))
}

// readOutput passes on entries until journalctl's output ends; the entry at
// cursor, already passed on in an earlier run, is dropped.
func (j *Journal) readOutput(ctx context.Context, r *bufio.Reader, deliver Deliver, cursor string) error {
	var long []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) <= maxEntryBytes {
				long = append(long, chunk...)
			} else {
				long = append(long[:0], 'x') // marks it too long
			}
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read journalctl output: %w", err)
		}
		b := chunk
		if long != nil {
			if len(long) == 1 && long[0] == 'x' {
				j.skipped.Add(1)
				j.log.Warn("journal entry too large; skipped", "limit", maxEntryBytes)
				long = nil
				continue
			}
			b = append(long, chunk...)
			long = nil
		}
		if err := j.entry(ctx, b, deliver, cursor); err != nil {
			return err
		}
		if r.Buffered() == 0 {
			// All journalctl has written is passed on: caught up, as far
			// as we can see.
			j.behind.Store(0)
		}
	}
}

func (j *Journal) entry(ctx context.Context, b []byte, deliver Deliver, seen string) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	e, err := parseEntry(b, j.trust)
	if err != nil {
		j.skipped.Add(1)
		j.log.Warn("bad journal entry; skipped", "err", err)
		return nil
	}
	if seen != "" && e.Cursor == seen {
		return nil
	}
	if e.Cursor != "" {
		j.mu.Lock()
		j.cursor = e.Cursor
		j.mu.Unlock()
	}
	switch e.Skip {
	case "":
	case "empty":
		return nil
	default:
		j.skipped.Add(1)
		j.log.Debug("journal entry skipped", "why", e.Skip, "cursor", e.Cursor)
		return nil
	}
	now := j.now()
	if e.Time.IsZero() || e.Time.After(now) {
		e.Time = now
	}
	e.Line.Read = e.Time
	l := Line{Source: j.cfg.Name, Line: e.Line, Pos: []byte(e.Cursor)}
	j.read.Add(1)
	// Until deliver returns, this entry is the oldest not passed on.
	j.behind.Store(e.Time.UnixNano())
	deliver([]Line{l})
	return ctx.Err()
}

// tailBuffer keeps the last 4 KiB written to it: enough of journalctl's
// stderr to say why it exited.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 4096; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}
