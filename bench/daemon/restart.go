package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"smtpban/state"
)

// restart stores o.restore bans in the state file, starts the daemon on an
// empty namespace and times READY=1 (sd_notify) and the moment the kernel
// set holds every ban.
func restart(ctx context.Context, o options) error {
	e, err := newEnv(o)
	if err != nil {
		return err
	}
	defer e.close()
	st, err := state.Open(filepath.Join(e.dir, "state", "smtpban.db"), state.Options{})
	if err != nil {
		return err
	}
	now := time.Now()
	bans := make([]state.Ban, o.restore)
	for i := range bans {
		a := netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
		bans[i] = state.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "postfix-sasl", Since: now, Until: now.Add(24 * time.Hour), Failures: 5, Origin: "bench", Count: 1}
	}
	if _, err := st.PutBans(bans); err != nil {
		return fmt.Errorf("store bans: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	start := time.Now()
	ready, err := e.start()
	if err != nil {
		return err
	}
	c, err := e.nft()
	if err != nil {
		return err
	}
	var inSet time.Duration
	for {
		els, err := setElements(c, "addrs4")
		if err == nil && len(els) >= o.restore {
			inSet = time.Since(start)
			break
		}
		if time.Since(start) > 60*time.Second || ctx.Err() != nil {
			return fmt.Errorf("set has %d of %d elements after 60s (err %v)", len(els), o.restore, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("restart with %d bans in state, empty table: READY=1 after %s, all %d in the kernel set after %s (a netlink dump of the set every 50 ms, itself a cost)\n",
		o.restore, ready.Round(time.Millisecond), o.restore, inSet.Round(time.Millisecond))
	d0 := time.Now()
	_, _ = setElements(c, "addrs4")
	fmt.Printf("  (one netlink dump of the full set takes %s here: the 'in the kernel set' figure is bounded by it)\n", time.Since(d0).Round(time.Millisecond))
	if t, took, ok := e.logged("state restored"); ok {
		fmt.Printf("  daemon log: \"state restored\" (bans into the empty table) took %s, logged %s after exec\n", took.Round(time.Millisecond), t.Sub(start).Round(time.Millisecond))
	}
	fmt.Printf("RESULT restart_ready_s=%.3f restart_in_set_s=%.3f\n", ready.Seconds(), inSet.Seconds())
	return nil
}
