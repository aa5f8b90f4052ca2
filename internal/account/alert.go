package account

import (
	"net/netip"
	"time"
)

// Alert is a limit an account went over: kept in state, shown by `smtpban
// account show`, and given to the hook as JSON on stdin.
type Alert struct {
	Time      time.Time    `json:"time"`
	Host      string       `json:"host,omitempty"`
	User      string       `json:"user"`
	Limit     string       `json:"limit"` // e.g. messages_per_hour, guess_addresses
	Value     int          `json:"value"` // the figure that went over
	Max       int          `json:"max"`   // the limit
	Window    string       `json:"window"`
	Action    string       `json:"action"` // hold, defer, reject; "ban" for guessing
	Addresses []netip.Addr `json:"addresses"`
	Detail    string       `json:"detail,omitempty"`
}
