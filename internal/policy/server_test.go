package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smtpban/internal/account"
)

// heldChecker holds the accounts named in held.
type heldChecker struct {
	mu   sync.Mutex
	held map[string]account.Action
	seen []account.Request
}

func (c *heldChecker) Check(r account.Request) account.Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, r)
	if a, ok := c.held[r.User]; ok {
		return account.Verdict{Held: true, Action: a, Text: "held for review"}
	}
	return account.Verdict{}
}

func startServer(t testing.TB, listen string, c Checker) *Server {
	t.Helper()
	s := New(listen, c, nil)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func request(user, addr string) string {
	return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=" + addr +
		"\nclient_name=unknown\nhelo_name=x\nsender=a@b\nrecipient=c@d\nrecipient_count=0\nqueue_id=\ninstance=1a2b.3c4d.5e6f.0\nsize=0\nsasl_method=PLAIN\nsasl_username=" + user + "\n\n"
}

type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dialServer(t testing.TB, s *Server) *conn {
	t.Helper()
	c, err := net.Dial(s.Addr().Network(), s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{c, bufio.NewReader(c)}
}

// ask sends raw and reads one answer (up to its empty line).
func (c *conn) ask(t testing.TB, raw string) string {
	t.Helper()
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, raw); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read answer: %v (so far %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

func TestAnswers(t *testing.T) {
	ch := &heldChecker{held: map[string]account.Action{"mallory": account.Hold, "dave": account.Defer, "eve": account.Reject}}
	for _, listen := range []string{"127.0.0.1:0", "unix:" + filepath.Join(t.TempDir(), "policy.sock")} {
		t.Run(listen[:4], func(t *testing.T) {
			s := startServer(t, listen, ch)
			c := dialServer(t, s)
			for _, tc := range []struct{ user, want string }{
				{"alice", "action=DUNNO\n"},
				{"mallory", "action=HOLD held for review\n"},
				{"dave", "action=DEFER_IF_PERMIT 4.7.1 held for review\n"},
				{"eve", "action=REJECT 5.7.1 held for review\n"},
				{"", "action=DUNNO\n"}, // not authenticated
				{"alice", "action=DUNNO\n"},
			} {
				if got := c.ask(t, request(tc.user, "192.0.2.7")); got != tc.want {
					t.Errorf("%q: answer %q, want %q", tc.user, got, tc.want)
				}
			}
			// The metrics read these: each answer counted once, by action.
			st := &s.Stats
			got := []uint64{st.Requests.Load(), st.Held.Load(), st.Dunno.Load(), st.Hold.Load(), st.Defer.Load(), st.Reject.Load()}
			if want := []uint64{6, 3, 3, 1, 1, 1}; !slices.Equal(got, want) {
				t.Errorf("requests, held, dunno, hold, defer, reject = %v, want %v", got, want)
			}
		})
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if r := ch.seen[0]; r.User != "alice" || r.Addr.String() != "192.0.2.7" || r.State != "RCPT" || r.Instance != "1a2b.3c4d.5e6f.0" {
		t.Errorf("first request read as %+v", r)
	}
}

// TestBadInput: a malformed or oversized request is answered and the
// connection closed; a client that stalls holds only its own connection.
func TestBadInput(t *testing.T) {
	ch := &heldChecker{held: map[string]account.Action{"mallory": account.Hold}}
	s := startServer(t, "127.0.0.1:0", ch)

	// A stalled client, mid-request, for the whole test.
	stalled := dialServer(t, s)
	io.WriteString(stalled.c, "request=smtpd_access_policy\nsasl_user")

	for _, tc := range []struct{ name, raw string }{
		{"no equals sign", "request=smtpd_access_policy\ngarbage\n\n"},
		{"empty request", "\n"},
		{"line too long", "request=smtpd_access_policy\nsasl_username=" + strings.Repeat("x", MaxLine+10) + "\n\n"},
		{"request too large", strings.Repeat("x=y\n", 63) + strings.Repeat("ccert_subject="+strings.Repeat("z", 3000)+"\n", 6) + "\n"},
		{"too many attributes", strings.Repeat("x=y\n", MaxAttrs+1) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialServer(t, s)
			if got := c.ask(t, tc.raw); got != "action=DUNNO\n" {
				t.Errorf("answer %q", got)
			}
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			// Closed: EOF, or a reset when the rest of the request was
			// left unread.
			_, err := c.r.ReadByte()
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("connection still open after a bad request (err %v)", err)
			}
		})
	}
	// Others are still answered, at once.
	c := dialServer(t, s)
	if got := c.ask(t, request("mallory", "192.0.2.9")); got != "action=HOLD held for review\n" {
		t.Errorf("answer %q", got)
	}
	if m, o := s.Stats.Malformed.Load(), s.Stats.Oversized.Load(); m != 2 || o != 3 {
		t.Errorf("malformed, oversized = %d, %d; want 2, 3", m, o)
	}
	// A bad request is not an answer: only mallory's HOLD is.
	if r, d, h := s.Stats.Requests.Load(), s.Stats.Dunno.Load(), s.Stats.Hold.Load(); r != 1 || d != 0 || h != 1 {
		t.Errorf("requests, dunno, hold = %d, %d, %d; want 1, 0, 1", r, d, h)
	}
}

// TestManyClients: Postfix runs many smtpd processes, each with its own
// connection.
func TestManyClients(t *testing.T) {
	ch := &heldChecker{held: map[string]account.Action{"mallory": account.Hold}}
	s := startServer(t, "127.0.0.1:0", ch)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			user, want := "alice", "action=DUNNO\n"
			if i%2 == 0 {
				user, want = "mallory", "action=HOLD held for review\n"
			}
			for range 50 {
				io.WriteString(c, request(user, fmt.Sprintf("192.0.2.%d", i+1)))
				got, err := r.ReadString('\n')
				if err != nil || got != want {
					errs <- fmt.Errorf("client %d: %q, %v", i, got, err)
					return
				}
				if blank, _ := r.ReadString('\n'); blank != "\n" {
					errs <- fmt.Errorf("client %d: no empty line after the answer", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSocketMode: the Unix socket is for Postfix's group only, where
// there is one and we may give it the socket.
func TestSocketMode(t *testing.T) {
	g, err := user.LookupGroup("postfix")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root and a postfix group (.ci/run installs postfix): %v", err)
		}
		t.Skip("needs root and a postfix group")
	}
	path := filepath.Join(t.TempDir(), "policy.sock")
	startServer(t, "unix:"+path, &heldChecker{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || fmt.Sprint(st.Gid) != g.Gid {
		t.Errorf("socket mode %v gid %d, want 0660 and group postfix (%s)", fi.Mode().Perm(), st.Gid, g.Gid)
	}
}
