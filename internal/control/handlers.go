package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"smtpban/internal/config"
)

// maxBody bounds a request body; the largest real one is a few dozen bytes.
const maxBody = 64 << 10

// httpError is an error with the status to answer it with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// route is one endpoint; change: only for callers allowed to change things.
type route struct {
	method, path string
	change       bool
	h            apiFunc
}

// apiFunc handles one endpoint: a value to send as JSON, or an error.
type apiFunc func(r *http.Request) (any, error)

// Handler returns the API's HTTP handler. Serve uses it with the peer's
// credentials in each request's context; without them changes are refused.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	routes := []route{
		{"GET", "/status", false, s.status},
		{"GET", "/bans", false, s.bans},
		{"GET", "/show", false, s.show},
		{"POST", "/ban", true, s.ban},
		{"POST", "/unban", true, s.unban},
		{"GET", "/allow", false, s.allowList},
		{"POST", "/allow", true, s.allow},
		{"DELETE", "/allow", true, s.allowRemove},
		{"POST", "/allow/remove", true, s.allowRemove},
		{"POST", "/reload", true, s.reload},
	}
	s.backupRoutes(mux)
	routes = append(routes, s.accountRoutes()...)
	allowed := map[string][]string{}
	for _, rt := range routes {
		p := "/" + APIVersion + rt.path
		mux.Handle(rt.method+" "+p, s.wrap(rt.change, rt.h))
		allowed[p] = append(allowed[p], rt.method)
	}
	// ServeMux's own 404 and 405 answers are plain text; ours are JSON.
	for p, ms := range allowed {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(ms, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, strings.Join(ms, " or "))})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorResponse{fmt.Sprintf("%s: no such endpoint (this is API %s)", r.URL.Path, APIVersion)})
	})
	return mux
}

func (s *Server) wrap(change bool, h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := peerFrom(r.Context())
		var v any
		err := error(nil)
		if change {
			err = s.authorize(p)
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			v, err = h(r)
		}
		status := http.StatusOK
		if err != nil {
			status = statusOf(err)
			v = ErrorResponse{err.Error()}
		}
		writeJSON(w, status, v)
		level := slog.LevelDebug
		if change || status >= 500 {
			level = slog.LevelInfo
		}
		attrs := []any{keyMethod, r.Method, keyPath, r.URL.Path, keyStatus, status}
		if p != nil {
			attrs = append(attrs, keyUID, p.uid, keyPID, p.pid)
		}
		if err != nil {
			attrs = append(attrs, keyErr, err)
		}
		s.log.Log(r.Context(), level, "control request", attrs...)
	})
}

// authorize lets root, the daemon's own user and members of the socket's
// group make changes. Root keeps this right when the daemon is not root:
// it is who runs `smtpban ban` by hand, and it may connect anyway.
func (s *Server) authorize(p *peer) error {
	ways := []string{"root"}
	if s.uid != 0 {
		ways = append(ways, "user "+s.user)
	}
	if s.grp {
		ways = append(ways, "a member of group "+s.opts.Group)
	}
	msg := "permission denied: run as " + ways[0]
	if n := len(ways); n > 1 {
		msg = "permission denied: run as " + strings.Join(ways[:n-1], ", as ") + " or as " + ways[n-1]
	}
	switch {
	case p == nil:
		return &httpError{http.StatusForbidden, msg + " (the caller's credentials are unknown)"}
	case p.uid == 0, p.uid == s.uid:
		return nil
	case s.grp && p.inGroup(s.gid):
		return nil
	}
	return &httpError{http.StatusForbidden, msg}
}

func statusOf(err error) int {
	var he *httpError
	var diags config.Diagnostics
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &diags):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; a failed write means the client went away.
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v; unknown fields are refused so a typo
// is not silently ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("empty request body, expected JSON")
		}
		return badRequest("bad request body: %v", err)
	}
	if dec.More() {
		return badRequest("bad request body: more than one JSON value")
	}
	return nil
}

func parsePrefixArg(s string) (netip.Prefix, error) {
	p, err := ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, badRequest("prefix: %v", err)
	}
	return p, nil
}

func parseFor(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return 0, badRequest("for: %v", err)
	}
	if d < 0 {
		return 0, badRequest("for: %q is negative", s)
	}
	return d, nil
}

func (s *Server) status(r *http.Request) (any, error) {
	return s.d.Status(r.Context(), r.URL.Query().Get("jail"))
}

func (s *Server) bans(r *http.Request) (any, error) {
	bs, err := s.d.Bans(r.Context(), r.URL.Query().Get("jail"))
	if err != nil {
		return nil, err
	}
	return BansResponse{Bans: nonNil(bs)}, nil
}

func (s *Server) ban(r *http.Request) (any, error) {
	var req BanRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, err := parsePrefixArg(req.Prefix)
	if err != nil {
		return nil, err
	}
	d, err := parseFor(req.For)
	if err != nil {
		return nil, err
	}
	b, err := s.d.Ban(r.Context(), p, req.Jail, d)
	if err != nil {
		return nil, err
	}
	return BanResponse{Ban: b}, nil
}

func (s *Server) unban(r *http.Request) (any, error) {
	var req UnbanRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p netip.Prefix
	switch {
	case req.All && req.Prefix != "":
		return nil, badRequest("give a prefix or all, not both")
	case !req.All:
		var err error
		if p, err = parsePrefixArg(req.Prefix); err != nil {
			return nil, err
		}
	}
	var lifted []Ban
	var err error
	if lu, ok := s.d.(LocalUnbanner); ok && req.Local {
		lifted, err = lu.UnbanLocal(r.Context(), p, req.Jail, req.All)
	} else {
		lifted, err = s.d.Unban(r.Context(), p, req.Jail, req.All)
	}
	if err != nil {
		return nil, err
	}
	return UnbanResponse{Lifted: nonNil(lifted)}, nil
}

func (s *Server) allow(r *http.Request) (any, error) {
	var req AllowRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, err := parsePrefixArg(req.Prefix)
	if err != nil {
		return nil, err
	}
	d, err := parseFor(req.For)
	if err != nil {
		return nil, err
	}
	now := s.now()
	lifted, err := s.d.Allow(r.Context(), p, d)
	if err != nil {
		return nil, err
	}
	a := Allow{Prefix: p}
	if d > 0 {
		a.Until = now.Add(d)
	}
	return AllowResponse{Allow: a, Lifted: nonNil(lifted)}, nil
}

func (s *Server) allowList(r *http.Request) (any, error) {
	as, err := s.d.AllowList(r.Context())
	if err != nil {
		return nil, err
	}
	return AllowListResponse{Allow: nonNil(as)}, nil
}

func (s *Server) allowRemove(r *http.Request) (any, error) {
	var raw string
	if r.Method == http.MethodDelete {
		raw = r.URL.Query().Get("prefix")
	} else {
		var req AllowRemoveRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		raw = req.Prefix
	}
	p, err := parsePrefixArg(raw)
	if err != nil {
		return nil, err
	}
	ok, err := s.d.AllowRemove(r.Context(), p)
	if err != nil {
		return nil, err
	}
	return AllowRemoveResponse{Prefix: p, Removed: ok}, nil
}

func (s *Server) reload(r *http.Request) (any, error) {
	if err := s.d.Reload(r.Context()); err != nil {
		var diags config.Diagnostics
		if errors.As(err, &diags) {
			return nil, &httpError{http.StatusUnprocessableEntity, "config has errors; the running config stays:\n" + diags.Error()}
		}
		return nil, fmt.Errorf("reload: %w", err)
	}
	return ReloadResponse{Reloaded: true}, nil
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
