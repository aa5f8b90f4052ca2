package test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a network namespace this test made; it is deleted on cleanup,
// even when the test fails.
type netns struct {
	name string
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func uniq() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newNetns creates a namespace named smtpban-<role>-<random> with lo up.
func newNetns(t *testing.T, role string) *netns {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip (iproute2) is needed: %v", err)
	}
	n := &netns{name: "smtpban-" + role + "-" + uniq()}
	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		// Killing what still runs inside lets the namespace go away.
		if out, err := exec.Command("ip", "netns", "pids", n.name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				// Our own process shows up when inNetns ran on the main
				// thread, which Go parks rather than discards.
				if pid == strconv.Itoa(os.Getpid()) {
					continue
				}
				exec.Command("kill", "-9", pid).Run()
			}
		}
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	n.run(t, "ip", "link", "set", "lo", "up")
	return n
}

func (n *netns) run(t *testing.T, argv ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", n.name}, argv...)...)
}

// exec returns the argv prefix that runs a command inside n.
func (n *netns) exec() []string { return []string{"ip", "netns", "exec", n.name} }

// link joins a and b with a veth pair and gives each side its addresses.
func link(t *testing.T, a *netns, aAddrs []string, b *netns, bAddrs []string) {
	t.Helper()
	id := uniq()
	va, vb := "va"+id, "vb"+id
	run(t, "ip", "link", "add", va, "netns", a.name, "type", "veth", "peer", "name", vb, "netns", b.name)
	for _, side := range []struct {
		ns    *netns
		dev   string
		addrs []string
	}{{a, va, aAddrs}, {b, vb, bAddrs}} {
		for _, addr := range side.addrs {
			args := []string{"ip", "addr", "add", addr, "dev", side.dev}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			side.ns.run(t, args...)
		}
		side.ns.run(t, "ip", "link", "set", side.dev, "up")
	}
}

// inNetns runs f on a thread switched into n. The thread is never switched
// back: when f returns, the goroutine exits still locked and Go discards
// the thread, so no other goroutine ever runs in the wrong namespace.
func inNetns(n *netns, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// dial connects from n, optionally from a given local address. A socket
// keeps the namespace it was created in, whatever thread uses it later.
func dial(n *netns, local, remote string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(n, func() error {
		d := net.Dialer{Timeout: timeout}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		var err error
		c, err = d.Dial("tcp", remote)
		return err
	})
	return c, err
}

// smtpLike listens in n on addr and answers every line with "250 ok", a
// stand-in for a mail server where the test needs no real one.
func smtpLike(t *testing.T, n *netns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNetns(n, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s on %s: %v", n.name, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("220 test ESMTP\r\n"))
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write([]byte("250 ok\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// reachable says whether a new connection from n (from local, if set) to
// remote completes and gets the banner within timeout.
func reachable(n *netns, local, remote string, timeout time.Duration) bool {
	c, err := dial(n, local, remote, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "220")
}

// alive says whether an open session still answers a command.
func alive(r *bufio.Reader, c net.Conn, timeout time.Duration) bool {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
		return false
	}
	line, err := r.ReadString('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		return false
	}
	return strings.HasPrefix(line, "250")
}

func requireNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft is needed to inspect the kernel's ruleset; .ci/run installs nftables")
		}
		t.Skip("nft not installed (apt-get install nftables)")
	}
}
