package firewall

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"testing"
	"time"
)

// TestNFTDropsTraffic proves the rule on real packets: a veth pair joins a
// "mail" namespace (echo listener on port 25, smtpban's table) and an
// "attacker" namespace holding the attacker's and a bystander's addresses.
func TestNFTDropsTraffic(t *testing.T) {
	t.Parallel()
	mail, outside := mustNetNS(t), mustNetNS(t)
	const (
		mailIP      = "10.199.0.1"
		attackerIP  = "10.199.0.2"
		bystanderIP = "10.199.0.3"
	)
	vm, va := "sbm"+mail.name[len(mail.name)-6:], "sba"+mail.name[len(mail.name)-6:]
	if out, err := runIP("link", "add", vm, "netns", mail.name, "type", "veth", "peer", "name", va, "netns", outside.name); err != nil {
		skipOrFail(t, "cannot create veth pair: "+err.Error()+": "+out)
	}
	mail.exec(t, "ip", "addr", "add", mailIP+"/24", "dev", vm)
	mail.exec(t, "ip", "link", "set", vm, "up")
	outside.exec(t, "ip", "addr", "add", attackerIP+"/24", "dev", va)
	outside.exec(t, "ip", "addr", "add", bystanderIP+"/24", "dev", va)
	outside.exec(t, "ip", "link", "set", va, "up")

	var ln net.Listener
	if err := mail.in(func() (err error) { ln, err = net.Listen("tcp", mailIP+":25"); return err }); err != nil {
		t.Fatalf("listen in mail namespace: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()

	dial := func(from string) (net.Conn, error) {
		var c net.Conn
		err := outside.in(func() (err error) {
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			c, err = d.Dial("tcp", mailIP+":25")
			return err
		})
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	// echo sends a line and waits up to a second for it to come back.
	echo := func(c net.Conn, line string) error {
		if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
			return err
		}
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			return err
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if got != line+"\n" {
			return errors.New("echo mismatch: " + got)
		}
		return nil
	}

	session, err := dial(attackerIP)
	if err != nil {
		t.Fatalf("attacker connect before ban: %v", err)
	}
	if err := echo(session, "AUTH LOGIN"); err != nil {
		t.Fatalf("attacker session before ban: %v", err)
	}

	n := mustNFT(t, mail, NFTOptions{})
	ctx := context.Background()
	mustAdd(t, n, Entry{pfx(attackerIP + "/32"), time.Hour})

	if err := echo(session, "AUTH LOGIN again"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("open session after ban: err = %v, want a timeout (packets dropped)", err)
	}
	if _, err := dial(attackerIP); err == nil {
		t.Errorf("attacker connected after ban")
	} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Errorf("attacker connect after ban: %v, want a timeout", err)
	}
	by, err := dial(bystanderIP)
	if err != nil {
		t.Fatalf("bystander connect: %v", err)
	}
	if err := echo(by, "EHLO bystander"); err != nil {
		t.Errorf("bystander session: %v", err)
	}
	counter := regexp.MustCompile(`ip saddr @addrs4 tcp dport @ports counter packets ([1-9]\d*)`)
	if out := listTable(t, mail); !counter.MatchString(out) {
		t.Errorf("drop rule counted no packets:\n%s", out)
	}

	if err := n.Remove(ctx, []netip.Prefix{pfx(attackerIP + "/32")}); err != nil {
		t.Fatal(err)
	}
	again, err := dial(attackerIP)
	if err != nil {
		t.Fatalf("attacker connect after unban: %v", err)
	}
	if err := echo(again, "QUIT"); err != nil {
		t.Errorf("attacker session after unban: %v", err)
	}
}

func runIP(args ...string) (string, error) {
	out, err := execCommand("ip", args...)
	return string(out), err
}
