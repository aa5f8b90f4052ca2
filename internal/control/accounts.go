package control

import (
	"context"
	"net/http"
	"net/url"

	"smtpban/internal/account"
)

// Accounts is what the account endpoints need from the daemon. It is
// asked for separately from Daemon: a daemon without it answers 404.
type Accounts interface {
	Accounts(ctx context.Context) ([]account.Summary, error)
	Account(ctx context.Context, user string) (account.Detail, error)
	ReleaseAccount(ctx context.Context, user string) (account.Release, error)
}

// AccountsResponse is the answer to GET /v1/accounts.
type AccountsResponse struct {
	Accounts []account.Summary `json:"accounts"`
}

// ReleaseRequest is the body of POST /v1/account/release.
type ReleaseRequest struct {
	User string `json:"user"`
}

// accountRoutes are the account endpoints: GET /v1/accounts, GET
// /v1/account?user=U, POST /v1/account/release.
func (s *Server) accountRoutes() []route {
	return []route{
		{"GET", "/accounts", false, s.accountList},
		{"GET", "/account", false, s.accountShow},
		{"POST", "/account/release", true, s.accountRelease},
	}
}

func (s *Server) accountsOf() (Accounts, error) {
	a, ok := s.d.(Accounts)
	if !ok {
		return nil, &httpError{http.StatusNotFound, "this daemon has no account watch"}
	}
	return a, nil
}

func (s *Server) accountList(r *http.Request) (any, error) {
	a, err := s.accountsOf()
	if err != nil {
		return nil, err
	}
	as, err := a.Accounts(r.Context())
	if err != nil {
		return nil, err
	}
	return AccountsResponse{Accounts: nonNil(as)}, nil
}

func (s *Server) accountShow(r *http.Request) (any, error) {
	a, err := s.accountsOf()
	if err != nil {
		return nil, err
	}
	u := r.URL.Query().Get("user")
	if u == "" {
		return nil, badRequest("user: missing")
	}
	return a.Account(r.Context(), u)
}

func (s *Server) accountRelease(r *http.Request) (any, error) {
	a, err := s.accountsOf()
	if err != nil {
		return nil, err
	}
	var req ReleaseRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, badRequest("user: missing")
	}
	return a.ReleaseAccount(r.Context(), req.User)
}

// Accounts lists the accounts the daemon follows.
func (c *Client) Accounts(ctx context.Context) ([]account.Summary, error) {
	var r AccountsResponse
	err := c.do(ctx, http.MethodGet, "/accounts", nil, nil, &r)
	return r.Accounts, err
}

// Account shows one account.
func (c *Client) Account(ctx context.Context, user string) (account.Detail, error) {
	var d account.Detail
	err := c.do(ctx, http.MethodGet, "/account", url.Values{"user": {user}}, nil, &d)
	return d, err
}

// ReleaseAccount lifts an account's hold.
func (c *Client) ReleaseAccount(ctx context.Context, user string) (account.Release, error) {
	var rel account.Release
	err := c.do(ctx, http.MethodPost, "/account/release", nil, ReleaseRequest{User: user}, &rel)
	return rel, err
}
