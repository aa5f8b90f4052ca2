package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"smtpban/internal/cluster/etcdtest"
)

// clusterBan is a ban as `smtpban bans -json` shows it, with its origin.
type clusterBan struct {
	Prefix string `json:"prefix"`
	Origin string `json:"origin"`
	Jail   string `json:"jail"`
}

func (d *daemon) clusterBans(t *testing.T) map[string]clusterBan {
	t.Helper()
	out, errOut, code := d.client("bans", "-json")
	if code != 0 {
		t.Fatalf("smtpban bans: %d %s", code, errOut)
	}
	var r struct{ Bans []clusterBan }
	if err := jsonUnmarshal(out, &r); err != nil {
		t.Fatalf("bans -json: %v", err)
	}
	m := map[string]clusterBan{}
	for _, b := range r.Bans {
		m[b.Prefix] = b
	}
	return m
}

func (d *daemon) clusterConnected(t *testing.T) bool {
	out, _, code := d.client("status", "-json")
	if code != 0 {
		return false
	}
	var st struct {
		Cluster *struct {
			Connected bool  `json:"connected"`
			Revision  int64 `json:"revision"`
		} `json:"cluster"`
	}
	return jsonUnmarshal(out, &st) == nil && st.Cluster != nil && st.Cluster.Connected
}

func inKernel(t *testing.T, ns *netns, addr string) bool {
	return strings.Contains(ns.run(t, "nft", "list", "table", "inet", "smtpban"), addr)
}

// TestClusterAcrossHosts runs two real smtpband daemons, mx1 and mx2, each
// in its own network namespace with its own nftables table, sharing bans
// through a real etcd (Debian's etcd-server) in a third namespace. Each
// mail namespace reaches etcd over a veth pair of its own: etcd listens
// on its side of each pair, and nothing listens outside the namespaces.
func TestClusterAcrossHosts(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	if err := etcdtest.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a real etcd is needed: %v", err)
		}
		t.Skipf("a real etcd is needed: %v", err)
	}
	top := t // daemons outlive the subtests
	ens := newNetns(t, "etcd")
	mx1 := newNetns(t, "mx1")
	mx2 := newNetns(t, "mx2")
	link(t, ens, []string{"10.78.1.1/24"}, mx1, []string{"10.78.1.2/24"})
	link(t, ens, []string{"10.78.2.1/24"}, mx2, []string{"10.78.2.2/24"})
	e, err := etcdtest.Start(t.Context(), etcdtest.Options{Dir: t.TempDir(), Wrap: ens.exec(), Hosts: []string{"10.78.1.1", "10.78.2.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	port := e.Members[0].ClientURL[strings.LastIndex(e.Members[0].ClientURL, ":")+1:]

	start := func(name string, ns *netns, etcdAddr string) (*daemon, string) {
		dir := t.TempDir()
		logPath := filepath.Join(dir, "mail.log")
		appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
		// The default resync (10 s): a resync of 10,000 bans holds the
		// ban manager a while, and a race-built one longer.
		config := writeConfig(t, dir, logPath, fmt.Sprintf(`firewall "nftables" {
  table  = "smtpban"
}

cluster "etcd" {
  endpoints = ["http://%s:%s"]
  host_name = %q
}`, etcdAddr, port, name), 3, "1h")
		d := startDaemon(t, config, filepath.Join(dir, "smtpband.sock"), ns.exec()...)
		waitSourcesOpen(t, d)
		return d, logPath
	}
	a, aLog := start("mx1", mx1, "10.78.1.1")
	b, _ := start("mx2", mx2, "10.78.2.1")
	waitFor(t, 15*time.Second, "both daemons connected to etcd", func() bool {
		return a.clusterConnected(t) && b.clusterConnected(t)
	})

	t.Run("ban on mx1 is on mx2 within 1s", func(t *testing.T) {
		for range 3 {
			appendLines(t, aLog, saslFailure("203.0.113.7"))
		}
		waitFor(t, 5*time.Second, "mx1 bans 203.0.113.7", func() bool { return inKernel(t, mx1, "203.0.113.7") })
		banned := time.Now()
		// The manager saves a ban before it adds it to the kernel set:
		// once in mx2's set, it is in mx2's state (checked next). Polling
		// the set alone keeps the client's start-up out of the second.
		waitFor(t, time.Second, "203.0.113.7 in mx2's kernel set", func() bool { return inKernel(t, mx2, "203.0.113.7") })
		t.Logf("in mx2's kernel set %v after mx1's (polling included)", time.Since(banned).Round(time.Millisecond))
		if got := b.clusterBans(t)["203.0.113.7/32"]; got.Origin != "mx1" || got.Jail != "postfix-sasl" {
			t.Errorf("mx2 shows %+v; want origin mx1, jail postfix-sasl", got)
		}
		out, _ := must(t, b, 0, "bans")
		contains(t, "smtpban bans on mx2", out, "ORIGIN", "mx1")
	})

	t.Run("unban on mx2 lifts on mx1", func(t *testing.T) {
		must(t, b, 0, "unban", "203.0.113.7")
		waitFor(t, time.Second, "203.0.113.7 lifted on mx1", func() bool {
			_, ok := a.clusterBans(t)["203.0.113.7/32"]
			return !ok && !inKernel(t, mx1, "203.0.113.7")
		})
	})

	t.Run("unban -local stays local", func(t *testing.T) {
		must(t, a, 0, "ban", "198.51.100.9")
		waitFor(t, 2*time.Second, "manual ban on mx2", func() bool { return inKernel(t, mx2, "198.51.100.9") })
		must(t, b, 0, "unban", "-local", "198.51.100.9")
		if inKernel(t, mx2, "198.51.100.9") {
			t.Error("unban -local left it in mx2's kernel set")
		}
		time.Sleep(500 * time.Millisecond)
		if !inKernel(t, mx1, "198.51.100.9") {
			t.Error("unban -local on mx2 lifted it on mx1")
		}
	})

	t.Run("a ban of mx2's own address is not applied on mx2", func(t *testing.T) {
		must(t, a, 0, "ban", "10.78.2.2")
		must(t, a, 0, "ban", "198.51.100.10") // after it: once this is in, the other was seen
		waitFor(t, 2*time.Second, "the next ban on mx2", func() bool { return inKernel(t, mx2, "198.51.100.10") })
		if _, ok := b.clusterBans(t)["10.78.2.2/32"]; ok || inKernel(t, mx2, "10.78.2.2") {
			t.Error("mx2 applied a ban of its own address")
		}
		if !inKernel(t, mx1, "10.78.2.2") {
			t.Error("mx1 should hold its ban of 10.78.2.2 (not its own address)")
		}
	})

	t.Run("etcd down 10s while mx1 bans: nothing lost", func(t *testing.T) {
		if testing.Short() {
			t.Skip("etcd is down for 10 s")
		}
		e.Stop()
		down := time.Now()
		waitFor(t, 5*time.Second, "mx1 degraded", func() bool { return !a.clusterConnected(t) })
		out, _ := must(t, a, 0, "status")
		contains(t, "smtpban status on mx1 while etcd is down", out, "DEGRADED")
		var addrs []string
		for i := range 20 {
			addr := fmt.Sprintf("203.0.113.%d", 100+i)
			addrs = append(addrs, addr)
			for range 3 {
				appendLines(t, aLog, saslFailure(addr))
			}
			if i == 9 {
				// Half of them in the queue across a restart of mx1.
				waitFor(t, 5*time.Second, "mx1 bans "+addr, func() bool { return inKernel(t, mx1, addr) })
				a.kill(syscall.SIGTERM)
				a = startDaemon(top, a.config, a.socket, mx1.exec()...)
				waitSourcesOpen(t, a)
			}
		}
		waitFor(t, 5*time.Second, "mx1 bans all 20 with etcd down", func() bool {
			got := mx1.run(t, "nft", "list", "table", "inet", "smtpban")
			for _, addr := range addrs {
				if !strings.Contains(got, addr) {
					return false
				}
			}
			return true
		})
		time.Sleep(10*time.Second - time.Since(down))
		if err := e.Members[0].Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "all 20 on mx2 after etcd is back", func() bool {
			got := mx2.run(t, "nft", "list", "table", "inet", "smtpban")
			for _, addr := range addrs {
				if !strings.Contains(got, addr) {
					return false
				}
			}
			return true
		})
		bans := b.clusterBans(t)
		for _, addr := range addrs {
			if bans[addr+"/32"].Origin != "mx1" {
				t.Errorf("mx2's state: %s is %+v, want a ban from mx1", addr, bans[addr+"/32"])
			}
		}
	})

	t.Run("burst of 10,000 on mx1 converges on mx2", func(t *testing.T) {
		if testing.Short() {
			t.Skip("10,000 bans")
		}
		const n = 10000
		var sb strings.Builder
		for range 3 {
			for i := range n {
				sb.WriteString(saslFailure(fmt.Sprintf("100.%d.%d.%d", 64+i>>16, (i>>8)&0xff, i&0xff)))
				sb.WriteByte('\n')
			}
		}
		appendLines(t, aLog, strings.TrimSuffix(sb.String(), "\n"))
		start := time.Now()
		count := func(ns *netns) int {
			return strings.Count(ns.run(t, "nft", "list", "set", "inet", "smtpban", "addrs4"), "100.64.")
		}
		waitFor(t, 90*time.Second, "10,000 bans in mx2's kernel set", func() bool { return count(mx2) >= n })
		t.Logf("10,000 bans in mx2's kernel set %v after the write on mx1 (race-built binaries)", time.Since(start).Round(time.Millisecond))
		from := 0
		for p, b := range b.clusterBans(t) {
			if strings.HasPrefix(p, "100.64.") && b.Origin == "mx1" {
				from++
			}
		}
		if from != n {
			t.Errorf("mx2's state holds %d of the %d bans from mx1", from, n)
		}
	})

	t.Run("status shows the cluster", func(t *testing.T) {
		out, _ := must(t, b, 0, "status")
		contains(t, "smtpban status on mx2", out, "cluster: host mx2, connected", "10.78.2.1:"+port, "0 queued to publish")
	})
}
