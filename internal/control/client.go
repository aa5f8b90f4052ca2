package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"time"
)

// Client talks to smtpband over its control socket. Its methods mirror
// Daemon, so a Client is a Daemon too.
type Client struct {
	path string
	hc   *http.Client
}

var _ Daemon = (*Client)(nil)

// baseURL is a placeholder host: the transport always dials the socket.
const baseURL = "http://smtpband/" + APIVersion

// maxResponse bounds an answer; a status with thousands of bans is well
// under this.
const maxResponse = 64 << 20

// NewClient returns a client for the daemon listening at socketPath.
func NewClient(socketPath string) *Client {
	c := &Client{path: socketPath}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext:       c.dial,
		DisableKeepAlives: true, // one command, one or two requests
	}}
	return c
}

// SocketPath is the socket the client connects to.
func (c *Client) SocketPath() string { return c.path }

func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err == nil {
		return conn, nil
	}
	if fi, serr := os.Stat(c.path); serr == nil && fi.Mode().Type() != os.ModeSocket {
		return nil, &notRunningError{fmt.Sprintf("smtpband is not running (%s is not a socket)", c.path), ErrNotRunning}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &notRunningError{fmt.Sprintf("smtpband is not running (no socket at %s)", c.path), ErrNotRunning}
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &notRunningError{fmt.Sprintf("smtpband is not running (nothing answers at %s)", c.path), ErrNotRunning}
	case errors.Is(err, fs.ErrPermission):
		return nil, &notRunningError{fmt.Sprintf("permission denied: cannot connect to %s: run as root or as a member of the socket's group", c.path), ErrPermission}
	}
	return nil, fmt.Errorf("connect to smtpband at %s: %w", c.path, err)
}

// do sends a request with an optional JSON body and decodes a 2xx answer
// into out; other answers become an *APIError.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := baseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// Not running and permission denied read best without the URL.
		var nr *notRunningError
		if errors.As(err, &nr) {
			return nr
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var er ErrorResponse
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &APIError{Status: resp.StatusCode, Message: er.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func jailQuery(jail string) url.Values {
	if jail == "" {
		return nil
	}
	return url.Values{"jail": {jail}}
}

func forString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// Status asks for the daemon's status, of one jail if jail is not "".
func (c *Client) Status(ctx context.Context, jail string) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/status", jailQuery(jail), nil, &st)
	return st, err
}

// Bans lists the active bans, of one jail if jail is not "".
func (c *Client) Bans(ctx context.Context, jail string) ([]Ban, error) {
	var r BansResponse
	err := c.do(ctx, http.MethodGet, "/bans", jailQuery(jail), nil, &r)
	return r.Bans, err
}

// Ban bans p in jail ("" = manual) for d (0 = the jail's bantime).
func (c *Client) Ban(ctx context.Context, p netip.Prefix, jail string, d time.Duration) (Ban, error) {
	var r BanResponse
	err := c.do(ctx, http.MethodPost, "/ban", nil, BanRequest{Prefix: p.String(), Jail: jail, For: forString(d)}, &r)
	return r.Ban, err
}

// Unban lifts bans on p (or every ban if all) and returns those lifted.
func (c *Client) Unban(ctx context.Context, p netip.Prefix, jail string, all bool) ([]Ban, error) {
	req := UnbanRequest{Jail: jail, All: all}
	if !all {
		req.Prefix = p.String()
	}
	var r UnbanResponse
	err := c.do(ctx, http.MethodPost, "/unban", nil, req, &r)
	return r.Lifted, err
}

// UnbanLocal is Unban on the daemon's host only: the shared ban list
// keeps the bans.
func (c *Client) UnbanLocal(ctx context.Context, p netip.Prefix, jail string, all bool) ([]Ban, error) {
	req := UnbanRequest{Jail: jail, All: all, Local: true}
	if !all {
		req.Prefix = p.String()
	}
	var r UnbanResponse
	err := c.do(ctx, http.MethodPost, "/unban", nil, req, &r)
	return r.Lifted, err
}

// Allow puts p on the allow list for d (0 = until removed) and returns the
// bans that lifted.
func (c *Client) Allow(ctx context.Context, p netip.Prefix, d time.Duration) ([]Ban, error) {
	r, err := c.AllowEntry(ctx, p, d)
	return r.Lifted, err
}

// AllowEntry is Allow with the whole answer: the entry as the daemon made it, too.
func (c *Client) AllowEntry(ctx context.Context, p netip.Prefix, d time.Duration) (AllowResponse, error) {
	var r AllowResponse
	err := c.do(ctx, http.MethodPost, "/allow", nil, AllowRequest{Prefix: p.String(), For: forString(d)}, &r)
	return r, err
}

// AllowList lists the allow list.
func (c *Client) AllowList(ctx context.Context) ([]Allow, error) {
	var r AllowListResponse
	err := c.do(ctx, http.MethodGet, "/allow", nil, nil, &r)
	return r.Allow, err
}

// AllowRemove takes p off the allow list; false if it was not on it.
func (c *Client) AllowRemove(ctx context.Context, p netip.Prefix) (bool, error) {
	var r AllowRemoveResponse
	err := c.do(ctx, http.MethodPost, "/allow/remove", nil, AllowRemoveRequest{Prefix: p.String()}, &r)
	return r.Removed, err
}

// Reload asks the daemon to re-read its config. An invalid config is an
// *APIError wrapping ErrInvalid whose message lists the diagnostics.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/reload", nil, struct{}{}, nil)
}
