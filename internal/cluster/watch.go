package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"smtpban/internal/ban"
)

// watchLoop lists the bans at start, then watches from the next revision.
// A broken watch resumes from the last revision seen; a compacted one
// (the revision is gone) lists again and reconciles.
func (n *Node) watchLoop(ctx context.Context) {
	var rev int64
	why := "start"
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if rev == 0 {
			r, err := n.relist(ctx, why)
			if err != nil {
				n.setConnected(err)
				n.log.Debug("list shared bans", keyErr, err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			rev = r
		}
		next, err := n.watch(ctx, rev)
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			n.log.Warn("watch fell behind a compaction: listing again", keyRev, rev)
			rev, why = 0, "compacted"
			continue
		case err != nil && ctx.Err() == nil:
			n.log.Debug("watch broken; resuming", keyRev, next, keyErr, err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
		default:
			backoff = 100 * time.Millisecond
		}
		rev = next
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// watch applies events after rev until the watch breaks, and returns the
// last revision seen.
func (n *Node) watch(ctx context.Context, rev int64) (int64, error) {
	// Without a leader a member's watch would go quiet; this way it
	// breaks, and resumes on a member that has one.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := n.cli.Watch(wctx, n.keys, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	var evs []*clientv3.Event
	for wr := range wch {
		// Responses that queued up while the last were applied go
		// together: one state transaction and one firewall batch for a
		// burst, not one per etcd transaction.
		evs = evs[:0]
		for more := true; more; {
			if wr.CompactRevision != 0 {
				n.apply(ctx, evs)
				return rev, rpctypes.ErrCompacted
			}
			if err := wr.Err(); err != nil {
				n.apply(ctx, evs)
				return rev, err
			}
			evs = append(evs, wr.Events...)
			rev = max(rev, wr.Header.Revision)
			select {
			case next, ok := <-wch:
				if !ok {
					more = false
					break
				}
				wr = next
			default:
				more = false
			}
		}
		n.apply(ctx, evs)
		n.setRevision(rev)
	}
	return rev, ctx.Err()
}

func (n *Node) setRevision(rev int64) {
	n.mu.Lock()
	n.revision = rev
	n.mu.Unlock()
	n.met.revision.Set(float64(rev))
}

// apply hands a watch response's events to the ban manager in order, a
// run of puts or of deletes at a time (one state transaction and one
// firewall batch each).
func (n *Node) apply(ctx context.Context, evs []*clientv3.Event) {
	for len(evs) > 0 {
		i := 1
		for i < len(evs) && evs[i].Type == evs[0].Type {
			i++
		}
		if evs[0].Type == mvccpb.DELETE {
			n.lift(ctx, evs[:i])
		} else {
			var rs []ban.Remote
			for _, ev := range evs[:i] {
				if r, ok := n.decode(ev.Kv); ok {
					rs = append(rs, r)
				}
			}
			n.remote(ctx, rs)
		}
		evs = evs[i:]
	}
}

// decode returns another host's ban, or false for this host's own and for
// an invalid key or value (counted, logged).
func (n *Node) decode(kv *mvccpb.KeyValue) (ban.Remote, bool) {
	r, err := decode(n.keys, kv.Key, kv.Value)
	if err != nil {
		n.met.invalid.WithLabelValues(reasonOf(err)).Inc()
		n.log.Warn("invalid shared ban skipped", keyErr, err)
		return ban.Remote{}, false
	}
	return r, r.Origin != n.o.Host
}

func (n *Node) remote(ctx context.Context, rs []ban.Remote) {
	if len(rs) == 0 {
		return
	}
	res, err := n.mgr.Remote(ctx, rs)
	if err != nil {
		// State could not save them: the next list (a restart or a
		// compaction) brings them again.
		n.log.Error("remote bans not applied", "bans", len(rs), keyErr, err)
	}
	n.met.received.Add(float64(len(res.Applied)))
	n.met.refused.Add(float64(res.Refused))
}

func (n *Node) lift(ctx context.Context, evs []*clientv3.Event) {
	var ps []netip.Prefix
	for _, ev := range evs {
		p, err := parseKey(n.keys, string(ev.Kv.Key))
		if err != nil {
			continue // a key we never took
		}
		ps = append(ps, p)
	}
	lifted, err := n.mgr.RemoteLift(ctx, ps)
	if err != nil {
		n.log.Error("lift bans withdrawn from the shared list", "bans", len(ps), keyErr, err)
	}
	n.met.lifted.Add(float64(len(lifted)))
}

// relist reads every shared ban, applies them, lifts the other hosts'
// bans held here whose keys are gone (withdrawn while we were not
// watching), and returns the revision to watch from. This host's own bans
// missing from the list stay here until they end: their key may be gone
// because they were published before an etcd was wiped, or lifted
// elsewhere; only their own end is sure.
func (n *Node) relist(ctx context.Context, why string) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 4*n.o.RequestTimeout)
	defer cancel()
	resp, err := n.cli.Get(rctx, n.keys, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", n.keys, err)
	}
	n.met.relists.WithLabelValues(why).Inc()
	present := map[netip.Prefix]bool{}
	var rs []ban.Remote
	for _, kv := range resp.Kvs {
		if p, err := parseKey(n.keys, string(kv.Key)); err == nil {
			present[p] = true
		}
		if r, ok := n.decode(kv); ok {
			rs = append(rs, r)
		}
	}
	for len(rs) > 0 { // one transaction per few thousand
		k := min(len(rs), 5000)
		n.remote(ctx, rs[:k])
		rs = rs[k:]
	}
	held, err := n.o.Store.Bans()
	if err != nil {
		return 0, fmt.Errorf("list bans held here: %w", err)
	}
	var gone []netip.Prefix
	for _, b := range held {
		if b.Origin != n.o.Host && !slices.Contains(n.o.Also, b.Origin) && !present[b.Prefix] {
			gone = append(gone, b.Prefix)
		}
	}
	if len(gone) > 0 {
		lifted, err := n.mgr.RemoteLift(ctx, gone)
		if err != nil {
			n.log.Error("lift bans gone from the shared list", "bans", len(gone), keyErr, err)
		}
		n.met.lifted.Add(float64(len(lifted)))
	}
	n.setRevision(resp.Header.Revision)
	n.setConnected(nil)
	n.log.Info("shared ban list read", "why", why, "keys", len(resp.Kvs), keyRev, resp.Header.Revision, "lifted", len(gone))
	return resp.Header.Revision, nil
}
