package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"smtpban/state"
)

// op is one queued change, as kept in the outbox.
type op struct {
	Del    bool         `json:"del,omitempty"`
	Prefix netip.Prefix `json:"prefix"`
	Value  *Value       `json:"value,omitempty"`
}

// txnOps bounds the keys in one etcd transaction (the server's default
// max-txn-ops is 128); flushOps the changes read from the queue at once,
// whose transactions go out together (txnInFlight at a time).
const (
	txnOps      = 100
	flushOps    = 2000
	txnInFlight = 8
)

// Publish queues this host's bans for the shared ban list: the bans of the
// published jails, and every ban made by hand. It is the ban manager's
// Publisher: it writes the durable queue (one bbolt transaction) and
// returns; etcd is reached by the publisher loop.
func (n *Node) Publish(bans []state.Ban, manual bool) {
	var vs [][]byte
	for _, b := range bans {
		if b.Origin != n.o.Host || b.Until.IsZero() {
			continue
		}
		if !manual && n.pub != nil && !n.pub[b.Jail] {
			continue
		}
		v := valueOf(b)
		vs = append(vs, mustJSON(op{Prefix: b.Prefix, Value: &v}))
	}
	n.enqueue(vs)
}

// Withdraw queues the removal of these bans from the shared ban list: an
// unban everywhere.
func (n *Node) Withdraw(ps []netip.Prefix) {
	vs := make([][]byte, 0, len(ps))
	for _, p := range ps {
		vs = append(vs, mustJSON(op{Del: true, Prefix: p}))
	}
	n.enqueue(vs)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain types
	}
	return b
}

func (n *Node) enqueue(vs [][]byte) {
	if len(vs) == 0 {
		return
	}
	dropped, err := n.o.Store.OutboxAppend(vs, n.o.MaxQueue)
	if err != nil {
		// The bans hold here; only their sharing is lost.
		n.log.Error("bans not queued to publish", "changes", len(vs), keyErr, err)
		return
	}
	if dropped > 0 {
		n.met.dropped.Add(float64(dropped))
		n.log.Error("publish queue full: oldest changes dropped", "dropped", dropped, "max", n.o.MaxQueue)
	}
	n.met.queued.Add(float64(len(vs) - dropped))
	n.kick()
}

// publishLoop sends the queue to etcd whenever something is queued, when
// the connection comes back, and every second while anything waits.
func (n *Node) publishLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		n.flush(ctx)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
	}
}

// flush publishes the queue, oldest first, and forgets what etcd took. It
// stops at the first error: the rest waits for the next try, in order.
func (n *Node) flush(ctx context.Context) {
	for ctx.Err() == nil {
		items, err := n.o.Store.Outbox(flushOps)
		if err != nil {
			n.log.Error("read publish queue", keyErr, err)
			return
		}
		if len(items) == 0 {
			n.met.queued.Set(0)
			return
		}
		ops := make([]op, 0, len(items))
		for _, it := range items {
			var o op
			if err := json.Unmarshal(it.Value, &o); err != nil || !o.Prefix.IsValid() || (!o.Del && o.Value == nil) {
				n.log.Error("unreadable change in the publish queue; dropped", "seq", it.Seq)
				continue
			}
			ops = append(ops, o)
		}
		if err := n.send(ctx, ops); err != nil {
			n.setConnected(err)
			n.log.Debug("publish deferred", "changes", len(ops), keyErr, err)
			return
		}
		if err := n.o.Store.OutboxDone(items[len(items)-1].Seq); err != nil {
			n.log.Error("forget published changes", keyErr, err)
			return
		}
		n.met.queued.Sub(float64(len(items)))
	}
}

// send publishes ops in order: runs of puts and of deletes, each in
// transactions of at most txnOps keys.
func (n *Node) send(ctx context.Context, ops []op) error {
	for len(ops) > 0 {
		i := 1
		for i < len(ops) && ops[i].Del == ops[0].Del {
			i++
		}
		var err error
		if ops[0].Del {
			err = n.sendDeletes(ctx, ops[:i])
		} else {
			err = n.sendPuts(ctx, ops[:i])
		}
		if err != nil {
			return err
		}
		ops = ops[i:]
	}
	return nil
}

func (n *Node) sendDeletes(ctx context.Context, ops []op) error {
	dels := make([]clientv3.Op, 0, len(ops))
	for _, o := range ops {
		dels = append(dels, clientv3.OpDelete(banKey(n.keys, o.Prefix)))
	}
	rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
	defer cancel()
	if _, err := n.cli.Txn(rctx).Then(dels...).Commit(); err != nil {
		return fmt.Errorf("delete %d keys: %w", len(dels), err)
	}
	n.met.published.WithLabelValues("delete").Add(float64(len(dels)))
	return nil
}

// sendPuts writes the bans whose until is later than what their keys
// hold. New keys go in one round trip (put if none exists); where one
// exists, its value is read in that same round trip, and the put is made
// on condition that no key changed since (another host banning the same
// address), or started over. When two hosts ban one address, the later
// until wins.
func (n *Node) sendPuts(ctx context.Context, ops []op) error {
	ops = latest(ops)
	if len(ops) <= txnOps {
		return n.sendPutsTxn(ctx, ops)
	}
	// Keys are distinct: their transactions may go in any order.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(txnInFlight)
	for len(ops) > 0 {
		k := min(len(ops), txnOps)
		chunk := ops[:k]
		g.Go(func() error { return n.sendPutsTxn(gctx, chunk) })
		ops = ops[k:]
	}
	return g.Wait()
}

// latest keeps one op per key: the one with the later until.
func latest(ops []op) []op {
	byKey := map[netip.Prefix]int{}
	var uniq []op
	for _, o := range ops {
		if i, ok := byKey[o.Prefix]; ok {
			if o.Value.Until.After(uniq[i].Value.Until) {
				uniq[i] = o
			}
			continue
		}
		byKey[o.Prefix] = len(uniq)
		uniq = append(uniq, o)
	}
	return uniq
}

func (n *Node) sendPutsTxn(ctx context.Context, uniq []op) error {
	for attempt := 0; ; attempt++ {
		done, err := n.tryPuts(ctx, uniq)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if attempt >= 5 {
			return errors.New("keys kept changing under a publish; will retry")
		}
	}
}

func (n *Node) tryPuts(ctx context.Context, ops []op) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
	defer cancel()
	// The common case, keys no host holds: put them all if none exists,
	// in one round trip; otherwise read them in the same one.
	now := n.now()
	var news []clientv3.Cmp
	var puts []clientv3.Op
	gets := make([]clientv3.Op, 0, len(ops))
	for _, o := range ops {
		key := banKey(n.keys, o.Prefix)
		gets = append(gets, clientv3.OpGet(key))
		if !o.Value.Until.After(now) {
			continue
		}
		lease, err := n.lease(rctx, o.Value.Until)
		if err != nil {
			return false, err
		}
		news = append(news, clientv3.Compare(clientv3.Version(key), "=", 0))
		puts = append(puts, clientv3.OpPut(key, string(mustJSON(o.Value)), clientv3.WithLease(lease)))
	}
	got, err := n.cli.Txn(rctx).If(news...).Then(puts...).Else(gets...).Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		n.mu.Lock()
		clear(n.leases)
		n.mu.Unlock()
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("put %d new keys: %w", len(puts), err)
	}
	if got.Succeeded {
		n.met.published.WithLabelValues("put").Add(float64(len(puts)))
		n.met.published.WithLabelValues("skipped").Add(float64(len(ops) - len(puts)))
		return true, nil
	}
	var cmps []clientv3.Cmp
	puts = puts[:0]
	skipped := 0
	for i, o := range ops {
		key := banKey(n.keys, o.Prefix)
		var rev int64
		if kvs := got.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			rev = kvs[0].ModRevision
			var cur Value
			if json.Unmarshal(kvs[0].Value, &cur) == nil && !cur.Until.Before(o.Value.Until) {
				skipped++ // a later (or the same) until is there already
				continue
			}
		}
		if !o.Value.Until.After(now) {
			skipped++ // over already
			continue
		}
		lease, err := n.lease(rctx, o.Value.Until)
		if err != nil {
			return false, err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		puts = append(puts, clientv3.OpPut(key, string(mustJSON(o.Value)), clientv3.WithLease(lease)))
	}
	n.met.published.WithLabelValues("skipped").Add(float64(skipped))
	if len(puts) == 0 {
		return true, nil
	}
	resp, err := n.cli.Txn(rctx).If(cmps...).Then(puts...).Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// A bucket's lease ran out or was revoked while we held its id.
		n.mu.Lock()
		clear(n.leases)
		n.mu.Unlock()
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("put %d keys: %w", len(puts), err)
	}
	if resp.Succeeded {
		n.met.published.WithLabelValues("put").Add(float64(len(puts)))
	}
	return resp.Succeeded, nil
}

// lease returns the shared lease of until's minute: it lives until the
// end of that minute and one more, so a key is cleaned up after its ban
// is over and never before. A leader change restarts a lease's TTL; that
// only keeps a key longer, and until still decides.
func (n *Node) lease(ctx context.Context, until time.Time) (clientv3.LeaseID, error) {
	bucket := until.Truncate(time.Minute).Add(time.Minute)
	id := bucket.Unix() / 60
	n.mu.Lock()
	l, ok := n.leases[id]
	n.mu.Unlock()
	if ok {
		return l, nil
	}
	ttl := int64(bucket.Sub(n.now())/time.Second) + 60
	g, err := n.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant lease of %ds: %w", ttl, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for b := range n.leases {
		if b < n.now().Unix()/60 {
			delete(n.leases, b) // its keys are gone or going
		}
	}
	n.leases[id] = g.ID
	return g.ID, nil
}
