package test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// TestInjection is an attacker's end-to-end test: real Postfix and Dovecot,
// the real smtpband with every shipped jail on. From its own address the
// attacker writes whole fake log lines, each naming a victim from the
// documentation ranges, into every field of Postfix's and Dovecot's logs
// that holds the client's own text: SMTP AUTH user names (PLAIN and LOGIN,
// by swaks, and with a line feed in them), non-SMTP and unknown commands,
// the EHLO name, quoted MAIL FROM and RCPT TO local parts, and text sent to
// postscreen before its greeting. Each fake line has the layout of one
// shipped jail's failregex and is sent as often as that jail's maxretry.
// The attacker must be banned for its real failures, and no victim ever:
// not in smtpband's bans, not in the kernel's set, not in a replay of the
// logs.
func TestInjection(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	requireMailServer(t)
	// The race-built client runs a few times; without this it sleeps 1 s
	// at each exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	start := time.Now()

	mail := newNetns(t, "mail")
	attacker := newNetns(t, "attacker")
	link(t, mail, []string{"10.79.1.1/24"}, attacker, []string{"10.79.1.2/24"})
	const attackerIP, mx = "10.79.1.2", "10.79.1.1"

	m := startMailServer(t, mail, []string{mx})
	waitFor(t, 10*time.Second, "Postfix to answer on 587, 2525 and 2526", func() bool {
		return reachable(attacker, "", mx+":587", time.Second) &&
			reachable(attacker, "", mx+":2525", time.Second) &&
			reachable(attacker, "", mx+":2526", 2*time.Second)
	})
	t.Logf("Postfix and Dovecot up in %s", time.Since(start).Round(time.Millisecond))

	config := writeInjectionConfig(t, m)
	d := startDaemon(t, config, filepath.Join(m.dir, "smtpband.sock"), mail.exec()...)
	waitSourcesOpen(t, d)

	// Real guesses first, all at once: alice's password, 5 times
	// (postfix-sasl's maxretry), from the attacker's own address.
	guesses := make([]string, 5)
	var wg sync.WaitGroup
	for i, mech := range []string{"LOGIN", "PLAIN", "LOGIN", "PLAIN", "LOGIN"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guesses[i] = swaks(attacker, "--server", mx, "--port", "587",
				"--auth", mech, "--auth-user", mailUser, "--auth-password", fmt.Sprintf("guess-%d", i), "--quit-after", "AUTH")
		}()
	}
	wg.Wait()
	for i, out := range guesses {
		if !strings.Contains(out, "535 5.7.8") {
			t.Fatalf("guess %d: want 535 from Postfix, got:\n%s", i, out)
		}
	}
	own := waitBanned(t, d, attackerIP+"/32")
	// Dovecot's auth process logs each guess too, in its own log, where
	// dovecot-auth (on here) counts it: whichever of the two jails gets
	// its fifth line first bans.
	if (own.Jail != "postfix-sasl" && own.Jail != "dovecot-auth") || own.Failures != 5 {
		t.Errorf("attacker's ban = %+v, want postfix-sasl (or dovecot-auth) with 5 failures", own)
	}
	waitInSet(t, mail, attackerIP)
	if reachable(attacker, "", mx+":587", time.Second) {
		t.Errorf("banned attacker still reaches %s:587", mx)
	}
	t.Logf("attacker banned by %s after %s", own.Jail, time.Since(start).Round(time.Millisecond))

	// The injections go to 2525 and 2526, which the ban leaves open: one
	// address can then send them all, though its real failures (each fake
	// AUTH is one) banned it long before the last.
	a := &attack{ns: attacker, smtpd: mx + ":2525", postscreen: mx + ":2526", swaksSlots: make(chan struct{}, 4)}
	injections := buildInjections()
	t0 := time.Now()
	sessions := a.run(t, injections)
	t.Logf("%d injections in %d sessions took %s", len(injections), sessions, time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	waitCaughtUp(t, d, m.maillog, m.dovecotLog)
	t.Logf("smtpband read both logs to their ends %s later", time.Since(t0).Round(time.Millisecond))

	// What became of each victim: in smtpband's bans, in the kernel's
	// set, in a replay of both logs.
	bans := d.bans(t)
	nft := mail.run(t, "nft", "list", "table", "inet", "smtpban")
	inKernel := nftAddrs(nft)
	// Replay as the daemon reads: Postfix's log through every jail,
	// Dovecot's through the two that read it.
	replayed := map[netip.Addr]replayResult{}
	replayLog(t, d, replayed, m.maillog)
	replayLog(t, d, replayed, m.dovecotLog, "dovecot", "dovecot-auth")
	maillog, dovecotLog := readOr(m.maillog), readOr(m.dovecotLog)

	attackerAddr := netip.MustParseAddr(attackerIP)
	var (
		table    strings.Builder
		nBanned  int
		attackIn bool
	)
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tFORMAT\tVICTIM\tLOGGED IN\tREPLAY MATCHES\tREPLAY BANS\tBANNED BY\tIN KERNEL")
	for _, in := range injections {
		v := netip.MustParseAddr(in.victim)
		var logged []string
		if mentions(maillog, in.victim) {
			logged = append(logged, "maillog")
		}
		if mentions(dovecotLog, in.victim) {
			logged = append(logged, "dovecot.log")
		}
		var bannedBy []string
		for _, b := range bans {
			if p, err := netip.ParsePrefix(b.Prefix); err == nil && p.Contains(v) {
				bannedBy = append(bannedBy, b.Jail)
			}
		}
		kernel := slices.ContainsFunc(inKernel, func(p netip.Prefix) bool { return p.Contains(v) })
		r := replayed[v]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\n", in.class.name, in.jail, in.victim,
			orNone(logged), orNone(r.matches()), orNone(r.bans), orNone(bannedBy), kernel)
		// The true address or nothing: a victim matched at all is a
		// victim banned by whoever sends that line maxretry times.
		if len(bannedBy) > 0 || kernel || len(r.jails) > 0 {
			nBanned++
			t.Errorf("%s carrying a fake %s line: %s banned by %v, in the kernel %v, replay matches %v bans %v",
				in.class.name, in.jail, in.victim, bannedBy, kernel, r.matches(), r.bans)
		}
	}
	tw.Flush()
	var fields strings.Builder
	for _, c := range injectionClasses {
		fmt.Fprintf(&fields, "%-28s %s\n", c.name, c.field)
	}
	t.Logf("where each class's text is logged:\n%s\nwhat each injection did:\n%s", fields.String(), table.String())

	// No ban at all but the attacker's, whatever the injections' victims.
	for _, b := range bans {
		p, err := netip.ParsePrefix(b.Prefix)
		if err != nil {
			t.Errorf("ban with prefix %q: %v", b.Prefix, err)
			continue
		}
		if p.Contains(attackerAddr) {
			attackIn = true
			continue
		}
		if !isVictim(injections, p) {
			t.Errorf("ban of %s by %s: neither the attacker nor a victim", b.Prefix, b.Jail)
		}
	}
	if !attackIn {
		t.Errorf("the attacker's ban is gone; bans: %+v", bans)
	}
	for _, p := range inKernel {
		if !p.Contains(attackerAddr) && !isVictim(injections, p) {
			t.Errorf("the kernel's set holds %s: neither the attacker nor a victim", p)
		}
	}
	if !slices.ContainsFunc(inKernel, func(p netip.Prefix) bool { return p.Contains(attackerAddr) }) {
		t.Errorf("the attacker is no longer in the kernel's set:\n%s", nft)
	}
	if nBanned > 0 {
		t.Logf("%d of %d victims banned or matched", nBanned, len(injections))
	}
	t.Logf("whole test: %s", time.Since(start).Round(time.Millisecond))
}

// writeInjectionConfig writes smtpband's config for m next to copies of
// every shipped jail file with every jail on. Postfix's log is source
// "mail"; the Dovecot jails also read Dovecot's own log ("dovecot-log");
// the Courier, Sendmail and Exim jails read Postfix's log through their
// own sources, as they would on a host whose mail.log they share.
func writeInjectionConfig(t *testing.T, m *mailServer) string {
	t.Helper()
	dir := filepath.Join(m.dir, "smtpban")
	if err := os.MkdirAll(filepath.Join(dir, "jails.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	enabled := regexp.MustCompile(`(?m)^(\s*enabled\s*=\s*)false\b`)
	mailSource := regexp.MustCompile(`(?m)^(\s*)source\s*=\s*"mail"`)
	logPath := regexp.MustCompile(`(?m)^(\s*path\s*=\s*)"/var/log/[^"]*"`)
	jailRE := regexp.MustCompile(`(?m)^jail "`)
	onRE := regexp.MustCompile(`(?m)^\s*enabled\s*=\s*true\b`)
	for _, f := range []string{"postfix.hcl", "dovecot.hcl", "courier.hcl", "sendmail.hcl", "exim.hcl"} {
		b, err := os.ReadFile(filepath.Join("..", "configs", "jails.d", f))
		if err != nil {
			t.Fatal(err)
		}
		s := enabled.ReplaceAllString(string(b), "${1}true")
		switch f {
		case "dovecot.hcl":
			s = mailSource.ReplaceAllString(s, `${1}sources = ["mail", "dovecot-log"]`)
		case "courier.hcl", "sendmail.hcl", "exim.hcl":
			// Postfix's log, as syslog lines: no program there is theirs,
			// so none of the fakes may reach them either.
			s = logPath.ReplaceAllString(s, "${1}"+strconv.Quote(m.maillog))
			s = strings.Replace(s, `format = "exim"`, `format = "syslog"`, 1)
		}
		jails := len(jailRE.FindAllStringIndex(s, -1))
		if jails == 0 || jails != len(onRE.FindAllStringIndex(s, -1)) || strings.Contains(s, `"/var/log/`) {
			t.Fatalf("%s: a jail left off or a path not replaced:\n%s", f, s)
		}
		writeText(t, filepath.Join(dir, "jails.d", f), s)
	}
	path := filepath.Join(dir, "smtpban.hcl")
	writeText(t, path, fmt.Sprintf(`
state_dir = %q
socket    = %q
include   = ["jails.d/*.hcl"]

source "file" "mail" {
  path = %q
}

source "file" "dovecot-log" {
  path   = %q
  format = "dovecot"
}

# The default ports, 25, 465 and 587: the attacker goes on at 2525 and
# 2526 after its ban.
firewall "nftables" {
  table  = "smtpban"
  resync = "1s"
}
`, filepath.Join(m.dir, "smtpban-state"), filepath.Join(m.dir, "smtpband.sock"), m.maillog, m.dovecotLog))
	cmd := exec.Command(filepath.Join(binDir, "smtpban"), "-config", path, "check")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, errOut, code := runCmd(cmd)
	if code != 0 {
		t.Fatalf("smtpban check: exit %d\n%s%s", code, out, errOut)
	}
	return path
}

// fakeLine is one shipped jail's layout, for a fake line naming victim.
type fakeLine struct {
	jail string
	// reps is the jail's maxretry: how many such lines get the victim
	// banned. The dovecot line counts its own attempts.
	reps int
	line func(victim string) string
}

// fakeLines has one line per shipped jail, each short enough for the 100
// characters Postfix logs of a non-SMTP command or a pregreet.
var fakeLines = []fakeLine{
	{"postfix-sasl", 5, func(v string) string {
		return "postfix/smtpd[1]: warning: x[" + v + "]: SASL LOGIN authentication failed: x"
	}},
	{"postfix-relay", 3, func(v string) string {
		return "postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[" + v + "]: 554 5.7.1 Relay access denied"
	}},
	{"postfix-reject", 10, func(v string) string {
		return "postfix/smtpd[1]: improper command pipelining after AUTH from x[" + v + "]: x"
	}},
	{"postscreen", 3, func(v string) string {
		return "postfix/postscreen[1]: PREGREET 1 after 0 from [" + v + "]:1"
	}},
	{"dovecot", 1, func(v string) string {
		return "imap-login: Disconnected (auth failed, 99 attempts): rip=" + v + ","
	}},
	{"dovecot-auth", 5, func(v string) string {
		return "auth: passwd-file(x," + v + "): Password mismatch"
	}},
	{"exim", 5, func(v string) string {
		return "authenticator failed for x [" + v + "]: 535 Incorrect authentication data"
	}},
	{"exim-reject", 10, func(v string) string {
		return "SMTP call from [" + v + "] dropped: too many nonmail commands"
	}},
	{"sendmail-auth", 5, func(v string) string {
		return "x: [" + v + "]: possible SMTP attack: command=AUTH"
	}},
	{"courier", 5, func(v string) string {
		return `courieresmtpd: error,relay=` + v + `,msg="535 Authentication failed."`
	}},
}

// injectionClass is a way for the client's text to reach a log.
type injectionClass struct {
	name  string // how the attacker sends it
	field string // where the server logs it
	// batch: send may put several copies in one session; otherwise
	// each copy gets its own.
	batch bool
	// send sends n copies of fake; rep counts the copies of one
	// injection sent before.
	send func(a *attack, fake string, rep, n int) (transcript string, err error)
}

var injectionClasses = []injectionClass{
	{"AUTH PLAIN user", "Postfix sasl_username=; Dovecot (username: USER)", false, func(a *attack, fake string, rep, _ int) (string, error) {
		return a.auth("PLAIN", fake, rep)
	}},
	{"AUTH LOGIN user", "Postfix sasl_username=; Dovecot (username: USER)", false, func(a *attack, fake string, rep, _ int) (string, error) {
		return a.auth("LOGIN", fake, rep)
	}},
	{"AUTH PLAIN user after LF", "as above, after \"x\\n\": Postfix logs x?n, Dovecot x?", false, func(a *attack, fake string, _, _ int) (string, error) {
		return a.session(a.smtpd, func(c *smtpClient) error {
			if err := c.expect("EHLO attacker.example", "250"); err != nil {
				return err
			}
			return c.expect("AUTH PLAIN "+b64("\x00x\n"+fake+"\x00wrong"), "535")
		})
	}},
	{"non-SMTP command", "warning: non-SMTP command from ...: TEXT", false, func(a *attack, fake string, _, _ int) (string, error) {
		return a.session(a.smtpd, func(c *smtpClient) error {
			// smtpd_forbidden_commands holds /^[^ ]+: /: a header-like
			// line is logged and the connection closed.
			return c.expect("x: "+fake, "221")
		})
	}},
	{"unknown command", "(not logged by Postfix 3.7)", true, func(a *attack, fake string, _, n int) (string, error) {
		return a.session(a.smtpd, func(c *smtpClient) error {
			if err := c.expect("EHLO attacker.example", "250"); err != nil {
				return err
			}
			for range n {
				if err := c.expect("XFAKE "+fake, "500"); err != nil {
					return err
				}
			}
			return nil
		})
	}},
	{"EHLO name", "reject: RCPT ...; helo=<TEXT>, spaces logged as ?", true, func(a *attack, fake string, _, n int) (string, error) {
		return a.session(a.smtpd, func(c *smtpClient) error {
			for range n {
				if err := c.expectAll("250", "EHLO "+fake, "MAIL FROM:<a@attacker.example>"); err != nil {
					return err
				}
				if err := c.expect("RCPT TO:<v@elsewhere.example>", "554"); err != nil {
					return err
				}
			}
			return nil
		})
	}},
	{"MAIL FROM quoted local part", "reject: RCPT ...; from=<\"TEXT\"@...>", true, func(a *attack, fake string, _, n int) (string, error) {
		return a.session(a.smtpd, func(c *smtpClient) error {
			if err := c.expect("EHLO attacker.example", "250"); err != nil {
				return err
			}
			for range n {
				if err := c.expect("MAIL FROM:<"+quoteLocal(fake)+"@attacker.example>", "250"); err != nil {
					return err
				}
				if err := c.expect("RCPT TO:<v@elsewhere.example>", "554"); err != nil {
					return err
				}
				if err := c.expect("RSET", "250"); err != nil {
					return err
				}
			}
			return nil
		})
	}},
	{"RCPT TO quoted local part", "reject: RCPT ...: 554 5.7.1 <\"TEXT\"@...>: Relay access denied; to=<...>", true, func(a *attack, fake string, _, n int) (string, error) {
		return a.session(a.smtpd, func(c *smtpClient) error {
			if err := c.expectAll("250", "EHLO attacker.example", "MAIL FROM:<a@attacker.example>"); err != nil {
				return err
			}
			for range n {
				if err := c.expect("RCPT TO:<"+quoteLocal(fake)+"@elsewhere.example>", "554"); err != nil {
					return err
				}
			}
			return nil
		})
	}},
	{"postscreen pregreet", "postscreen: PREGREET n after t from [addr]:port: TEXT", false, func(a *attack, fake string, _, _ int) (string, error) {
		return a.pregreet(fake)
	}},
}

// injection is one fake line sent through one class, naming one victim.
type injection struct {
	class  injectionClass
	jail   string // whose layout the fake line has
	reps   int
	victim string
	fake   string
}

// buildInjections pairs every class with every fake line, each pair with
// its own victim from 192.0.2.0/24, 198.51.100.0/24 and 2001:db8::/32 in
// turn. Victims are only text: nothing ever talks to them. Their last
// part has three digits, so that no victim's text holds another's.
func buildInjections() []injection {
	var out []injection
	n := 0
	for _, c := range injectionClasses {
		for _, f := range fakeLines {
			var v string
			switch i := 100 + n/3; n % 3 {
			case 0:
				v = fmt.Sprintf("192.0.2.%d", i)
			case 1:
				v = fmt.Sprintf("198.51.100.%d", i)
			default:
				v = fmt.Sprintf("2001:db8::%d", i)
			}
			n++
			out = append(out, injection{class: c, jail: f.jail, reps: f.reps, victim: v, fake: f.line(v)})
		}
	}
	return out
}

func isVictim(injections []injection, p netip.Prefix) bool {
	return slices.ContainsFunc(injections, func(in injection) bool {
		return p.Contains(netip.MustParseAddr(in.victim))
	})
}

// quoteLocal makes s an RFC 5321 quoted-string local part.
func quoteLocal(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// attack sends the injections from the attacker's namespace.
type attack struct {
	ns         *netns
	smtpd      string        // host:port of a plain smtpd the ban leaves open
	postscreen string        // host:port of postscreen, likewise
	swaksSlots chan struct{} // swaks runs at a time
}

// run sends every injection as many times as its jail's maxretry, many
// sessions at a time, and fails t if any session went otherwise than
// planned. It returns the number of sessions.
func (a *attack) run(t *testing.T, injections []injection) int {
	t.Helper()
	type job struct {
		in     *injection
		rep, n int
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		sessions int
		failed   = map[string]int{}
		first    = map[string]string{} // per class
	)
	// Dovecot answers a failed AUTH at its next 0.5 s tick however
	// auth_failure_delay is set: many sessions at a time (a.auth runs
	// fewer swaks, which is Perl, at a time).
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				tr, err := j.in.class.send(a, j.in.fake, j.rep, j.n)
				if err == nil {
					continue
				}
				mu.Lock()
				if failed[j.in.class.name]++; failed[j.in.class.name] == 1 {
					first[j.in.class.name] = fmt.Sprintf("%s, %s line, rep %d: %v\n%s", j.in.class.name, j.in.jail, j.rep, err, tr)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range injections {
		in := &injections[i]
		if in.class.batch {
			jobs <- job{in, 0, in.reps}
			sessions++
			continue
		}
		for rep := range in.reps {
			jobs <- job{in, rep, 1}
			sessions++
		}
	}
	close(jobs)
	wg.Wait()
	if len(failed) > 0 {
		// What the others did is still worth seeing: no Fatal.
		t.Errorf("sessions that went wrong, per class: %v; the first of each:\n%s", failed, strings.Join(slices.Sorted(maps.Values(first)), "\n"))
	}
	return sessions
}

// auth tries AUTH mech with user and a wrong password: by swaks the
// first time, then by smtpClient, which sends the same bytes and costs
// no Perl start.
func (a *attack) auth(mech, user string, rep int) (string, error) {
	if rep == 0 {
		a.swaksSlots <- struct{}{}
		defer func() { <-a.swaksSlots }()
		host, port, _ := net.SplitHostPort(a.smtpd)
		out := swaks(a.ns, "--server", host, "--port", port,
			"--auth", mech, "--auth-user", user, "--auth-password", "wrong", "--quit-after", "AUTH")
		if !strings.Contains(out, "535 5.7.8") {
			return out, fmt.Errorf("want 535 from Postfix")
		}
		return out, nil
	}
	return a.session(a.smtpd, func(c *smtpClient) error {
		if err := c.expect("EHLO attacker.example", "250"); err != nil {
			return err
		}
		if mech == "PLAIN" {
			return c.expect("AUTH PLAIN "+b64("\x00"+user+"\x00wrong"), "535")
		}
		if err := c.expect("AUTH LOGIN", "334"); err != nil {
			return err
		}
		// Dovecot refuses a user name it does not allow at once, without
		// asking for the password.
		got, err := c.cmd(b64(user))
		if err != nil || strings.HasPrefix(got, "535") {
			return err
		}
		if !strings.HasPrefix(got, "334") {
			return fmt.Errorf("user name: got %q, want 334 or 535", got)
		}
		return c.expect(b64("wrong"), "535")
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// session runs script over a new SMTP connection to addr, from the
// attacker's namespace, and returns the transcript.
func (a *attack) session(addr string, script func(*smtpClient) error) (string, error) {
	conn, err := dial(a.ns, "", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	c := &smtpClient{conn: conn, r: bufio.NewReader(conn)}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if line, err := c.reply(); err != nil || !strings.HasPrefix(line, "220") {
		return c.tr.String(), fmt.Errorf("greeting %q: %v", line, err)
	}
	if err := script(c); err != nil {
		return c.tr.String(), err
	}
	c.cmd("QUIT")
	return c.tr.String(), nil
}

// pregreet connects to postscreen and talks after the first line of its
// multi-line greeting, before the last: postscreen logs the text and
// drops the connection.
func (a *attack) pregreet(fake string) (string, error) {
	conn, err := dial(a.ns, "", a.postscreen, 3*time.Second)
	if err != nil {
		return "", err
	}
	c := &smtpClient{conn: conn, r: bufio.NewReader(conn)}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	line, err := c.r.ReadString('\n')
	c.tr.WriteString("<- " + line)
	if err != nil || !strings.HasPrefix(line, "220-") {
		return c.tr.String(), fmt.Errorf("want 220- first: %v", err)
	}
	c.tr.WriteString("-> " + fake + "\n")
	if _, err := conn.Write([]byte(fake + "\r\n")); err != nil {
		return c.tr.String(), err
	}
	for {
		line, err := c.reply()
		if err != nil {
			return c.tr.String(), fmt.Errorf("want 521 before the connection closes: %v", err)
		}
		if strings.HasPrefix(line, "521") {
			return c.tr.String(), nil
		}
	}
}

// smtpClient is a bare SMTP client for what swaks cannot send: any bytes,
// in any order.
type smtpClient struct {
	conn net.Conn
	r    *bufio.Reader
	tr   strings.Builder // transcript
}

// reply reads one reply, all its lines, and returns the last.
func (c *smtpClient) reply() (string, error) {
	for {
		line, err := c.r.ReadString('\n')
		if line != "" {
			c.tr.WriteString("<- " + line)
		}
		if err != nil {
			return strings.TrimRight(line, "\r\n"), err
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}

func (c *smtpClient) cmd(line string) (string, error) {
	c.tr.WriteString("-> " + line + "\n")
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	return c.reply()
}

// expectAll sends each line and wants a reply starting with code to each.
func (c *smtpClient) expectAll(code string, lines ...string) error {
	for _, l := range lines {
		if err := c.expect(l, code); err != nil {
			return err
		}
	}
	return nil
}

// expect sends line and wants a reply starting with code.
func (c *smtpClient) expect(line, code string) error {
	got, err := c.cmd(line)
	if err != nil {
		return fmt.Errorf("%q: %v", line, err)
	}
	if !strings.HasPrefix(got, code) {
		return fmt.Errorf("%q: got %q, want %s", line, got, code)
	}
	return nil
}

// waitCaughtUp waits until Postfix and Dovecot have stopped writing their
// logs and every source of d has read its file to the end. smtpband bans
// in the line loop itself: a line read is a ban made.
func waitCaughtUp(t *testing.T, d *daemon, logs ...string) {
	t.Helper()
	positionRE := regexp.MustCompile(`^(.*) inode \d+ offset (\d+)$`)
	var (
		last   []int64
		stable time.Time
	)
	waitFor(t, 20*time.Second, "smtpband to read the logs to their ends", func() bool {
		var sizes []int64
		for _, p := range logs {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, fi.Size())
		}
		var st struct {
			Sources []struct {
				Name     string `json:"name"`
				Position string `json:"position"`
			} `json:"sources"`
		}
		out, _, code := d.client("status", "-json")
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		for _, s := range st.Sources {
			m := positionRE.FindStringSubmatch(s.Position)
			if m == nil {
				return false
			}
			i := slices.Index(logs, m[1])
			if i < 0 {
				t.Fatalf("source %s reads %s, not one of %v", s.Name, m[1], logs)
			}
			if off, _ := strconv.ParseInt(m[2], 10, 64); off != sizes[i] {
				return false
			}
		}
		// The servers may still be logging a session's end: the sizes
		// must hold still for a moment too.
		if !slices.Equal(sizes, last) {
			last, stable = sizes, time.Now()
			return false
		}
		return time.Since(stable) > 500*time.Millisecond
	})
}

// replayResult is what `smtpban replay` said about one address.
type replayResult struct {
	jails map[string]int // matches per jail
	bans  []string       // jails that would have banned it
}

func (r replayResult) matches() []string {
	var out []string
	for j, n := range r.jails {
		out = append(out, fmt.Sprintf("%s×%d", j, n))
	}
	slices.Sort(out)
	return out
}

// replayLog runs `smtpban replay -json` over log with d's config, through
// jails (all if none), and adds its matches and bans to res, per address
// (a ban of a prefix goes under each address it holds that a match named).
func replayLog(t *testing.T, d *daemon, res map[netip.Addr]replayResult, log string, jails ...string) {
	t.Helper()
	args := []string{"replay", "-json"}
	for _, j := range jails {
		args = append(args, "-jail", j)
	}
	out, errOut, code := d.client(append(args, log)...)
	if code != 0 {
		t.Fatalf("smtpban replay: exit %d: %s", code, errOut)
	}
	var bans []struct {
		p    netip.Prefix
		jail string
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev struct{ Event, Jail, IP string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("replay output %q: %v", line, err)
		}
		if ev.Event == "ban" {
			p, err := netip.ParsePrefix(ev.IP)
			if err != nil {
				t.Fatalf("replay ban %q: %v", ev.IP, err)
			}
			bans = append(bans, struct {
				p    netip.Prefix
				jail string
			}{p, ev.Jail})
			continue
		}
		a, err := netip.ParseAddr(ev.IP)
		if err != nil {
			t.Fatalf("replay match %q: %v", ev.IP, err)
		}
		r := res[a]
		if r.jails == nil {
			r.jails = map[string]int{}
		}
		r.jails[ev.Jail]++
		res[a] = r
	}
	for a, r := range res {
		for _, b := range bans {
			if b.p.Contains(a) && !slices.Contains(r.bans, b.jail) {
				r.bans = append(r.bans, b.jail)
			}
		}
		res[a] = r
	}
}

// nftAddrs returns every address and prefix in `nft list table` output.
func nftAddrs(out string) []netip.Prefix {
	var ps []netip.Prefix
	for _, tok := range regexp.MustCompile(`[0-9A-Fa-f:.]+(?:/\d+)?`).FindAllString(out, -1) {
		if !strings.ContainsAny(tok, ".:") {
			continue
		}
		if p, err := netip.ParsePrefix(tok); err == nil {
			ps = append(ps, p)
		} else if a, err := netip.ParseAddr(tok); err == nil {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps
}

// mentions says whether text holds addr as a whole address.
func mentions(text, addr string) bool {
	return regexp.MustCompile(`(?:^|[^0-9A-Fa-f:.])` + regexp.QuoteMeta(addr) + `(?:$|[^0-9A-Fa-f:.])`).MatchString(text)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
