// Package config loads smtpban's HCL configuration: the main file and the
// jail files it includes. Every problem is reported at once, each at its
// file:line:col.
package config

import (
	"net/netip"
	"time"

	"smtpban/internal/account"
	"smtpban/internal/logline"
	"smtpban/jails"
)

// DefaultPath is where smtpband and smtpban look for the config.
const DefaultPath = "/etc/smtpban/smtpban.hcl"

// Config is a loaded, validated configuration.
type Config struct {
	File     string   // the main file, as given
	Files    []string // every file loaded: the main file, then the included ones
	StateDir string
	Socket   string
	// SocketGroup, if set, makes the control socket 0660 with this group
	// (a name or a numeric gid), whose members may make changes; otherwise
	// the socket is 0600: only root and the daemon's own user may connect.
	SocketGroup string
	// Metrics is the host:port the Prometheus endpoint listens on; "" serves none.
	Metrics string
	// MaxWindows bounds the failure windows held (jails.DefaultMaxKeys
	// unless set): past it the one closest to expiry is dropped.
	MaxWindows int
	Ignore     []netip.Prefix // global ignore list (loopback is always ignored too)
	Sources    []Source
	Jails      []*jails.Jail // every jail, enabled or not
	Firewall   Firewall
	// Accounts is the account watch's configuration; nil (no account,
	// accounts or policy block) turns it off.
	Accounts *account.Settings
	// Policy is where the Postfix policy service listens: "host:port" or
	// "unix:/path"; "" serves none.
	Policy  string
	Cluster *Cluster // nil: no cluster block, bans stay on this host
}

// Source is a `source "file"|"journal" "NAME" {}` block.
type Source struct {
	Kind  string // "file" or "journal"
	Name  string
	Path  string   // file
	Match []string // journal: FIELD=value matches
	// Format is a file's layout (logline.Syslog, Dovecot, Exim).
	Format logline.Format
	// Trust (journal) are trusted-field matches, "_FIELD=value": an entry
	// is read only if it matches one. Trusted fields are set by journald
	// from the sender's credentials, not by the sender.
	Trust []string
	// journal: a directory or file of journal files instead of the system
	// journal (tests, and reading another machine's journal).
	Directory string
	Files     []string
}

// Firewall is the `firewall "dryrun"|"nftables" {}` block.
type Firewall struct {
	Kind        string // "dryrun" or "nftables"
	Table       string // nftables table name, default "smtpban" (family inet)
	Ports       []int  // default 25, 465, 587
	AllPorts    bool
	Reject      bool // reject with TCP reset instead of drop
	MinPrefixV4 int  // shortest IPv4 prefix ever added, default 16
	MinPrefixV6 int  // shortest IPv6 prefix ever added, default 32
	Resync      time.Duration
}
