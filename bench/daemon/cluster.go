package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"smtpban/internal/cluster/etcdtest"
)

// clusterBench runs a real etcd (Debian's etcd-server, fsyncing as in
// production) in a namespace of its own and two daemons, mx1 and mx2, in
// theirs, each joined to etcd's by a veth pair: the namespaces' loopback
// and those links are all the traffic there is. In one run it measures
//   - idle local ban latency on mx1 (append of the 5th failure -> mx1's
//     kernel set), and for the same bans the propagation to mx2 (mx1's
//     kernel set -> mx2's), and the whole way (append -> mx2's set);
//   - a burst of o.addrs4 addresses x 3 failures on mx1: from the write to
//     all of them in mx2's kernel set (and mx1's), then mx2's state is
//     checked to hold them.
func clusterBench(ctx context.Context, o options) error {
	if err := etcdtest.Available(); err != nil {
		return err
	}
	ens := "smtpban-bench-etcd-" + fmt.Sprint(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ens).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ens).Run()
	_ = exec.Command("ip", "netns", "exec", ens, "ip", "link", "set", "lo", "up").Run()
	edir, err := os.MkdirTemp("", "smtpban-bench-etcd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(edir)
	// Its client port, chosen now: the links must exist before etcd
	// starts (it binds their addresses), and the configs name the port.
	var port string

	o.saslRetry = 0 // shipped maxretry (5) for latency; the burst uses 3 below
	mk := func(name string, i int) (*env, error) {
		e, err := newEnv(o)
		if err != nil {
			return nil, err
		}
		if err := vethTo(ens, e.ns, fmt.Sprintf("10.79.%d.1/24", i), fmt.Sprintf("10.79.%d.2/24", i)); err != nil {
			e.close()
			return nil, err
		}
		return e, nil
	}
	cfg := func(e *env, name string, i int) error {
		return appendFile(e.config, fmt.Sprintf("cluster \"etcd\" {\n  endpoints = [\"http://10.79.%d.1:%s\"]\n  host_name = %q\n}\n", i, port, name))
	}
	a, err := mk("mx1", 1)
	if err != nil {
		return err
	}
	defer a.close()
	b, err := mk("mx2", 2)
	if err != nil {
		return err
	}
	defer b.close()
	hosts := []string{"10.79.1.1", "10.79.2.1"}
	etcd, err := etcdtest.Start(ctx, etcdtest.Options{Dir: edir, Wrap: []string{"ip", "netns", "exec", ens}, Hosts: hosts, Fsync: true})
	if err != nil {
		return err
	}
	defer etcd.Stop()
	url := etcd.Members[0].ClientURL
	port = url[strings.LastIndex(url, ":")+1:]
	if err := cfg(a, "mx1", 1); err != nil {
		return err
	}
	if err := cfg(b, "mx2", 2); err != nil {
		return err
	}
	// The burst's maxretry 3 on mx1 (postfix-sasl), set before it starts.
	if err := setSASLRetry(filepath.Join(a.dir, "jails.d", "postfix.hcl"), 3); err != nil {
		return err
	}
	for _, e := range []*env{a, b} {
		if _, err := e.start(); err != nil {
			return err
		}
		if err := e.sync(ctx); err != nil {
			return err
		}
	}
	if err := waitConnected(ctx, a, b); err != nil {
		return err
	}
	ac, err := a.nft()
	if err != nil {
		return err
	}
	bs, err := b.setConn()
	if err != nil {
		return err
	}
	defer bs.Close()

	// Idle: with maxretry 3, banOnce's 4 lines then 1 would ban on the
	// 3rd; use 2 then 1.
	var local, prop, whole []time.Duration
	for i := range o.bans {
		addr := latencyAddr(i)
		for range 2 {
			if err := a.appendLines(saslLine(time.Now(), addr.String())); err != nil {
				return err
			}
		}
		time.Sleep(20 * time.Millisecond)
		t0 := time.Now()
		if err := a.appendLines(saslLine(time.Now(), addr.String())); err != nil {
			return err
		}
		var tA, tB time.Time
		key := addr.AsSlice()
		for tA.IsZero() || tB.IsZero() {
			now := time.Now()
			if tA.IsZero() {
				if els, err := setElements(ac, "addrs4"); err == nil && els[string(key)] {
					tA = now
				}
			}
			if tB.IsZero() {
				if ok, err := bs.has("addrs4", key); err == nil && ok {
					tB = time.Now()
				}
			}
			if time.Since(t0) > 10*time.Second {
				return fmt.Errorf("%s not in both sets after 10s (mx1 %v, mx2 %v)", addr, !tA.IsZero(), !tB.IsZero())
			}
		}
		local = append(local, tA.Sub(t0))
		whole = append(whole, tB.Sub(t0))
		prop = append(prop, max(tB.Sub(tA), 0))
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("cluster: etcd %s (fsync) in its own namespace; mx1 and mx2 in theirs, each on a veth pair to it\n", etcdVersion())
	fmt.Printf("idle, %d bans on mx1, one at a time (maxretry 3: the 3rd failure line tips it):\n", o.bans)
	fmt.Printf("  local   append -> mx1's kernel set: p50 %s  p90 %s  p99 %s  max %s\n", pct(local, 50), pct(local, 90), pct(local, 99), pct(local, 100))
	fmt.Printf("  to mx2  mx1's set -> mx2's set:    p50 %s  p90 %s  p99 %s  max %s\n", pct(prop, 50), pct(prop, 90), pct(prop, 99), pct(prop, 100))
	fmt.Printf("  whole   append -> mx2's set:       p50 %s  p90 %s  p99 %s  max %s\n", pct(whole, 50), pct(whole, 90), pct(whole, 99), pct(whole, 100))

	// Burst.
	as, err := a.setConn()
	if err != nil {
		return err
	}
	defer as.Close()
	now := time.Now()
	var sb strings.Builder
	for range 3 {
		for i := range o.addrs4 {
			sb.WriteString(saslLine(now, burstAddr(i).String()))
			sb.WriteByte('\n')
		}
	}
	f, err := os.OpenFile(a.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	t0 := time.Now()
	if _, err := f.WriteString(sb.String()); err != nil {
		return err
	}
	count := func(s *setConn) int {
		n := 0
		_ = s.keys("addrs4", func(k []byte) {
			if i := burstIndex(k); i >= 0 && i < o.addrs4 {
				n++
			}
		})
		return n
	}
	var allA, allB time.Duration
	for allA == 0 || allB == 0 {
		if allA == 0 && count(as) == o.addrs4 {
			allA = time.Since(t0)
		}
		if allB == 0 && count(bs) == o.addrs4 {
			allB = time.Since(t0)
		}
		if time.Since(t0) > 120*time.Second || ctx.Err() != nil {
			return fmt.Errorf("burst: mx1 %d, mx2 %d of %d after %s", count(as), count(bs), o.addrs4, time.Since(t0).Round(time.Millisecond))
		}
		time.Sleep(5 * time.Millisecond)
	}
	held, err := bansFrom(ctx, b, "mx1")
	if err != nil {
		return err
	}
	fmt.Printf("burst, %d addresses x 3 failures in one write on mx1:\n", o.addrs4)
	fmt.Printf("  all in mx1's kernel set %s, all in mx2's kernel set %s (state of mx2 then holds %d bans from mx1)\n",
		allA.Round(time.Millisecond), allB.Round(time.Millisecond), held)
	fmt.Printf("RESULT cluster_idle_local_p50_ms=%.3f cluster_idle_local_p99_ms=%.3f cluster_prop_p50_ms=%.3f cluster_prop_p99_ms=%.3f cluster_burst_%d_mx2_s=%.3f\n",
		ms(pct(local, 50)), ms(pct(local, 99)), ms(pct(prop, 50)), ms(pct(prop, 99)), o.addrs4, allB.Seconds())
	if held < o.addrs4 {
		return fmt.Errorf("mx2's state holds %d of the %d burst bans", held, o.addrs4)
	}
	return nil
}

func etcdVersion() string {
	out, err := exec.Command(etcdtest.Binary, "--version").Output()
	if err != nil {
		return "?"
	}
	v, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(v, "etcd Version: ")
}

// vethTo joins namespaces a and b with a veth pair.
func vethTo(a, b, aAddr, bAddr string) error {
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	va, vb := "ca"+id, "cb"+id
	cmds := [][]string{
		{"ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b},
		{"ip", "netns", "exec", a, "ip", "addr", "add", aAddr, "dev", va},
		{"ip", "netns", "exec", b, "ip", "addr", "add", bAddr, "dev", vb},
		{"ip", "netns", "exec", a, "ip", "link", "set", va, "up"},
		{"ip", "netns", "exec", b, "ip", "link", "set", vb, "up"},
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err
}

func waitConnected(ctx context.Context, es ...*env) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, e := range es {
		for {
			out, err := exec.CommandContext(ctx, filepath.Join(e.o.bin, "smtpban"), "-socket", e.socket, "status", "-json").Output()
			var st struct {
				Cluster *struct {
					Connected bool `json:"connected"`
				} `json:"cluster"`
			}
			if err == nil && json.Unmarshal(out, &st) == nil && st.Cluster != nil && st.Cluster.Connected {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("daemon not connected to etcd after 30s: %s", strings.Join(e.tail(), "\n"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// bansFrom counts e's active bans whose origin is origin.
func bansFrom(ctx context.Context, e *env, origin string) (int, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(e.o.bin, "smtpban"), "-socket", e.socket, "bans", "-json").Output()
	if err != nil {
		return 0, fmt.Errorf("smtpban bans: %w", err)
	}
	var r struct {
		Bans []struct {
			Origin string `json:"origin"`
		} `json:"bans"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, err
	}
	n := 0
	for _, b := range r.Bans {
		if b.Origin == origin {
			n++
		}
	}
	return n, nil
}
