package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Attackers and legitimate clients. Attackers are picked with a skewed
// distribution: a few hammer, most try once or twice, as botnets do.
const (
	attackers4 = 30_000
	attackers6 = 12_000
	clients4   = 4_000
	clients6   = 1_000
	mailHost   = "mx1"
)

var (
	users    = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	guesses  = []string{"admin", "info", "test", "postmaster", "sales", "support", "office", "user", "webmaster", "contact", "alice@example.org", "root"}
	domains  = []string{"example.org", "example.net", "example.com", "mail.example", "corp.example"}
	mechs    = []string{"LOGIN", "PLAIN", "login", "CRAM-MD5", "DIGEST-MD5"}
	oldWhy   = []string{"UGFzc3dvcmQ6", "authentication failure", "VXNlcm5hbWU6", "Password:"}
	smtpdIDs = []string{"postfix/smtpd", "postfix/submission/smtpd", "postfix/smtps/smtpd"}
	logins   = []string{"imap-login", "pop3-login", "submission-login", "managesieve-login"}
	rdnsHost = []string{"unknown", "unknown", "unknown", "dynamic.isp.example", "host.cloud.example", "mail.example.net"}
)

type generator struct {
	rng      *rand.Rand
	w        *bufio.Writer
	err      error
	left     int
	now      time.Time
	meanStep float64 // seconds between lines
	truth    *tally
	bad      []netip.Addr
	good     []netip.Addr
	qid      uint64
	buf      []byte
}

func newGenerator(seed uint64, n int, start time.Time, rate float64, w *bufio.Writer) *generator {
	g := &generator{
		rng:      rand.New(rand.NewPCG(seed, 0x5eed)),
		w:        w,
		left:     n,
		now:      start,
		meanStep: 1 / rate,
		truth:    newTally(),
	}
	g.bad = g.addrs(attackers4, attackers6, 0)
	g.good = g.addrs(clients4, clients6, 1)
	return g
}

// addrs returns distinct public-looking addresses; salt keeps the attacker
// and client pools apart.
func (g *generator) addrs(v4, v6 int, salt byte) []netip.Addr {
	seen := map[netip.Addr]bool{}
	out := make([]netip.Addr, 0, v4+v6)
	for len(out) < v4 {
		a := netip.AddrFrom4([4]byte{byte(1 + g.rng.IntN(222)), byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
		// 127/8 and 10/8 would be loopback or private: not from the internet.
		if a.As4()[0] == 127 || a.As4()[0] == 10 || seen[a] || (a.As4()[3]&1) != salt {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	for len(out) < v4+v6 {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01+byte(g.rng.IntN(3))
		for i := 2; i < 16; i++ {
			b[i] = byte(g.rng.IntN(256))
		}
		b[15] = b[15]&^1 | salt
		a := netip.AddrFrom16(b)
		if seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

// attacker picks a skewed attacker: the square of a uniform number favours
// the head of the list.
func (g *generator) attacker() netip.Addr {
	u := g.rng.Float64()
	return g.bad[int(u*u*float64(len(g.bad)))]
}

func (g *generator) client() netip.Addr { return g.good[g.rng.IntN(len(g.good))] }

func (g *generator) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *generator) pid() int { return 1000 + g.rng.IntN(60000) }

func (g *generator) queueID() string {
	g.qid++
	const digits = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
	v := g.rng.Uint64()
	b := make([]byte, 10)
	for i := range b {
		b[i] = digits[v%uint64(len(digits))]
		v /= uint64(len(digits))
	}
	return string(b)
}

// emit writes one line; jail and addr say which jail must count it as a
// failure ("" for none). It reports false once n lines are written.
func (g *generator) emit(ident string, pid int, msg, jail string, addr netip.Addr) bool {
	if g.left <= 0 || g.err != nil {
		return false
	}
	g.left--
	g.now = g.now.Add(time.Duration(g.rng.ExpFloat64() * g.meanStep * float64(time.Second)))
	g.buf = g.now.AppendFormat(g.buf[:0], time.Stamp)
	g.buf = append(g.buf, ' ')
	g.buf = append(g.buf, mailHost...)
	g.buf = append(g.buf, ' ')
	g.buf = append(g.buf, ident...)
	g.buf = fmt.Appendf(g.buf, "[%d]: ", pid)
	g.buf = append(g.buf, msg...)
	g.buf = append(g.buf, '\n')
	if _, err := g.w.Write(g.buf); err != nil {
		g.err = err
		return false
	}
	if jail != "" {
		g.truth.add(jail, addr.String())
	}
	return true
}

func (g *generator) run() {
	var none netip.Addr
	for g.left > 0 && g.err == nil {
		// Weights are of sessions; each writes 1 to 8 lines. About 6% of
		// lines end up counted by a jail.
		switch r := g.rng.IntN(1000); {
		case r < 430:
			g.inbound()
		case r < 560:
			g.submission()
		case r < 800:
			g.imapLogin()
		case r < 850:
			g.rejectedProbe()
		case r < 900:
			g.saslGuesser()
		case r < 920:
			g.relayProbe()
		case r < 965:
			g.dovecotGuesser()
		case r < 975:
			g.unknownRecipient()
		default:
			g.emit("postfix/anvil", g.pid(), fmt.Sprintf("statistics: max connection rate %d/60s for (smtp:%s) at %s", 1+g.rng.IntN(9), g.client(), g.now.Format(time.Stamp)), "", none)
		}
	}
}

func (g *generator) host(a netip.Addr) string { return g.pick(rdnsHost) + "[" + a.String() + "]" }

// inbound is a message received on port 25 and delivered locally.
func (g *generator) inbound() {
	var none netip.Addr
	a, pid := g.client(), g.pid()
	h := g.host(a)
	q := g.queueID()
	to := g.pick(users) + "@" + g.pick(domains)
	_ = g.emit("postfix/smtpd", pid, "connect from "+h, "", none) &&
		g.emit("postfix/smtpd", pid, q+": client="+h, "", none) &&
		g.emit("postfix/cleanup", g.pid(), fmt.Sprintf("%s: message-id=<%x.%d@%s>", q, g.rng.Uint64(), g.rng.IntN(1e6), g.pick(domains)), "", none) &&
		g.emit("postfix/qmgr", 1111, fmt.Sprintf("%s: from=<%s@%s>, size=%d, nrcpt=1 (queue active)", q, g.pick(users), g.pick(domains), 800+g.rng.IntN(90000)), "", none) &&
		g.emit("postfix/smtpd", pid, "disconnect from "+h+" ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5", "", none) &&
		g.delivered(q, to) &&
		g.emit("postfix/qmgr", 1111, q+": removed", "", none)
}

func (g *generator) delivered(q, to string) bool {
	var none netip.Addr
	d := fmt.Sprintf("delay=%.2f, delays=%.2f/0.01/0/%.2f", 0.1+g.rng.Float64(), g.rng.Float64()/10, g.rng.Float64()/10)
	if g.rng.IntN(2) == 0 {
		return g.emit("postfix/local", g.pid(), fmt.Sprintf("%s: to=<%s>, relay=local, %s, dsn=2.0.0, status=sent (delivered to mailbox)", q, to, d), "", none)
	}
	return g.emit("postfix/virtual", g.pid(), fmt.Sprintf("%s: to=<%s>, relay=virtual, %s, dsn=2.0.0, status=sent (delivered to maildir)", q, to, d), "", none)
}

// submission is an authenticated client sending a message.
func (g *generator) submission() {
	var none netip.Addr
	a, pid := g.client(), g.pid()
	id := g.pick(smtpdIDs[1:])
	h := g.host(a)
	q := g.queueID()
	user := g.pick(users) + "@example.org"
	_ = g.emit(id, pid, "connect from "+h, "", none) &&
		g.emit(id, pid, fmt.Sprintf("%s: client=%s, sasl_method=%s, sasl_username=%s", q, h, g.pick(mechs[:2]), user), "", none) &&
		g.emit("postfix/cleanup", g.pid(), fmt.Sprintf("%s: message-id=<%x@example.org>", q, g.rng.Uint64()), "", none) &&
		g.emit("postfix/qmgr", 1111, fmt.Sprintf("%s: from=<%s>, size=%d, nrcpt=1 (queue active)", q, user, 500+g.rng.IntN(200000)), "", none) &&
		g.emit(id, pid, "disconnect from "+h+" ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8", "", none) &&
		g.delivered(q, g.pick(users)+"@"+g.pick(domains)) &&
		g.emit("postfix/qmgr", 1111, q+": removed", "", none)
}

// imapLogin is a successful IMAP or POP3 session.
func (g *generator) imapLogin() {
	var none netip.Addr
	a, mpid := g.client(), g.pid()
	user := g.pick(users)
	proto := g.pick(logins[:2])
	sess := fmt.Sprintf("%x", g.rng.Uint64())
	_ = g.emit("dovecot", 881, fmt.Sprintf("%s: Login: user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.25, mpid=%d, TLS, session=<%s>", proto, user, a, mpid, sess), "", none) &&
		g.emit("dovecot", 881, fmt.Sprintf("%s(%s)<%d><%s>: Disconnected: Logged out in=%d out=%d deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0", proto[:4], user, mpid, sess, 50+g.rng.IntN(900), 400+g.rng.IntN(90000)), "", none)
}

// rejectedProbe is a scanner that connects, fails and leaves: lines no
// enabled jail counts except postfix-reject's "lost connection after AUTH".
func (g *generator) rejectedProbe() {
	var none netip.Addr
	a, pid := g.attacker(), g.pid()
	h := g.host(a)
	if !g.emit("postfix/smtpd", pid, "connect from "+h, "", none) {
		return
	}
	if g.rng.IntN(3) == 0 {
		if !g.emit("postfix/smtpd", pid, "lost connection after AUTH from "+h, "postfix-reject", a) {
			return
		}
	} else if !g.emit("postfix/smtpd", pid, "lost connection after EHLO from "+h, "", none) {
		return
	}
	g.emit("postfix/smtpd", pid, "disconnect from "+h+" ehlo=1 auth=0/1 commands=1/2", "", none)
}

// saslGuesser tries one to four passwords over SMTP AUTH, in Postfix's old
// or new (3.9, 3.5.22+) format.
func (g *generator) saslGuesser() {
	var none netip.Addr
	a, pid := g.attacker(), g.pid()
	id := g.pick(smtpdIDs)
	h := g.host(a)
	if !g.emit(id, pid, "connect from "+h, "", none) {
		return
	}
	tries := 1 + g.rng.IntN(4)
	for range tries {
		mech := g.pick(mechs)
		var msg string
		switch r := g.rng.IntN(20); {
		case r == 0: // the auth server hiccuped: ignored, not a guess
			msg = fmt.Sprintf("warning: %s: SASL %s authentication failed: Connection lost to authentication server", h, mech)
			if !g.emit(id, pid, msg, "", none) {
				return
			}
			continue
		case r < 10:
			msg = fmt.Sprintf("warning: %s: SASL %s authentication failed: %s", h, mech, g.pick(oldWhy))
		default:
			msg = fmt.Sprintf("warning: %s: SASL %s authentication failed: (reason unavailable), sasl_username=%s", h, mech, g.pick(guesses))
		}
		if !g.emit(id, pid, msg, "postfix-sasl", a) {
			return
		}
	}
	g.emit(id, pid, fmt.Sprintf("disconnect from %s ehlo=1 auth=0/%d quit=1 commands=2/%d", h, tries, tries+2), "", none)
}

// relayProbe asks us to relay to an outside domain.
func (g *generator) relayProbe() {
	var none netip.Addr
	a, pid := g.attacker(), g.pid()
	h := g.host(a)
	if !g.emit("postfix/smtpd", pid, "connect from "+h, "", none) {
		return
	}
	for range 1 + g.rng.IntN(2) {
		to := fmt.Sprintf("%s@%s", g.pick(users), "relay-test.example")
		code := "554 5.7.1"
		if g.rng.IntN(4) == 0 {
			code = "454 4.7.1"
		}
		msg := fmt.Sprintf("NOQUEUE: reject: RCPT from %s: %s <%s>: Relay access denied; from=<spameri@tiscali.it> to=<%s> proto=ESMTP helo=<%s>", h, code, to, to, a)
		if !g.emit("postfix/smtpd", pid, msg, "postfix-relay", a) {
			return
		}
	}
	g.emit("postfix/smtpd", pid, "disconnect from "+h+" ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", "", none)
}

// unknownRecipient is dictionary harvesting (the postfix-reject jail, off
// by default, counts it).
func (g *generator) unknownRecipient() {
	var none netip.Addr
	a, pid := g.attacker(), g.pid()
	h := g.host(a)
	to := g.pick(guesses) + "x@example.org"
	_ = g.emit("postfix/smtpd", pid, "connect from "+h, "", none) &&
		g.emit("postfix/smtpd", pid, fmt.Sprintf("NOQUEUE: reject: RCPT from %s: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table; from=<> to=<%s> proto=ESMTP helo=<ylmf-pc>", h, to, to), "postfix-reject", a) &&
		g.emit("postfix/smtpd", pid, "disconnect from "+h+" ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", "", none)
}

// dovecotGuesser fails IMAP/POP3 logins: the auth process logs each
// password (auth_verbose, the dovecot-auth jail) and the login process one
// summary line per session (the dovecot jail).
func (g *generator) dovecotGuesser() {
	a := g.attacker()
	user := g.pick(guesses)
	tries := 1 + g.rng.IntN(3)
	sess := fmt.Sprintf("%x", g.rng.Uint64())
	for i := range tries {
		why := "Password mismatch"
		if i%2 == 1 {
			why = "unknown user"
		}
		if !g.emit("dovecot", 881, fmt.Sprintf("auth: passwd-file(%s,%s,<%s>): %s", user, a, sess[:12], why), "dovecot-auth", a) {
			return
		}
	}
	proto := g.pick(logins)
	var msg string
	if g.rng.IntN(2) == 0 {
		msg = fmt.Sprintf("%s: Disconnected (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.25, TLS, session=<%s>", proto, tries, 2+g.rng.IntN(20), user, a, sess)
	} else {
		msg = fmt.Sprintf("%s: Login aborted: Connection closed (auth failed, %d attempts in %d secs) (auth_failed): user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.25, TLS, session=<%s>", proto, tries, 2+g.rng.IntN(20), user, a, sess)
	}
	g.emit("dovecot", 881, msg, "dovecot", a)
}
