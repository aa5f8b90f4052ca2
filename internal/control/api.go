// Package control is smtpband's control API: versioned JSON over HTTP on a
// Unix socket, the server side (which checks the caller's credentials) and
// the client used by the smtpban command.
package control

import (
	"context"
	"net/netip"
	"time"
)

// APIVersion prefixes every path: /v1/status, /v1/bans, ...
const APIVersion = "v1"

// Status is the answer to GET /v1/status.
type Status struct {
	Version  string         `json:"version"`
	Started  time.Time      `json:"started"`
	Uptime   string         `json:"uptime"`
	Firewall string         `json:"firewall"` // "nftables" or "dryrun"
	Jails    []JailStatus   `json:"jails"`
	Sources  []SourceStatus `json:"sources"`
	State    *StateStatus   `json:"state,omitempty"`   // see backup.go
	Cluster  *ClusterStatus `json:"cluster,omitempty"` // nil: no shared ban list
}

// ClusterStatus is the shared ban list as this host sees it.
type ClusterStatus struct {
	Host      string   `json:"host"`
	Endpoints []string `json:"endpoints"`
	Connected bool     `json:"connected"`
	Revision  int64    `json:"revision"`
	Queued    int      `json:"queued"` // changes waiting to be published
	LastError string   `json:"last_error,omitempty"`
}

// LocalUnbanner is a Daemon that can lift bans on its host only, leaving
// them in the shared ban list (`smtpban unban -local`).
type LocalUnbanner interface {
	UnbanLocal(ctx context.Context, p netip.Prefix, jail string, all bool) ([]Ban, error)
}

// JailStatus is one jail's counters.
type JailStatus struct {
	Name          string   `json:"name"`
	Enabled       bool     `json:"enabled"`
	Failing       int      `json:"failing"`        // keys with failures in the window now
	TotalFailures uint64   `json:"total_failures"` // since start
	Banned        int      `json:"banned"`         // active bans now
	TotalBanned   uint64   `json:"total_banned"`   // since start
	BannedList    []string `json:"banned_list,omitempty"`
}

// SourceStatus is one log source's counters.
type SourceStatus struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Position string `json:"position"`
	Lag      string `json:"lag"`
	Read     uint64 `json:"read"`
	Skipped  uint64 `json:"skipped"`
}

// Ban is one active ban as the API shows it.
type Ban struct {
	Prefix   netip.Prefix `json:"prefix"`
	Jail     string       `json:"jail"`
	Since    time.Time    `json:"since"`
	Until    time.Time    `json:"until"`
	Count    int          `json:"count"` // times this prefix has been banned
	Failures int          `json:"failures"`
	Origin   string       `json:"origin"`
	Line     string       `json:"line,omitempty"` // the log line that tipped it
}

// Allow is an entry on the runtime ignore list.
type Allow struct {
	Prefix netip.Prefix `json:"prefix"`
	Until  time.Time    `json:"until,omitzero"` // zero = permanent
}

// Daemon is what the control server needs from smtpband. Methods that
// change something are only called after the caller's credentials passed.
type Daemon interface {
	Status(ctx context.Context, jail string) (Status, error)
	Bans(ctx context.Context, jail string) ([]Ban, error)
	// Ban bans p now; jail "" means "manual"; d 0 means the jail's bantime (1h for manual).
	Ban(ctx context.Context, p netip.Prefix, jail string, d time.Duration) (Ban, error)
	// Unban lifts bans on p (an address lifts any prefix ban containing it
	// too), in jail if not ""; all lifts every ban. It returns what it lifted.
	Unban(ctx context.Context, p netip.Prefix, jail string, all bool) ([]Ban, error)
	Allow(ctx context.Context, p netip.Prefix, d time.Duration) (lifted []Ban, err error)
	AllowList(ctx context.Context) ([]Allow, error)
	AllowRemove(ctx context.Context, p netip.Prefix) (bool, error)
	// Reload re-reads the config; on error the running config stays and
	// the error carries the diagnostics.
	Reload(ctx context.Context) error
}
