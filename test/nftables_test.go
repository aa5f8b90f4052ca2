package test

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBansReachTheKernel runs the real smtpband with the nftables backend in
// a "mail" namespace and shows, from an "attacker" and a "bystander"
// namespace, that bans cut the attacker off (new and open connections),
// leave the bystander alone, lift, expire, survive a restart and come back
// after someone flushes the ruleset.
func TestBansReachTheKernel(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	top := t // the daemon outlives the subtests
	mail := newNetns(t, "mail")
	attacker := newNetns(t, "attacker")
	bystander := newNetns(t, "bystander")
	// The IPv6 attacker's /64 is routed, not on the link: a /64 ban must
	// not cover the mail host's own address (smtpband would refuse it).
	link(t, mail, []string{"10.77.1.1/24", "fd77:1::1/64"}, attacker, []string{"10.77.1.2/24", "fd77:1::2/64", "fd77:2::2/64", "fd77:2::3/64"})
	mail.run(t, "ip", "-6", "route", "add", "fd77:2::/64", "via", "fd77:1::2")
	link(t, mail, []string{"10.77.2.1/24"}, bystander, []string{"10.77.2.2/24"})
	smtpLike(t, mail, ":25")
	smtpLike(t, mail, ":587")

	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
	config := writeConfig(t, dir, logPath, `firewall "nftables" {
  table  = "smtpban"
  resync = "1s"
}`, 3, "1h")
	// IPv6 attackers are keyed on their /64: the second jail file adds that.
	appendConfig(t, config, fmt.Sprintf(`
jail "postfix-sasl-v6" {
  source    = "mail"
  programs  = ["postfix*/*smtpd"]
  failregex = [%q]
  maxretry  = 3
  findtime  = "1h"
  bantime   = "1h"
  key       = "ip6/64"
}
`, saslRegex+`.*: v6$`))
	socket := filepath.Join(dir, "smtpband.sock")
	d := startDaemon(t, config, socket, mail.exec()...)
	waitSourcesOpen(t, d)

	const mx, submission = "10.77.1.1:25", "10.77.1.1:587"
	if !reachable(attacker, "", mx, 2*time.Second) || !reachable(bystander, "", "10.77.2.1:25", 2*time.Second) {
		t.Fatal("before any ban, attacker and bystander must reach the mail host")
	}
	session, err := dial(attacker, "", submission, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	sr := bufio.NewReader(session)
	if _, err := sr.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if !alive(sr, session, 2*time.Second) {
		t.Fatal("open session does not answer before the ban")
	}

	t.Run("ban cuts new and open connections", func(t *testing.T) {
		start := time.Now()
		for range 3 {
			appendLines(t, logPath, saslFailure("10.77.1.2"))
		}
		waitFor(t, 5*time.Second, "10.77.1.2 in the kernel set", func() bool {
			return strings.Contains(mail.run(t, "nft", "list", "table", "inet", "smtpban"), "10.77.1.2")
		})
		t.Logf("log line to kernel set element: %s (includes nft polling)", time.Since(start))
		if reachable(attacker, "", mx, 500*time.Millisecond) {
			t.Error("attacker still connects after the ban")
		}
		if alive(sr, session, time.Second) {
			t.Error("attacker's open session still answers after the ban")
		}
		if !reachable(bystander, "", "10.77.2.1:25", 2*time.Second) {
			t.Error("bystander cut off by the attacker's ban")
		}
	})

	t.Run("unban lets the attacker back", func(t *testing.T) {
		out, errOut, code := d.client("unban", "10.77.1.2")
		if code != 0 || !strings.Contains(out, "10.77.1.2") {
			t.Fatalf("smtpban unban: exit %d\n%s%s", code, out, errOut)
		}
		waitFor(t, 5*time.Second, "attacker to connect again", func() bool {
			return reachable(attacker, "", mx, 300*time.Millisecond)
		})
	})

	t.Run("short ban expires in the kernel by itself", func(t *testing.T) {
		if _, errOut, code := d.client("ban", "10.77.1.2", "-for", "2s"); code != 0 {
			t.Fatalf("smtpban ban: exit %d: %s", code, errOut)
		}
		waitFor(t, 3*time.Second, "the manual ban to apply", func() bool {
			return !reachable(attacker, "", mx, 200*time.Millisecond)
		})
		waitFor(t, 10*time.Second, "the ban to expire", func() bool {
			return reachable(attacker, "", mx, 300*time.Millisecond)
		})
	})

	t.Run("restart restores bans into an empty table", func(t *testing.T) {
		if _, errOut, code := d.client("ban", "10.77.1.2", "-for", "1h"); code != 0 {
			t.Fatalf("smtpban ban: exit %d: %s", code, errOut)
		}
		d.kill(syscall.SIGKILL)
		mail.run(t, "nft", "delete", "table", "inet", "smtpban")
		if !reachable(attacker, "", mx, time.Second) {
			t.Fatal("attacker blocked with the table gone")
		}
		d = startDaemon(top, config, socket, mail.exec()...)
		waitFor(t, 5*time.Second, "the ban restored after restart", func() bool {
			return !reachable(attacker, "", mx, 200*time.Millisecond)
		})
	})

	t.Run("flush ruleset is repaired", func(t *testing.T) {
		mail.run(t, "nft", "flush", "ruleset")
		start := time.Now()
		waitFor(t, 10*time.Second, "the ban restored after nft flush ruleset", func() bool {
			return strings.Contains(mail.run(t, "nft", "list", "ruleset"), "10.77.1.2")
		})
		t.Logf("restored %s after the flush", time.Since(start))
		if reachable(attacker, "", mx, 300*time.Millisecond) {
			t.Error("attacker connects after the restore")
		}
	})

	t.Run("ipv6 prefix ban catches the whole /64", func(t *testing.T) {
		if !reachable(attacker, "fd77:2::3", "[fd77:1::1]:25", 2*time.Second) {
			t.Fatal("fd77:2::3 cannot connect before the ban")
		}
		for range 3 {
			appendLines(t, logPath, saslFailure("fd77:2::2")+": v6")
		}
		waitFor(t, 5*time.Second, "the /64 banned", func() bool {
			_, ok := d.banned(t, "fd77:2::/64")
			return ok
		})
		waitFor(t, 3*time.Second, "fd77:2::3 (same /64) cut off", func() bool {
			return !reachable(attacker, "fd77:2::3", "[fd77:1::1]:25", 200*time.Millisecond)
		})
		if reachable(attacker, "fd77:2::2", "[fd77:1::1]:25", 300*time.Millisecond) {
			t.Error("fd77:2::2 still connects")
		}
		if !reachable(attacker, "fd77:1::2", "[fd77:1::1]:25", 2*time.Second) {
			t.Error("fd77:1::2, outside the banned /64, is cut off")
		}
	})
}
