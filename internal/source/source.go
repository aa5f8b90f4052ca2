// Package source follows logs: files (rotation-safe, resumable) and the
// systemd journal, and hands their lines on with a position to resume from.
package source

import (
	"context"
	"time"
)

// MaxLineBytes is the longest line passed on; longer ones are skipped and counted.
const MaxLineBytes = 64 << 10

// Line is one log line.
type Line struct {
	Source string
	Text   string
	Time   time.Time // when read, or the journal's __REALTIME_TIMESTAMP
	// Pos is the opaque position just after this line: saving it and passing
	// it back on restart resumes with the next line.
	Pos []byte
}

// Stats are a source's counters and where it is.
type Stats struct {
	Read     uint64 // lines passed on
	Skipped  uint64 // lines skipped: too long, invalid UTF-8, binary
	Position string // human-readable: file offset and inode, or journal cursor
	Lag      time.Duration
}

// Source is a followed log.
type Source interface {
	Name() string
	// Run sends lines to out until ctx is done or the source fails for good.
	Run(ctx context.Context, out chan<- Line) error
	Stats() Stats
}
