// Package policy serves Postfix's policy delegation protocol: a request
// is attribute=value lines ended by an empty line, the answer one
// action=... line and an empty line, many requests per connection. The
// answer comes from a Checker (the account watch) that never waits on the
// log path, the disk or the cluster.
package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smtpban/internal/account"
)

// Checker answers one request.
type Checker interface {
	Check(r account.Request) account.Verdict
}

// Bounds on what a client may send. Postfix's requests are well under
// 2 KB (a long ccert_subject or a long sasl_username make the largest).
const (
	MaxLine    = 4096
	MaxRequest = 16384
	MaxAttrs   = 64
	// IdleTimeout: Postfix keeps a connection for
	// smtpd_policy_service_max_idle (300s) and closes it itself.
	IdleTimeout = 310 * time.Second
	// RequestTimeout bounds the time from a request's first byte to its
	// end: a client that trickles a request holds only its own
	// connection, and not for long.
	RequestTimeout = 10 * time.Second
	MaxConns       = 1024
)

// Stats are the server's counters: atomics, so that the metrics read
// them at scrape time and the answer path takes no lock for them.
type Stats struct {
	Requests atomic.Uint64 // requests read whole and answered
	Held     atomic.Uint64 // of those, answered HOLD, DEFER or REJECT
	// The answers by action; they add up to Requests.
	Dunno, Hold, Defer, Reject atomic.Uint64
	Malformed                  atomic.Uint64 // bad requests: no name=value, empty
	Oversized                  atomic.Uint64 // over MaxLine, MaxRequest or MaxAttrs
	Refused                    atomic.Uint64 // connections over MaxConns
}

// Server is the policy service.
type Server struct {
	listen string
	check  Checker
	log    *slog.Logger
	Stats  Stats

	ln    net.Listener
	conns chan struct{} // a slot per open connection
	wg    sync.WaitGroup
}

// New makes a server for listen: "host:port" or "unix:/path".
func New(listen string, c Checker, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{listen: listen, check: c, log: log, conns: make(chan struct{}, MaxConns)}
}

// Listen opens the socket; a stale Unix socket file is replaced.
func (s *Server) Listen() error {
	network, addr := "tcp", s.listen
	if p, ok := strings.CutPrefix(s.listen, "unix:"); ok {
		network, addr = "unix", p
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", p); err == nil {
				c.Close()
				return fmt.Errorf("policy socket %s: another process is listening on it", p)
			}
			os.Remove(p)
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return fmt.Errorf("policy service: listen on %s: %w", s.listen, err)
	}
	if network == "unix" {
		if err := s.socketMode(addr); err != nil {
			ln.Close()
			return fmt.Errorf("policy socket %s: %w", addr, err)
		}
	}
	s.ln = ln
	return nil
}

// Addr is where the server listens (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers connections until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	defer s.wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Warn("policy service: accept", "err", err)
			time.Sleep(10 * time.Millisecond) // out of file descriptors: let some close
			continue
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.Stats.Refused.Add(1)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.conns }()
			s.serveConn(ctx, c)
		}()
	}
}

// errTooLarge ends a connection whose request is over the bounds.
var errTooLarge = errors.New("request too large")

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReaderSize(c, MaxLine)
	w := bufio.NewWriterSize(c, 256)
	var req Request
	for {
		c.SetReadDeadline(time.Now().Add(IdleTimeout))
		err := readRequest(r, &req, func() { c.SetReadDeadline(time.Now().Add(RequestTimeout)) })
		if err != nil {
			if errors.Is(err, errTooLarge) || errors.Is(err, errMalformed) {
				if errors.Is(err, errTooLarge) {
					s.Stats.Oversized.Add(1)
				} else {
					s.Stats.Malformed.Add(1)
				}
				s.log.Warn("policy service: bad request, closing", "remote", c.RemoteAddr().String(), "err", err)
				c.SetWriteDeadline(time.Now().Add(time.Second))
				w.WriteString("action=DUNNO\n\n")
				w.Flush()
			}
			return
		}
		s.Stats.Requests.Add(1)
		ans := s.answer(&req)
		c.SetWriteDeadline(time.Now().Add(RequestTimeout))
		w.WriteString(ans)
		if w.Flush() != nil {
			return
		}
	}
}

// answer decides one request. An unknown request type still gets DUNNO:
// Postfix then goes on with its other restrictions.
func (s *Server) answer(req *Request) string {
	if req.Request != "smtpd_access_policy" || req.User == "" {
		s.Stats.Dunno.Add(1)
		return "action=DUNNO\n\n"
	}
	v := s.check.Check(account.Request{
		User: req.User, Addr: req.Addr, State: req.State, Instance: req.Instance, QueueID: req.QueueID,
		Recipients: req.Recipients,
	})
	if !v.Held {
		s.Stats.Dunno.Add(1)
		return "action=DUNNO\n\n"
	}
	s.Stats.Held.Add(1)
	text := v.Text
	if text == "" {
		text = "account held for review"
	}
	switch v.Action {
	case account.Defer:
		s.Stats.Defer.Add(1)
		return "action=DEFER_IF_PERMIT 4.7.1 " + text + "\n\n"
	case account.Reject:
		s.Stats.Reject.Add(1)
		return "action=REJECT 5.7.1 " + text + "\n\n"
	}
	s.Stats.Hold.Add(1)
	return "action=HOLD " + text + "\n\n"
}

// Request is the attributes of one policy request that matter here.
type Request struct {
	Request    string
	State      string
	User       string
	Addr       netip.Addr
	Instance   string
	QueueID    string
	Recipients int
}

var errMalformed = errors.New("malformed request")

// readRequest reads attribute lines up to the empty line. started is
// called at the request's first byte.
func readRequest(r *bufio.Reader, req *Request, started func()) error {
	*req = Request{}
	total, attrs := 0, 0
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("%w: a line longer than %d bytes", errTooLarge, MaxLine)
		}
		if err != nil {
			if err == io.EOF && len(line) == 0 && total == 0 {
				return io.EOF // the client closed between requests
			}
			return err
		}
		if total == 0 {
			started()
		}
		total += len(line)
		if total > MaxRequest {
			return fmt.Errorf("%w: over %d bytes", errTooLarge, MaxRequest)
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			if attrs == 0 {
				return fmt.Errorf("%w: empty request", errMalformed)
			}
			return nil
		}
		attrs++
		if attrs > MaxAttrs {
			return fmt.Errorf("%w: more than %d attributes", errTooLarge, MaxAttrs)
		}
		eq := indexByte(line, '=')
		if eq <= 0 {
			return fmt.Errorf("%w: a line without name=value", errMalformed)
		}
		name, value := string(line[:eq]), line[eq+1:]
		switch name {
		case "request":
			req.Request = string(value)
		case "protocol_state":
			req.State = string(value)
		case "sasl_username":
			req.User = string(value)
		case "client_address":
			a, err := netip.ParseAddr(string(value))
			if err == nil && a.Zone() == "" {
				req.Addr = a.Unmap()
			}
		case "instance":
			req.Instance = string(value)
		case "queue_id":
			req.QueueID = string(value)
		case "recipient_count":
			n, err := strconv.Atoi(string(value))
			if err == nil && n >= 0 && n <= 1<<20 {
				req.Recipients = n
			}
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// socketMode lets Postfix's smtpd (group postfix) and nobody else reach
// the socket: whoever can ask can make counts for any name. Without a
// postfix group, or without the right to give the socket to it, the
// socket is 0666, like the TCP port on loopback, and the log says so.
func (s *Server) socketMode(path string) error {
	g, err := user.LookupGroup("postfix")
	if err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		if err = os.Chown(path, -1, gid); err == nil {
			return os.Chmod(path, 0o660)
		}
	}
	s.log.Warn("policy socket open to every local user: it could not be given to group postfix", "path", path, "err", err)
	return os.Chmod(path, 0o666)
}
