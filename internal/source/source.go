// Package source follows logs: files (rotation-safe, resumable) and the
// systemd journal, and hands their lines on with a position to resume from.
package source

import (
	"context"
	"time"

	"smtpban/internal/logline"
)

// MaxLineBytes is the longest line passed on; longer ones are skipped and counted.
const MaxLineBytes = 64 << 10

// Line is one log line, decoded: its Read is when it was read, or the
// journal's __REALTIME_TIMESTAMP when that is earlier.
type Line struct {
	Source string
	logline.Line
	// Pos is the opaque position just after this line: saving it and passing
	// it back on restart resumes with the next line.
	Pos []byte
}

// Stats are a source's counters and where it is.
type Stats struct {
	Read     uint64 // lines passed on
	Skipped  uint64 // lines skipped: too long, or (journal) from an untrusted sender
	Position string // human-readable: file offset and inode, or journal cursor
	Restarts uint64 // journalctl started again after it exited
	// Lag has one meaning for every source: how long the oldest line not
	// yet passed on has waited, 0 when all there is has been passed on.
	// A journal entry has waited since its timestamp; a file's line since
	// the source first found unread bytes. It grows while a batch waits in
	// Deliver.
	Lag time.Duration
}

// MaxBatch is the most lines one delivery carries.
const MaxBatch = 128

// Deliver takes a batch of lines, in order, and owns it from then on. It
// runs on the source's goroutine: while it runs, the source reads nothing,
// which is all the back-pressure there is.
type Deliver func(lines []Line)

// Opener is a source that can say where it started before it passed any
// line on (see File.Opened).
type Opener interface {
	Opened() []byte
}

// Source is a followed log.
type Source interface {
	Name() string
	// Run passes lines to deliver until ctx is done or the source fails for
	// good. Lines read together come in one call (at most MaxBatch) made
	// by Run's own goroutine: no hand-off to another goroutine per line or
	// per batch, which at a steady trickle of writes costs more than the
	// lines themselves.
	Run(ctx context.Context, deliver Deliver) error
	Stats() Stats
}
