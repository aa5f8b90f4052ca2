// Package etcdtest runs real etcd members (Debian's etcd-server,
// /usr/bin/etcd) for tests and benchmarks: a process per member, each
// with its own data directory, on addresses the caller chooses (loopback
// by default). Only tests and bench/ import it; the daemon carries no
// etcd server.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is where Debian's etcd-server puts etcd.
const Binary = "/usr/bin/etcd"

// Options describe a cluster to start.
type Options struct {
	Members int    // default 1
	Dir     string // data directories and logs go under it
	// Hosts are the addresses member i listens on for clients, beside
	// 127.0.0.1 (addresses reachable from network namespaces, say);
	// peers always talk over loopback.
	Hosts []string
	// Wrap prefixes the command (ip netns exec NAME, to run etcd inside a
	// namespace). Start then does not wait for the cluster: its loopback
	// is not ours to reach, and the caller waits its own way.
	Wrap []string
	// Fsync: without it, members run with --unsafe-no-fsync, which is
	// faster and fine for tests; benchmarks fsync as production does.
	Fsync bool
}

// Cluster is a running etcd cluster.
type Cluster struct {
	Members []*Member
	o       Options
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string   // on loopback
	Endpoints []string // every client URL it listens on
	peerURL   string
	args      []string
	logPath   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Available says whether the etcd binary is installed, and why not.
func Available() error {
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("%s not found (apt-get install etcd-server): %w", Binary, err)
	}
	return nil
}

// freePort asks the kernel for a free port on host.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the members and waits until the cluster answers.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Members <= 0 {
		o.Members = 1
	}
	c := &Cluster{o: o}
	var initial []string
	for i := range o.Members {
		cp, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		pp, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp),
		}
		m.Endpoints = []string{m.ClientURL}
		for _, h := range o.Hosts {
			m.Endpoints = append(m.Endpoints, fmt.Sprintf("http://%s:%d", h, cp))
		}
		initial = append(initial, m.Name+"="+m.peerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		dir := filepath.Join(o.Dir, m.Name)
		m.logPath = dir + ".log"
		m.args = append(append([]string{}, o.Wrap...), Binary,
			"--name", m.Name, "--data-dir", dir,
			"--listen-client-urls", strings.Join(m.Endpoints, ","),
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "smtpban-test",
			// Elections within a test's patience.
			"--heartbeat-interval", "50", "--election-timeout", "500",
		)
		if !o.Fsync {
			m.args = append(m.args, "--unsafe-no-fsync")
		}
		if err := m.Start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if len(o.Wrap) > 0 {
		return c, nil
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Endpoints are the members' loopback client URLs.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Client returns a client of the whole cluster; the caller closes it.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// WaitReady waits until a linearizable read succeeds.
func (c *Cluster) WaitReady(ctx context.Context) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "ready")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd not ready: %w (logs in %s)", err, c.o.Dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops every member.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// Start starts the member again (after Stop), on its data directory.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return errors.New("etcd member already running")
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.args[0], m.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a wrapper's child goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	m.cmd, m.done = cmd, done
	return nil
}

// Stop kills the member and waits for it to go; its data stays.
func (m *Member) Stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Running says whether the member's process is up.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

// Leader returns the member that leads, asking each running member.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	cli, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(rctx, m.ClientURL)
		cancel()
		if err != nil {
			continue
		}
		if st.Header.MemberId == st.Leader {
			return m, nil
		}
	}
	return nil, errors.New("no leader found")
}
