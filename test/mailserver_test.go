package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMailServer runs a real Postfix (SMTP AUTH checked by a real Dovecot)
// and the real smtpband with the nftables backend and the shipped jail
// files in a "mail" namespace. From their own namespaces, an attacker
// guesses alice's password, a prober tries to relay, and alice sends
// herself mail: the first two end up banned in the kernel, alice's mail is
// delivered.
func TestMailServer(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	requireMailServer(t)
	// A -race binary sleeps 1 s at exit by default; this test runs the
	// client a few dozen times.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	start := time.Now()

	mail := newNetns(t, "mail")
	attacker := newNetns(t, "attacker")
	prober := newNetns(t, "prober")
	alice := newNetns(t, "user")
	link(t, mail, []string{"10.78.1.1/24"}, attacker, []string{"10.78.1.2/24"})
	link(t, mail, []string{"10.78.2.1/24"}, prober, []string{"10.78.2.2/24"})
	link(t, mail, []string{"10.78.3.1/24"}, alice, []string{"10.78.3.2/24"})
	const (
		attackerIP, proberIP, aliceIP = "10.78.1.2", "10.78.2.2", "10.78.3.2"
		attackerMX, proberMX, aliceMX = "10.78.1.1", "10.78.2.1", "10.78.3.1"
	)

	m := startMailServer(t, mail, []string{attackerMX, proberMX, aliceMX})
	waitFor(t, 10*time.Second, "Postfix to answer on 25 and 587", func() bool {
		return reachable(alice, "", aliceMX+":25", time.Second) && reachable(alice, "", aliceMX+":587", time.Second)
	})
	t.Logf("Postfix and Dovecot up in %s", time.Since(start).Round(time.Millisecond))

	config := writeMailServerConfig(t, m)
	d := startDaemon(t, config, filepath.Join(m.dir, "smtpband.sock"), mail.exec()...)
	waitSourcesOpen(t, d)

	// The three clients at once, as on a real server: alice's mail must get
	// through while the other two are being counted and banned.
	attackStart := time.Now()
	var (
		wg                       sync.WaitGroup
		guesses, probes, sending []string
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		// Both mechanisms a client can use without TLS, alternating; 5
		// is the shipped postfix-sasl maxretry.
		for i, mech := range []string{"LOGIN", "PLAIN", "LOGIN", "PLAIN", "LOGIN"} {
			guesses = append(guesses, swaks(attacker, "--server", attackerMX, "--port", "587",
				"--auth", mech, "--auth-user", mailUser, "--auth-password", fmt.Sprintf("guess-%d", i), "--quit-after", "AUTH"))
		}
	}()
	go func() {
		defer wg.Done()
		// 3 is the shipped postfix-relay maxretry.
		for i := range 3 {
			probes = append(probes, swaks(prober, "--server", proberMX, "--port", "25",
				"--from", "probe@prober.example", "--to", fmt.Sprintf("victim%d@elsewhere.example", i), "--quit-after", "RCPT"))
		}
	}()
	subject1 := "smtpban-e2e-during-" + uniq()
	go func() {
		defer wg.Done()
		sending = append(sending, sendAsAlice(alice, aliceMX, subject1))
	}()
	wg.Wait()
	for i, out := range guesses {
		if !strings.Contains(out, "535 5.7.8") {
			t.Fatalf("guess %d: want 535 from Postfix, got:\n%s", i, out)
		}
	}
	for i, out := range probes {
		if !strings.Contains(out, "Relay access denied") {
			t.Fatalf("probe %d: want Relay access denied, got:\n%s", i, out)
		}
	}
	if !strings.Contains(sending[0], "Ok: queued as") {
		t.Fatalf("alice's mail was not accepted:\n%s", sending[0])
	}

	t.Run("attacker banned by postfix-sasl", func(t *testing.T) {
		b := waitBanned(t, d, attackerIP+"/32")
		t.Logf("first guess to ban: %s", time.Since(attackStart).Round(time.Millisecond))
		if b.Jail != "postfix-sasl" || b.Failures != 5 {
			t.Errorf("ban = %+v, want jail postfix-sasl with 5 failures", b)
		}
		waitInSet(t, mail, attackerIP)
		t0 := time.Now()
		out := swaks(attacker, "--server", attackerMX, "--port", "587",
			"--auth", "PLAIN", "--auth-user", mailUser, "--auth-password", "guess-5", "--quit-after", "AUTH")
		if strings.Contains(out, "<-  220") || !strings.Contains(out, "Error connecting") {
			t.Errorf("banned attacker still talks to Postfix:\n%s", out)
		}
		t.Logf("banned attacker's swaks gave up after %s:\n%s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
	})

	t.Run("prober banned by postfix-relay", func(t *testing.T) {
		b := waitBanned(t, d, proberIP+"/32")
		if b.Jail != "postfix-relay" || b.Failures != 3 {
			t.Errorf("ban = %+v, want jail postfix-relay with 3 failures", b)
		}
		waitInSet(t, mail, proberIP)
		out := swaks(prober, "--server", proberMX, "--port", "25",
			"--from", "probe@prober.example", "--to", "victim9@elsewhere.example", "--quit-after", "RCPT")
		if strings.Contains(out, "<-  220") || !strings.Contains(out, "Error connecting") {
			t.Errorf("banned prober still talks to Postfix:\n%s", out)
		}
	})

	t.Run("alice is not banned and her mail is delivered", func(t *testing.T) {
		if b, ok := d.banned(t, aliceIP+"/32"); ok {
			t.Fatalf("alice banned: %+v", b)
		}
		subject2 := "smtpban-e2e-after-" + uniq()
		if out := sendAsAlice(alice, aliceMX, subject2); !strings.Contains(out, "Ok: queued as") {
			t.Fatalf("alice's mail after the bans was not accepted:\n%s", out)
		}
		for _, subject := range []string{subject1, subject2} {
			waitFor(t, 10*time.Second, "delivery of "+subject, func() bool {
				return strings.Contains(readOr(m.mailbox), "Subject: "+subject)
			})
		}
		// postlogd writes the log a moment after virtual writes the mailbox.
		waitFor(t, 5*time.Second, "2 deliveries in Postfix's log", func() bool {
			return strings.Count(readOr(m.maillog), "status=sent (delivered to mailbox)") == 2
		})
	})

	t.Run("status and bans tell the story", func(t *testing.T) {
		status, errOut, code := d.client("status")
		if code != 0 {
			t.Fatalf("smtpban status: exit %d: %s", code, errOut)
		}
		for _, want := range []string{"postfix-sasl", "postfix-relay", "nftables"} {
			if !strings.Contains(status, want) {
				t.Errorf("smtpban status lacks %q:\n%s", want, status)
			}
		}
		bans, errOut, code := d.client("bans")
		if code != 0 {
			t.Fatalf("smtpban bans: exit %d: %s", code, errOut)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(attackerIP) + `\S*\s+.*postfix-sasl`),
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(proberIP) + `\S*\s+.*postfix-relay`),
		} {
			if !want.MatchString(bans) {
				t.Errorf("smtpban bans has no line matching %s:\n%s", want, bans)
			}
		}
		if strings.Contains(bans, aliceIP) {
			t.Errorf("smtpban bans lists alice:\n%s", bans)
		}
		t.Logf("smtpban status:\n%s\nsmtpban bans:\n%s", status, bans)
	})

	t.Run("dovecot-auth matches Dovecot's own log", func(t *testing.T) {
		// The daemon reads Postfix's log only: dovecot-auth (off by
		// default) would count each guess a second time. Replay shows
		// its regex on what Dovecot really logged.
		out, errOut, code := d.client("replay", "-jail", "dovecot-auth", "-format", "dovecot", "-json", m.dovecotLog)
		if code != 0 {
			t.Fatalf("smtpban replay: exit %d: %s", code, errOut)
		}
		matches := map[string]int{}
		var banned []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev struct {
				Event, IP, User string
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("replay output %q: %v", line, err)
			}
			if ev.Event == "ban" {
				banned = append(banned, ev.IP)
				continue
			}
			matches[ev.IP]++
			if ev.User != mailUser {
				t.Errorf("match for %s has user %q, want %q", ev.IP, ev.User, mailUser)
			}
		}
		if matches[attackerIP] != 5 || len(matches) != 1 {
			t.Errorf("dovecot-auth matched %v, want 5 for %s only\nDovecot log:\n%s", matches, attackerIP, readOr(m.dovecotLog))
		}
		if len(banned) != 1 || banned[0] != attackerIP+"/32" {
			t.Errorf("replay bans %v, want [%s/32]", banned, attackerIP)
		}
	})

	logSamples(t, m)
	t.Logf("whole test so far: %s", time.Since(start).Round(time.Millisecond))
}

// writeMailServerConfig writes smtpband's config for m next to copies of
// the shipped Postfix and Dovecot jail files, unchanged.
func writeMailServerConfig(t *testing.T, m *mailServer) string {
	t.Helper()
	dir := filepath.Join(m.dir, "smtpban")
	if err := os.MkdirAll(filepath.Join(dir, "jails.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"postfix.hcl", "dovecot.hcl"} {
		b, err := os.ReadFile(filepath.Join("..", "configs", "jails.d", f))
		if err != nil {
			t.Fatal(err)
		}
		writeText(t, filepath.Join(dir, "jails.d", f), string(b))
	}
	path := filepath.Join(dir, "smtpban.hcl")
	writeText(t, path, fmt.Sprintf(`
state_dir = %q
socket    = %q
include   = ["jails.d/*.hcl"]

source "file" "mail" {
  path = %q
}

firewall "nftables" {
  table  = "smtpban"
  resync = "1s"
}
`, filepath.Join(m.dir, "smtpban-state"), filepath.Join(m.dir, "smtpband.sock"), m.maillog))
	return path
}

// sendAsAlice authenticates as alice and mails her a message with subject.
func sendAsAlice(ns *netns, server, subject string) string {
	return swaks(ns, "--server", server, "--port", "587",
		"--auth", "PLAIN", "--auth-user", mailUser, "--auth-password", mailPassword,
		"--from", mailUser+"@example.test", "--to", mailUser+"@example.test",
		"--header", "Subject: "+subject)
}

func waitBanned(t *testing.T, d *daemon, prefix string) apiBan {
	t.Helper()
	var b apiBan
	waitFor(t, 10*time.Second, prefix+" banned", func() bool {
		var ok bool
		b, ok = d.banned(t, prefix)
		return ok
	})
	return b
}

// waitInSet waits for addr to show up in smtpban's nftables table.
func waitInSet(t *testing.T, mail *netns, addr string) {
	t.Helper()
	waitFor(t, 5*time.Second, addr+" in the kernel's set", func() bool {
		return strings.Contains(mail.run(t, "nft", "list", "table", "inet", "smtpban"), addr)
	})
}

// logSamples shows what Postfix and Dovecot really logged, for whoever
// maintains the jail regexes.
func logSamples(t *testing.T, m *mailServer) {
	t.Helper()
	pick := func(log string, subs ...string) []string {
		var out []string
		for _, line := range strings.Split(log, "\n") {
			for _, s := range subs {
				if strings.Contains(line, s) {
					out = append(out, line)
					break
				}
			}
		}
		return out
	}
	pf := pick(readOr(m.maillog), "authentication failed", "Relay access denied", "sasl_method=")
	dc := pick(readOr(m.dovecotLog), "auth")
	t.Logf("Postfix log samples:\n%s\nDovecot log samples:\n%s", strings.Join(pf, "\n"), strings.Join(dc, "\n"))
}
