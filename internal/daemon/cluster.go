package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"smtpban/internal/cluster"
	"smtpban/internal/config"
	"smtpban/internal/control"
	"smtpban/state"
)

// newCluster makes this host's member of the shared ban list, or nil
// without a cluster block. Its peers (the etcd endpoints' addresses) are
// never banned, whatever the list says.
func newCluster(cfg *config.Config, opts Options, store *state.Store, met cluster.Registerer) (*cluster.Node, []netip.Addr, error) {
	c := cfg.Cluster
	if c == nil {
		return nil, nil, nil
	}
	peers, err := cluster.PeerAddrs(context.Background(), c.Endpoints)
	if err != nil {
		opts.Logger.Warn("cluster: some endpoints did not resolve; they are not protected as peers", keyErr, err)
	}
	var also []string
	if h, err := os.Hostname(); err == nil && h != opts.Hostname {
		also = append(also, h) // bans made before host_name was set
	}
	o := cluster.Options{
		Also:      also,
		Endpoints: c.Endpoints, Prefix: c.Prefix, Host: opts.Hostname,
		Username: c.Username, Password: c.Password, Jails: c.Jails,
		Store: store, Logger: opts.Logger.With("part", "cluster"), Now: opts.Now, Metrics: met,
	}
	if c.TLS != nil {
		o.TLS = &cluster.TLS{CA: c.TLS.CA, Cert: c.TLS.Cert, Key: c.TLS.Key}
	}
	n, err := cluster.New(o)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %w", err)
	}
	return n, peers, nil
}

// clusterStatus is the cluster's part of `smtpban status`.
func (d *Daemon) clusterStatus() *control.ClusterStatus {
	if d.cluster == nil {
		return nil
	}
	s := d.cluster.Status()
	return &control.ClusterStatus{
		Host: s.Host, Endpoints: s.Endpoints, Connected: s.Connected,
		Revision: s.Revision, Queued: s.Queued, LastError: s.LastError,
	}
}
