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
// history maps a prefix to its ban count and latest ban time;
// window-shards holds the checkpointed windows in a compact binary form,
// one key per (shard, jail) so that a checkpoint rewrites only the shards
// that changed (windows is the schema-1 form, read for upgrades); meta
// also keeps the key of the windows' user hashes; positions maps a source
// name to its opaque position.
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
	Lines    []string // the log line that tipped it (bans of older versions: every line of the window)
	Origin   string   // host that made the ban
	Count    int      // how many times this prefix has been banned, this one included
}

// Window is a jail's failure window for one key: its failures' times,
// oldest first, and their keyed user and password-fingerprint hashes
// (parallel to Times; nil or 0: none).
type Window struct {
	Jail   string
	Key    netip.Prefix
	Times  []time.Time
	Users  []uint32
	Passes []uint32
	// Lines are read only from a schema-1 database, which kept the lines
	// instead of hashes; they are no longer written.
	Lines []string
}

// Shard is the encoded windows (AppendWindows) of one shard of a jail.
// The shard number is the caller's: windows are saved and replaced a
// shard at a time, and read back all together.
type Shard struct {
	Jail  string
	N     uint16
	Value []byte // empty: the shard holds no window any more
}

// Checkpoint is what is saved in batches: read positions of the sources and
// the failure windows.
type Checkpoint struct {
	Positions map[string][]byte // source name -> opaque position
	// Shards are the shards of windows that changed since the last
	// checkpoint; the others stay as saved. With Replace, every saved
	// window is dropped first, and Shards are all of them.
	Shards  []Shard
	Replace bool
	// Windows, unless KeepWindows or Replace, is the complete set of
	// windows and replaces what was saved (Shards are then ignored): the
	// simple form, for tools and tests.
	Windows []Window
	// KeepWindows keeps the saved windows but for Shards: what the daemon
	// sets, with only the changed shards, or none when only positions
	// moved (most checkpoints: most lines match no jail).
	KeepWindows bool
}
