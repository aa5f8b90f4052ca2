package test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// policyPort is where smtpband's policy service listens in the mail
// namespace; Postfix asks it at every recipient.
const policyListen = "127.0.0.1:10040"

// enablePolicy points a running Postfix at smtpband's policy service, as
// the README says, and reloads it.
func enablePolicy(t *testing.T, mail *netns, m *mailServer) {
	t.Helper()
	mail.run(t, "postconf", "-c", m.postfixEtc, "-e",
		"smtpd_recipient_restrictions=check_policy_service inet:"+policyListen,
		"smtpd_policy_service_try_limit=1",
		"smtpd_policy_service_timeout=2s",
		"smtpd_policy_service_default_action=DUNNO")
	mail.run(t, "postfix", "-c", m.postfixEtc, "reload")
}

// accountsConfig writes smtpband's config for m with the account watch,
// the policy service and a hook that keeps the alert it is given.
func accountsConfig(t *testing.T, m *mailServer, hcl string) (config, hookOut string) {
	t.Helper()
	config = writeMailServerConfig(t, m)
	hookOut = filepath.Join(m.dir, "hook.json")
	hook := filepath.Join(m.dir, "hook.sh")
	writeText(t, hook, "#!/bin/sh\ncat >> "+hookOut+"\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, config, fmt.Sprintf(`
policy {
  listen = %q
}
accounts {
  hook = [%q]
}
%s
`, policyListen, hook, hcl))
	return config, hookOut
}

type accountSummary struct {
	User         string `json:"user"`
	MessagesHour int    `json:"messages_1h"`
	Held         bool   `json:"held"`
	HeldWhy      string `json:"held_why"`
	Failing      int    `json:"failing_addresses"`
}

func (d *daemon) accounts(t *testing.T) []accountSummary {
	t.Helper()
	var r struct {
		Accounts []accountSummary `json:"accounts"`
	}
	d.clientJSON(t, &r, "accounts")
	return r.Accounts
}

func (d *daemon) account(t *testing.T, user string) (accountSummary, bool) {
	t.Helper()
	for _, a := range d.accounts(t) {
		if a.User == user {
			return a, true
		}
	}
	return accountSummary{}, false
}

// queueEntry is a line of `postqueue -j`.
type queueEntry struct {
	QueueName string `json:"queue_name"`
	QueueID   string `json:"queue_id"`
}

func postqueue(t *testing.T, mail *netns, m *mailServer) []queueEntry {
	t.Helper()
	out := mail.run(t, "postqueue", "-c", m.postfixEtc, "-j")
	var es []queueEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e queueEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("postqueue -j line %q: %v", line, err)
		}
		es = append(es, e)
	}
	return es
}

func held(es []queueEntry) []string {
	var ids []string
	for _, e := range es {
		if e.QueueName == "hold" {
			ids = append(ids, e.QueueID)
		}
	}
	return ids
}

// TestCompromisedAccount: alice sends a few messages from her own
// network; then her password is used from another one for a burst. The
// message over the limit is held by the policy service (the client still
// sees 250), the attacker's address is banned in the kernel, the hook
// gets the alert, `smtpban accounts` shows the hold, and `smtpban account
// release` plus the postsuper line it prints let the mail and alice go.
func TestCompromisedAccount(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	requireMailServer(t)
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))

	mail := newNetns(t, "mail")
	alice := newNetns(t, "user")
	attacker := newNetns(t, "attacker")
	link(t, mail, []string{"10.81.3.1/24"}, alice, []string{"10.81.3.2/24"})
	link(t, mail, []string{"10.81.1.1/24"}, attacker, []string{"10.81.1.2/24"})
	const (
		aliceIP, attackerIP = "10.81.3.2", "10.81.1.2"
		aliceMX, attackerMX = "10.81.3.1", "10.81.1.1"
	)
	m := startMailServer(t, mail, []string{aliceMX, attackerMX})
	enablePolicy(t, mail, m)
	// alice's office is on the ignore list: an account held never bans
	// the network its owner works from.
	config, hookOut := accountsConfig(t, m, `
account "*" {
  messages_per_hour = 5
}
`)
	cfg := readOr(config)
	cfg = strings.Replace(cfg, "state_dir", "ignore = [\""+aliceIP+"\"]\nstate_dir", 1)
	writeText(t, config, cfg)
	d := startDaemon(t, config, filepath.Join(m.dir, "smtpband.sock"), mail.exec()...)
	waitSourcesOpen(t, d)
	waitFor(t, 10*time.Second, "Postfix to answer on 587", func() bool {
		return reachable(alice, "", aliceMX+":587", time.Second)
	})

	// alice: 3 messages, all delivered.
	var legit []string
	for i := range 3 {
		s := fmt.Sprintf("legit-%d-%s", i, uniq())
		legit = append(legit, s)
		if out := sendAsAlice(alice, aliceMX, s); !strings.Contains(out, "Ok: queued as") {
			t.Fatalf("alice's message %d not accepted:\n%s", i, out)
		}
	}
	for _, s := range legit {
		waitFor(t, 10*time.Second, "delivery of "+s, func() bool { return strings.Contains(readOr(m.mailbox), "Subject: "+s) })
	}
	if a, _ := d.account(t, mailUser); a.Held || a.MessagesHour != 3 {
		t.Fatalf("after alice's 3 messages: %+v, want 3 messages and not held", a)
	}

	// The attacker, with alice's password: messages 4 and 5 of the hour
	// pass, the 6th is held (250 to the client), and then the attacker is
	// banned: its next connection goes nowhere.
	var burst []string
	var heldSubject string
	for i := range 10 {
		s := fmt.Sprintf("spam-%d-%s", i, uniq())
		out := sendAsAlice(attacker, attackerMX, s)
		if !strings.Contains(out, "Ok: queued as") {
			if i < 3 {
				t.Fatalf("attacker's message %d not accepted before the limit:\n%s", i, out)
			}
			if !strings.Contains(out, "Error connecting") && !strings.Contains(out, "Timeout") && !strings.Contains(out, "timed out") {
				t.Errorf("attacker's message %d failed, but not for the ban:\n%s", i, out)
			}
			break
		}
		burst = append(burst, s)
		if i == 2 {
			heldSubject = s
		}
		waitFor(t, 5*time.Second, "the attacker's ban, or the hold to pass", func() bool {
			b, _ := d.banned(t, attackerIP+"/32")
			return b.Prefix != "" || i < 2
		})
	}
	if heldSubject == "" {
		t.Fatalf("the attacker's third message never got through to be held; burst %v", burst)
	}
	t.Run("the message over the limit is on hold, not delivered", func(t *testing.T) {
		var ids []string
		waitFor(t, 10*time.Second, "a message in the hold queue", func() bool {
			ids = held(postqueue(t, mail, m))
			return len(ids) >= 1
		})
		if len(ids) != len(burst)-2 {
			t.Errorf("held %v, want the %d messages after the limit", ids, len(burst)-2)
		}
		time.Sleep(time.Second) // give a wrongly released message the time to arrive
		for _, s := range burst[2:] {
			if strings.Contains(readOr(m.mailbox), "Subject: "+s) {
				t.Errorf("held message %s was delivered", s)
			}
		}
		if !strings.Contains(readOr(m.maillog), "hold: RCPT from") {
			t.Errorf("Postfix logged no hold")
		}
	})
	t.Run("the attacker is banned in nftables, alice is not", func(t *testing.T) {
		b := waitBanned(t, d, attackerIP+"/32")
		if b.Jail != "account" {
			t.Errorf("ban %+v, want jail account", b)
		}
		waitInSet(t, mail, attackerIP)
		if _, ok := d.banned(t, aliceIP+"/32"); ok {
			t.Errorf("alice's ignored address was banned")
		}
	})
	t.Run("the hook got the alert", func(t *testing.T) {
		var al struct {
			User      string   `json:"user"`
			Limit     string   `json:"limit"`
			Value     int      `json:"value"`
			Max       int      `json:"max"`
			Addresses []string `json:"addresses"`
		}
		waitFor(t, 10*time.Second, "the hook's output", func() bool { return readOr(hookOut) != "" && !strings.HasPrefix(readOr(hookOut), "(") })
		if err := json.Unmarshal([]byte(strings.SplitN(readOr(hookOut), "\n", 2)[0]), &al); err != nil {
			t.Fatalf("hook output: %v\n%s", err, readOr(hookOut))
		}
		if al.User != mailUser || al.Limit != "messages_per_hour" || al.Value != 6 || al.Max != 5 || !hasString(al.Addresses, attackerIP) {
			t.Errorf("alert %+v", al)
		}
	})
	t.Run("smtpban accounts shows the hold", func(t *testing.T) {
		out, errOut, code := d.client("accounts")
		if code != 0 {
			t.Fatalf("smtpban accounts: exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, mailUser) || !strings.Contains(out, "hold") || !strings.Contains(out, "messages_per_hour") {
			t.Errorf("smtpban accounts:\n%s", out)
		}
		show, errOut, code := d.client("account", "show", mailUser)
		if code != 0 || !strings.Contains(show, attackerIP) {
			t.Errorf("smtpban account show: exit %d %s\n%s", code, errOut, show)
		}
		t.Logf("smtpban accounts:\n%s\nsmtpban account show alice:\n%s", out, show)
	})
	top := t // the restarted daemon lives as long as the whole test
	t.Run("the hold survives kill -9", func(t *testing.T) {
		d.kill(syscall.SIGKILL)
		d = startDaemon(top, config, filepath.Join(m.dir, "smtpband.sock"), mail.exec()...)
		if a, _ := d.account(t, mailUser); !a.Held || a.MessagesHour != 6 {
			t.Errorf("after kill -9 and restart: %+v, want held with 6 messages", a)
		}
		show, _, _ := d.client("account", "show", mailUser, "-json")
		if !strings.Contains(show, `"limit": "messages_per_hour"`) {
			t.Errorf("the alert is gone after restart:\n%s", show)
		}
	})
	t.Run("alice is held too until released", func(t *testing.T) {
		s := "while-held-" + uniq()
		if out := sendAsAlice(alice, aliceMX, s); !strings.Contains(out, "Ok: queued as") {
			t.Fatalf("alice's message while held not accepted:\n%s", out)
		}
		waitFor(t, 10*time.Second, "alice's message on hold", func() bool { return len(held(postqueue(t, mail, m))) == len(burst)-1 })
		heldIDs := held(postqueue(t, mail, m))

		out, errOut, code := d.client("account", "release", mailUser)
		if code != 0 {
			t.Fatalf("smtpban account release: exit %d: %s", code, errOut)
		}
		t.Logf("smtpban account release alice:\n%s", out)
		var cmd string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "postsuper ") {
				cmd = line
			}
		}
		for _, id := range heldIDs {
			if !strings.Contains(cmd, "-H "+id) {
				t.Errorf("postsuper line %q lacks held %s", cmd, id)
			}
		}
		// The printed line, with this instance's config directory.
		argv := append([]string{"postsuper", "-c", m.postfixEtc}, strings.Fields(cmd)[1:]...)
		mail.run(t, argv...)
		mail.run(t, "postqueue", "-c", m.postfixEtc, "-f")
		waitFor(t, 15*time.Second, "the released message's delivery", func() bool { return strings.Contains(readOr(m.mailbox), "Subject: "+s) })

		s2 := "after-release-" + uniq()
		if out := sendAsAlice(alice, aliceMX, s2); !strings.Contains(out, "Ok: queued as") {
			t.Fatalf("alice's message after release not accepted:\n%s", out)
		}
		waitFor(t, 10*time.Second, "delivery after release", func() bool { return strings.Contains(readOr(m.mailbox), "Subject: "+s2) })
		if a, _ := d.account(t, mailUser); a.Held {
			t.Errorf("alice held again after release: %+v", a)
		}
	})
}

func hasString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// smtpAuthFail makes two failed AUTH PLAIN attempts as user from local.
func smtpAuthFail(n *netns, local, remote, user string) error {
	c, err := dial(n, local, remote, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("want %s, got %q", code, line)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	if err := expect("220"); err != nil {
		return err
	}
	fmt.Fprintf(c, "EHLO guesser.example\r\n")
	if err := expect("250"); err != nil {
		return err
	}
	for i := range 2 {
		cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00guess-" + local + fmt.Sprint(i)))
		fmt.Fprintf(c, "AUTH PLAIN %s\r\n", cred)
		if err := expect("535"); err != nil {
			return err
		}
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return nil
}

// TestDistributedGuessing: 200 addresses guess alice's password twice
// each, under any per-address limit; over the account's guess limit they
// are all banned, and a later login from one of their networks holds the
// account: the password was found.
func TestDistributedGuessing(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	requireMailServer(t)
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))

	mail := newNetns(t, "mail")
	botnet := newNetns(t, "botnet")
	var bots []string
	// .250 finally logs in; .251-.253 send fake lines in user names.
	addrs := []string{"10.82.0.250/16", "10.82.0.251/16", "10.82.0.252/16", "10.82.0.253/16"}
	for i := range 200 {
		a := fmt.Sprintf("10.82.%d.%d", i/50, 10+i%50) // 4 networks of 50
		bots = append(bots, a)
		addrs = append(addrs, a+"/16")
	}
	link(t, mail, []string{"10.82.255.1/16"}, botnet, addrs)
	const mx = "10.82.255.1"
	m := startMailServer(t, mail, []string{mx})
	enablePolicy(t, mail, m)
	config, _ := accountsConfig(t, m, `
accounts {
  guess_addresses = 150
  guess_window    = "1d"
}
`)
	// One accounts block: fold the test's settings into the one written.
	cfg := readOr(config)
	cfg = strings.Replace(cfg, "accounts {\n  guess_addresses = 150\n  guess_window    = \"1d\"\n}\n", "", 1)
	cfg = strings.Replace(cfg, "accounts {\n", "accounts {\n  guess_addresses = 150\n  guess_window    = \"1d\"\n", 1)
	writeText(t, config, cfg)
	d := startDaemon(t, config, filepath.Join(m.dir, "smtpband.sock"), mail.exec()...)
	waitSourcesOpen(t, d)
	waitFor(t, 10*time.Second, "Postfix to answer on 587", func() bool {
		return reachable(botnet, "10.82.0.250", mx+":587", time.Second)
	})

	t.Run("user names posing as other lines choose nothing", func(t *testing.T) {
		// SASL user names are the client's: whole fake lines in them must
		// neither name an account nor an address to ban.
		fakes := []string{
			"x, sasl_username=victim",
			"y postfix/submission/smtpd[1]: 4AbCdEf: client=unknown[10.82.9.9], sasl_method=PLAIN, sasl_username=victim",
			"z>, method=PLAIN, rip=10.82.9.9, lip=10.82.255.1",
		}
		for i, u := range fakes {
			// One address each: 2 failures stay under postfix-sasl's maxretry.
			if err := smtpAuthFail(botnet, fmt.Sprintf("10.82.0.%d", 251+i), mx+":587", u); err != nil {
				t.Fatalf("fake %d: %v", i, err)
			}
		}
		// Postfix logs the names as it got them, cut at its own limit:
		// each is an account of its own, failing from its true address.
		waitFor(t, 10*time.Second, "the fake names' failures counted", func() bool {
			n := 0
			for _, a := range d.accounts(t) {
				if a.User != mailUser && a.Failing == 1 {
					n++
				}
			}
			return n == len(fakes)
		})
		for _, u := range []string{"victim", "bob"} {
			if a, ok := d.account(t, u); ok {
				t.Errorf("account %q made from a fake line: %+v", u, a)
			}
		}
		if _, ok := d.banned(t, "10.82.9.9/32"); ok {
			t.Errorf("an address from a fake line was banned")
		}
	})

	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan string)
	var mu sync.Mutex
	var failed []string
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if err := smtpAuthFail(botnet, a, mx+":587", mailUser); err != nil {
					mu.Lock()
					failed = append(failed, a+": "+err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	for _, a := range bots {
		work <- a
	}
	close(work)
	wg.Wait()
	t.Logf("200 guessers x 2 failures in %s; %d sessions cut short (banned mid-way): %.200v", time.Since(start).Round(time.Millisecond), len(failed), failed)
	if len(failed) > 200-150 {
		t.Errorf("%d guessers failed before the limit could have banned them", len(failed))
	}

	t.Run("every guesser is banned", func(t *testing.T) {
		waitFor(t, 30*time.Second, "200 bans", func() bool {
			n := 0
			for _, b := range d.bans(t) {
				if b.Jail == "account" {
					n++
				}
			}
			return n == 200
		})
		set := mail.run(t, "nft", "list", "table", "inet", "smtpban")
		for _, a := range bots {
			if !strings.Contains(set, a+",") && !strings.Contains(set, a+" ") && !strings.Contains(set, a+"\n") {
				t.Errorf("%s not in the kernel's set", a)
				break
			}
		}
		if a, _ := d.account(t, mailUser); a.Held || a.Failing != 200 {
			t.Errorf("account after the guessing: %+v, want 200 failing and not held", a)
		}
	})
	t.Run("a login from their network holds the account", func(t *testing.T) {
		subject := "found-" + uniq()
		out := swaks(botnet, "--server", mx, "--port", "587", "--local-interface", "10.82.0.250",
			"--auth", "PLAIN", "--auth-user", mailUser, "--auth-password", mailPassword,
			"--from", mailUser+"@example.test", "--to", mailUser+"@example.test", "--header", "Subject: "+subject)
		if !strings.Contains(out, "235 2.7.0 Authentication successful") {
			t.Fatalf("the found password did not log in:\n%s", out)
		}
		a, _ := d.account(t, mailUser)
		if !a.Held || a.HeldWhy != "login_from_guessing_network" {
			t.Errorf("account %+v, want held for login_from_guessing_network", a)
		}
		// The address that logged in is banned as well: its session may
		// be cut before DATA ends. Either way nothing leaves.
		waitBanned(t, d, "10.82.0.250/32")
		if strings.Contains(out, "Ok: queued as") {
			waitFor(t, 10*time.Second, "the message on hold", func() bool { return len(held(postqueue(t, mail, m))) == 1 })
		}
		time.Sleep(time.Second)
		if strings.Contains(readOr(m.mailbox), "Subject: "+subject) {
			t.Errorf("the message sent with the found password was delivered")
		}
	})
}
