// Package state keeps smtpband's durable state in bbolt: bans, ban history,
// failure windows and source positions. It knows nothing of jails or of the
// firewall.
//
// What a crash can lose:
//
//   - Bans lose nothing. PutBan, PutBans, DeleteBan and Sweep return only
//     after their transaction is committed and fsynced, so a ban is on disk
//     before it is applied to the firewall or reported.
//   - Failure windows and source positions are as old as the last
//     Checkpoint. The daemon checkpoints every second and at shutdown, so a
//     kill -9 forgets at most about a second of failure counts, which are
//     counted again when their lines are re-read. Positions and windows are
//     written in the same transaction and so always match: the lines after
//     a saved position are exactly the lines the saved windows have not
//     seen, and re-reading them counts nothing twice.
//
// Layout (schema version SchemaVersion, in bucket meta): bans maps a
// prefix's binary form to the ban (JSON); expiry holds one empty-valued key
// per expiring ban, big-endian Until then the prefix, for the sweeper;
// history maps a prefix to its ban count and latest ban time; windows
// holds the checkpointed windows in a compact binary form; positions maps
// a source name to its opaque position.
package state

import (
	"net/netip"
	"time"
)

// Ban is one active ban, keyed by its prefix (a single address is a /32 or
// /128 prefix).
type Ban struct {
	Prefix   netip.Prefix
	Jail     string
	Since    time.Time
	Until    time.Time
	Failures int
	Lines    []string // the log lines that caused it
	Origin   string   // host that made the ban
	Count    int      // how many times this prefix has been banned, this one included
}

// Window is a jail's failure window for one key.
type Window struct {
	Jail  string
	Key   netip.Prefix
	Times []time.Time
	Lines []string
}

// Checkpoint is what is saved in batches: read positions of the sources and
// the failure windows.
type Checkpoint struct {
	Positions map[string][]byte // source name -> opaque position
	Windows   []Window          // the complete set; replaces what was saved
	// KeepWindows leaves the saved windows as they are (Windows is
	// ignored): for a checkpoint where only positions moved, which is most
	// of them, since most lines match no jail.
	KeepWindows bool
}
