// Package cluster shares bans with the other mail hosts through etcd:
// this host's bans go out through a durable queue, other hosts' bans come
// in through a watch and enter the ban manager like any other ban, with
// the same protection. One key per ban under the prefix; its JSON value's
// until decides when the ban ends, and shared leases bucketed by the
// minute only clean the keys up.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"smtpban/internal/ban"
	"smtpban/state"
)

// Log attribute keys.
const (
	keyErr  = "err"
	keyAddr = "addr"
	keyRev  = "revision"
)

// Manager is the ban manager, as the watch uses it.
type Manager interface {
	Remote(ctx context.Context, rs []ban.Remote) (ban.RemoteResult, error)
	RemoteLift(ctx context.Context, ps []netip.Prefix) ([]state.Ban, error)
}

// Store is where the queue to publish lives (bbolt, in the daemon), and
// the bans this host holds, for the reconcile after a fresh list.
type Store interface {
	Bans() ([]state.Ban, error)
	OutboxAppend(values [][]byte, max int) (int, error)
	Outbox(n int) ([]state.OutboxItem, error)
	OutboxDone(seq uint64) error
	OutboxLen() (int, error)
}

// TLS names the files for TLS to etcd.
type TLS struct{ CA, Cert, Key string }

// Options configure a Node.
type Options struct {
	Endpoints []string
	Prefix    string // key space, ends in "/"
	Host      string // this host's name: the origin of its bans
	// Also are other names this host's bans may carry (its system host
	// name, when host_name differs: bans made before it joined). A
	// re-list never lifts them.
	Also     []string
	TLS      *TLS
	Username string
	Password string
	// Jails whose bans are published; nil: all. Bans by hand always are.
	Jails []string
	// Manager is set with SetManager when the manager needs the Node
	// first (it publishes through it).
	Manager Manager
	Store   Store
	Logger  *slog.Logger
	Now     func() time.Time
	Metrics Registerer // nil: none
	// MaxQueue bounds the bans waiting to be published (default 100,000).
	MaxQueue int
	// RequestTimeout bounds each etcd request (default 2 s).
	RequestTimeout time.Duration
}

// Status is what `smtpban status` shows of the cluster.
type Status struct {
	Host      string   `json:"host"`
	Endpoints []string `json:"endpoints"`
	Connected bool     `json:"connected"`
	Revision  int64    `json:"revision"`
	Queued    int      `json:"queued"`
	LastError string   `json:"last_error,omitempty"`
}

// Node is this host's member of the shared ban list.
type Node struct {
	o    Options
	log  *slog.Logger
	now  func() time.Time
	cli  *clientv3.Client
	keys string // prefix + "bans/"
	pub  map[string]bool
	met  *nodeMetrics
	mgr  Manager
	wake chan struct{}

	mu        sync.Mutex
	connected bool
	revision  int64
	lastErr   string
	leases    map[int64]clientv3.LeaseID // by bucket (unix minute)
}

// New makes a Node; it dials nothing before Run.
func New(o Options) (*Node, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 100_000
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.Host == "" {
		return nil, errors.New("cluster: no host name")
	}
	cfg := clientv3.Config{
		Endpoints:            o.Endpoints,
		DialTimeout:          o.RequestTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Username:             o.Username,
		Password:             o.Password,
		// The client's own logs would bypass slog; its errors reach us
		// through the calls.
		Logger: zap.NewNop(),
	}
	if o.TLS != nil {
		tc, err := tlsConfig(*o.TLS)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", o.Endpoints, err)
	}
	n := &Node{
		o: o, log: o.Logger, now: o.Now, cli: cli, keys: o.Prefix + "bans/",
		met: newNodeMetrics(o.Metrics), mgr: o.Manager,
		wake: make(chan struct{}, 1), leases: map[int64]clientv3.LeaseID{},
	}
	n.met.degraded.Set(1) // until the first answer
	if o.Jails != nil {
		n.pub = map[string]bool{}
		for _, j := range o.Jails {
			n.pub[j] = true
		}
	}
	return n, nil
}

// SetManager names the ban manager, before Run.
func (n *Node) SetManager(m Manager) { n.mgr = m }

func tlsConfig(t TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("cluster tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster tls ca %s: no certificate in it", t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert != "" {
		c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("cluster tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// Close closes the etcd client.
func (n *Node) Close() error { return n.cli.Close() }

// Run publishes, watches and checks the connection until ctx is done.
// etcd being away is never an error here: it is retried, and shown.
func (n *Node) Run(ctx context.Context) error {
	if n.mgr == nil {
		return errors.New("cluster: no ban manager")
	}
	if q, err := n.o.Store.OutboxLen(); err == nil {
		n.met.queued.Set(float64(q))
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { n.health(ctx); return nil })
	g.Go(func() error { n.publishLoop(ctx); return nil })
	g.Go(func() error { n.watchLoop(ctx); return nil })
	return g.Wait()
}

// Status reports the connection, the revision seen and the queue.
func (n *Node) Status() Status {
	q, err := n.o.Store.OutboxLen()
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{
		Host: n.o.Host, Endpoints: n.o.Endpoints, Connected: n.connected,
		Revision: n.revision, Queued: q, LastError: n.lastErr,
	}
	if err != nil && st.LastError == "" {
		st.LastError = err.Error()
	}
	return st
}

// health checks every second that a quorum answers (a linearizable read)
// and says so in status and the degraded metric; on the way back up it
// wakes the publisher, so that the queue is flushed on reconnect.
func (n *Node) health(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
		_, err := n.cli.Get(rctx, n.o.Prefix+"health", clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		n.setConnected(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setConnected records the outcome of a request to etcd.
func (n *Node) setConnected(err error) {
	n.mu.Lock()
	was := n.connected
	n.connected = err == nil
	if err != nil {
		n.lastErr = err.Error()
	} else {
		n.lastErr = ""
	}
	n.mu.Unlock()
	if err == nil {
		n.met.degraded.Set(0)
		if !was {
			n.log.Info("cluster connected", "endpoints", n.o.Endpoints)
			n.kick()
		}
		return
	}
	n.met.degraded.Set(1)
	if was {
		n.log.Warn("cluster unreachable: bans are made here and queued to publish", keyErr, err)
	}
}

func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// PeerAddrs returns the addresses of the etcd endpoints, resolved: the
// cluster's peers, which no ban may cover. A name that does not resolve
// is left out and returned in the error; the others still count.
func PeerAddrs(ctx context.Context, endpoints []string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %q: %w", e, err))
			continue
		}
		host := u.Hostname()
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, a.Unmap())
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve endpoint %q: %w", host, err))
			continue
		}
		for _, a := range ips {
			out = append(out, a.Unmap())
		}
	}
	return out, errors.Join(errs...)
}
