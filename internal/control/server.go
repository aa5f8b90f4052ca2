package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	Path string // the socket, e.g. /run/smtpban/smtpband.sock
	// Group, if set, makes the socket 0660 with group Group and lets its
	// members make changes; otherwise the socket is 0600. Either way it
	// belongs to the daemon's user, and root may connect and make changes.
	Group  string
	Logger *slog.Logger
	Now    func() time.Time
}

// Server serves the control API on a Unix socket.
type Server struct {
	d    Daemon
	opts ServerOptions
	log  *slog.Logger
	now  func() time.Time

	mu  sync.Mutex
	ln  *net.UnixListener
	fi  os.FileInfo // the socket as created, to remove only our own
	gid uint32
	grp bool // gid is set

	// The daemon's own effective uid and its name. Run as a system user
	// (the unit's User=smtpban), the daemon owns the socket, and that user
	// may make changes as root may.
	uid  uint32
	user string
}

// Log attribute keys.
const (
	keyErr    = "err"
	keyMethod = "method"
	keyPath   = "path"
	keyUID    = "uid"
	keyPID    = "pid"
	keyStatus = "status"
	keySocket = "socket"
)

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 5 * time.Second

// NewServer returns a server for d; it does nothing until Listen or Serve.
func NewServer(d Daemon, opts ServerOptions) *Server {
	s := &Server{d: d, opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.uid = uint32(os.Geteuid())
	s.user = strconv.FormatUint(uint64(s.uid), 10)
	if u, err := user.LookupId(s.user); err == nil {
		s.user = u.Username
	}
	return s
}

// Listen creates the socket. Calling it before Serve lets the daemon
// report ready only once clients can connect; Serve calls it otherwise.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.opts.Path == "" {
		return errors.New("control socket: no path")
	}
	gid := -1
	if s.opts.Group != "" {
		g, err := lookupGroup(s.opts.Group)
		if err != nil {
			return fmt.Errorf("control socket group: %w", err)
		}
		gid = int(g)
		s.gid, s.grp = g, true
	}
	ln, fi, err := listen(s.opts.Path, gid)
	if err != nil {
		return err
	}
	s.ln, s.fi = ln, fi
	return nil
}

// Serve listens (if Listen was not called) and serves until ctx is done,
// then waits briefly for requests in flight and removes the socket. It
// returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	hs := &http.Server{
		Handler:           s.Handler(),
		ConnContext:       connContext,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("control socket listening", keySocket, s.opts.Path)
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("control socket %s: %w", s.opts.Path, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		if serr := hs.Shutdown(sctx); serr != nil {
			s.log.Warn("control socket shutdown", keyErr, serr)
			hs.Close()
		}
		cancel()
		<-errc
	}
	s.removeSocket()
	return err
}

// removeSocket unlinks the socket unless it was replaced by someone else's.
func (s *Server) removeSocket() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fi, err := os.Lstat(s.opts.Path); err == nil && os.SameFile(fi, s.fi) {
		if err := os.Remove(s.opts.Path); err != nil {
			s.log.Warn("remove control socket", keySocket, s.opts.Path, keyErr, err)
		}
	}
}

func lookupGroup(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err == nil {
		id, perr := strconv.ParseUint(g.Gid, 10, 32)
		if perr != nil {
			return 0, fmt.Errorf("group %q has gid %q: %w", name, g.Gid, perr)
		}
		return uint32(id), nil
	}
	if id, perr := strconv.ParseUint(name, 10, 32); perr == nil {
		return uint32(id), nil
	}
	return 0, err
}
