package control

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// AddrView is the daemon's view of one address: `smtpban show ADDR`.
type AddrView struct {
	Addr netip.Addr `json:"addr"`
	// Bans are the active bans covering the address (its own, a keyed or
	// widened prefix holding it), each with the lines that counted, as its
	// ban record keeps them.
	Bans []ShowBan `json:"bans"`
	// History is how often each prefix that holds the address (under some
	// jail's key, and the address itself) was banned, and when last.
	History []BanHistory `json:"history"`
	// Failures are the live failure windows counting the address, one per
	// jail, under the jail's key.
	Failures []Failures `json:"failures"`
}

// ShowBan is an active ban with its recorded lines.
type ShowBan struct {
	Ban
	Lines []string `json:"lines,omitempty"`
}

// BanHistory is a prefix's ban count, and the same per jail: a second
// jail's ban of an address banned already continues the first one's ban
// under its own name, and only this still shows both.
type BanHistory struct {
	Prefix netip.Prefix `json:"prefix"`
	Count  int          `json:"count"`
	Last   time.Time    `json:"last"`
	Jails  []JailBans   `json:"jails,omitempty"`
}

// JailBans is how often one jail banned a prefix, and when last.
type JailBans struct {
	Jail  string    `json:"jail"`
	Count int       `json:"count"`
	Last  time.Time `json:"last"`
}

// Failures is a jail's current failure window for a key.
type Failures struct {
	Jail     string       `json:"jail"`
	Key      netip.Prefix `json:"key"`
	Count    int          `json:"count"`
	MaxRetry int          `json:"maxretry"`
	FindTime string       `json:"findtime"`
	Times    []time.Time  `json:"times"`
}

// Shower is a Daemon that can show one address. It is separate from
// Daemon so that a daemon without it still serves the rest of the API.
type Shower interface {
	Show(ctx context.Context, a netip.Addr) (AddrView, error)
}

func (s *Server) show(r *http.Request) (any, error) {
	sh, ok := s.d.(Shower)
	if !ok {
		return nil, &httpError{http.StatusNotImplemented, "this daemon cannot show an address"}
	}
	a, err := netip.ParseAddr(r.URL.Query().Get("addr"))
	if err != nil {
		return nil, badRequest("addr: want an IP address: %v", err)
	}
	v, err := sh.Show(r.Context(), a.Unmap())
	if err != nil {
		return nil, err
	}
	v.Bans, v.History, v.Failures = nonNil(v.Bans), nonNil(v.History), nonNil(v.Failures)
	return v, nil
}

// Show returns the daemon's view of address a.
func (c *Client) Show(ctx context.Context, a netip.Addr) (AddrView, error) {
	var v AddrView
	err := c.do(ctx, http.MethodGet, "/show", url.Values{"addr": {a.String()}}, nil, &v)
	return v, err
}
