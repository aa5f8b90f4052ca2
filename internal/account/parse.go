package account

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"smtpban/internal/logline"
	"smtpban/jails"
)

// Kind is what a log line says about an account.
type Kind uint8

const (
	// Submit: an authenticated client handed over a message (Postfix
	// smtpd's "client=..., sasl_username=", Exim's "<= ... A=...:user").
	Submit Kind = iota + 1
	// Queued: Postfix qmgr's "from=<...>, size=N, nrcpt=M": the recipients
	// of a message that Submit named by its queue ID.
	Queued
	// Fail: a failed login naming the user.
	Fail
	// Login: a successful login that sends nothing by itself (Dovecot).
	Login
)

// Event is one line's meaning for the account watch.
type Event struct {
	Kind    Kind
	QueueID string
	User    string
	Addr    netip.Addr
	Rcpt    int // Queued: nrcpt; Submit (Exim): 1
}

// MaxUser bounds a user name: longer ones are not accounts anyone has,
// and are not kept.
const MaxUser = 256

// The programs whose lines carry each event, as globs over the line's
// program (see jails.GlobMatch): like a jail, each parser reads only the
// lines its server wrote.
var (
	smtpdPrograms   = []string{"postfix*/*smtpd"}
	qmgrPrograms    = []string{"postfix*/qmgr"}
	dovecotPrograms = []string{"dovecot"}
	eximPrograms    = []string{"exim"}
)

// Parse reads what l says about an account. Every pattern starts at the
// message's beginning and takes the address from where the server writes
// it; the client's text (user names, sender addresses) is either last on
// the line or bounded by what the server writes after it.
func Parse(l *logline.Line) (Event, bool) {
	m := l.Message
	switch {
	case jails.MatchesAny(smtpdPrograms, l.Program):
		if ev, ok := parseClient(m); ok {
			return ev, true
		}
		return parseSASLFail(m)
	case jails.MatchesAny(qmgrPrograms, l.Program):
		return parseQmgr(m)
	case jails.MatchesAny(dovecotPrograms, l.Program):
		return parseDovecot(m)
	case jails.MatchesAny(eximPrograms, l.Program):
		return parseExim(m)
	}
	return Event{}, false
}

// cutQueueID takes "QUEUEID: " off the start of m: Postfix's queue IDs are
// letters and digits.
func cutQueueID(m string) (id, rest string, ok bool) {
	i := 0
	for i < len(m) && i < 32 && isAlnum(m[i]) {
		i++
	}
	if i == 0 || !strings.HasPrefix(m[i:], ": ") {
		return "", "", false
	}
	return m[:i], m[i+2:], true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// cutHost takes "NAME[ADDR]" or "NAME[ADDR]:PORT" off the start of s.
// NAME is a reverse DNS name Postfix validated (no space, no '['), or
// "unknown".
func cutHost(s string) (netip.Addr, string, bool) {
	open := strings.IndexByte(s, '[')
	if open < 0 || strings.ContainsAny(s[:open], " ,") {
		return netip.Addr{}, "", false
	}
	end := strings.IndexByte(s[open:], ']')
	if end < 0 {
		return netip.Addr{}, "", false
	}
	a, err := netip.ParseAddr(s[open+1 : open+end])
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, "", false
	}
	rest := s[open+end+1:]
	if len(rest) > 1 && rest[0] == ':' && rest[1] >= '0' && rest[1] <= '9' {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		rest = rest[j:]
	}
	return a.Unmap(), rest, true
}

// cutWord takes a run of [-\w] off the start of s.
func cutWord(s string) (string, string) {
	i := 0
	for i < len(s) && (isAlnum(s[i]) || s[i] == '-' || s[i] == '_') {
		i++
	}
	return s[:i], s[i:]
}

// user checks a user name taken from the end of a line.
func user(u string) (string, bool) {
	if u == "" || len(u) > MaxUser {
		return "", false
	}
	return u, true
}

// parseClient reads smtpd's "QUEUEID: client=NAME[ADDR], sasl_method=M,
// sasl_username=USER". USER is the client's and last: whatever it holds,
// it is only the name. (Postfix may add ", sasl_sender=..." after it
// when the client gave AUTH= in MAIL FROM; that is kept in the name, which
// then names no account of ours rather than someone else's.)
func parseClient(m string) (Event, bool) {
	id, rest, ok := cutQueueID(m)
	if !ok {
		return Event{}, false
	}
	rest, ok = strings.CutPrefix(rest, "client=")
	if !ok {
		return Event{}, false
	}
	addr, rest, ok := cutHost(rest)
	if !ok {
		return Event{}, false
	}
	rest, ok = strings.CutPrefix(rest, ", sasl_method=")
	if !ok {
		return Event{}, false
	}
	var mech string
	mech, rest = cutWord(rest)
	if mech == "" {
		return Event{}, false
	}
	rest, ok = strings.CutPrefix(rest, ", sasl_username=")
	if !ok {
		return Event{}, false
	}
	u, ok := user(rest)
	if !ok {
		return Event{}, false
	}
	return Event{Kind: Submit, QueueID: id, User: u, Addr: addr}, true
}

// parseSASLFail reads smtpd's "warning: NAME[ADDR]: SASL MECH
// authentication failed: REASON, sasl_username=USER" (Postfix 3.5.22+,
// 3.6.12+, 3.7.8+, 3.8.3+, 3.9). REASON is the server's and holds no
// comma; USER is the client's and last.
func parseSASLFail(m string) (Event, bool) {
	rest, ok := strings.CutPrefix(m, "warning: ")
	if !ok {
		return Event{}, false
	}
	addr, rest, ok := cutHost(rest)
	if !ok {
		return Event{}, false
	}
	rest, ok = strings.CutPrefix(rest, ": SASL ")
	if !ok {
		return Event{}, false
	}
	var mech string
	mech, rest = cutWord(rest)
	if mech == "" {
		return Event{}, false
	}
	rest, ok = strings.CutPrefix(rest, " authentication failed: ")
	if !ok {
		return Event{}, false
	}
	comma := strings.IndexByte(rest, ',')
	if comma < 0 {
		return Event{}, false
	}
	reason := rest[:comma]
	if strings.HasPrefix(reason, "Connection lost to authentication server") || strings.HasPrefix(reason, "Invalid authentication mechanism") {
		return Event{}, false // not a guess
	}
	rest, ok = strings.CutPrefix(rest[comma:], ", sasl_username=")
	if !ok {
		return Event{}, false
	}
	u, ok := user(rest)
	if !ok {
		return Event{}, false
	}
	return Event{Kind: Fail, User: u, Addr: addr}, true
}

// parseQmgr reads qmgr's "QUEUEID: from=<SENDER>, size=N, nrcpt=M (queue
// active)". SENDER is the client's and may hold anything, fake fields
// included: the figures are read from the end, which the server writes.
func parseQmgr(m string) (Event, bool) {
	id, rest, ok := cutQueueID(m)
	if !ok || !strings.HasPrefix(rest, "from=<") {
		return Event{}, false
	}
	rest, ok = strings.CutSuffix(rest, " (queue active)")
	if !ok {
		return Event{}, false
	}
	i := strings.LastIndex(rest, ", nrcpt=")
	if i < 0 {
		return Event{}, false
	}
	n, err := strconv.Atoi(rest[i+len(", nrcpt="):])
	if err != nil || n < 0 || n > 1<<20 {
		return Event{}, false
	}
	j := strings.LastIndex(rest[:i], ", size=")
	if j < 0 || !allDigits(rest[j+len(", size="):i]) || !strings.HasSuffix(rest[:j], ">") {
		return Event{}, false
	}
	return Event{Kind: Queued, QueueID: id, Rcpt: n}, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// dovecotLogin is "SERVICE-login: Login: user=<" and its failures
// "SERVICE-login: Disconnected (auth failed, ...): user=<" or
// "SERVICE-login: Aborted login (auth failed, ...): user=<".
var dovecotHead = regexp.MustCompile(`^(?:imap|pop3|submission|managesieve)-login: (Login|(?:Disconnected|Aborted login) \(auth failed, \d+ attempts?(?: in \d+ secs?)?\)): user=<`)

// parseDovecot reads a login service's "user=<USER>, method=M, rip=ADDR,
// lip=...". USER is the client's and may hold fake fields, ">, rip="
// included; what Dovecot writes after it (method, rip, lip, mpid, TLS,
// session=<ID>) is the server's and holds no client text, so the server's
// rip is the last one and USER ends at the ">, method=M" just before it.
func parseDovecot(m string) (Event, bool) {
	h := dovecotHead.FindStringSubmatch(m)
	if h == nil {
		return Event{}, false
	}
	rest := m[len(h[0]):]
	r := strings.LastIndex(rest, ", rip=")
	if r < 0 {
		return Event{}, false
	}
	after := rest[r+len(", rip="):]
	end := strings.IndexByte(after, ',')
	if end < 0 {
		end = len(after)
	}
	addr, err := netip.ParseAddr(after[:end])
	if err != nil || addr.Zone() != "" {
		return Event{}, false
	}
	head := rest[:r]
	k := strings.LastIndex(head, ">, method=")
	if k < 0 {
		return Event{}, false
	}
	if mech, tail := cutWord(head[k+len(">, method="):]); mech == "" || tail != "" {
		return Event{}, false
	}
	u, ok := user(head[:k])
	if !ok {
		return Event{}, false
	}
	kind := Fail
	if h[1] == "Login" {
		kind = Login
	}
	return Event{Kind: kind, User: u, Addr: addr.Unmap()}, true
}

// eximArrival is Exim's "<=" line of an authenticated submission, field
// by field as Exim writes them; the sender and HELO, the client's, may
// hold no space or quote here, so they cannot pose as the fields after
// them (a line whose sender has a quoted local part is not read, nor one
// with a client certificate's DN=, which the client writes).
var eximArrival = regexp.MustCompile(`^(\S+) <= [^\s"]+ (?:R=\S+ )?(?:U=\S+ )?H=(?:[^\s\[(]+ )?(?:\([^\s()]*\) )?\[([0-9A-Fa-f.:]+)\](?::\d+)? (?:I=\[[0-9A-Fa-f.:]+\](?::\d+)? )?P=\w+ (?:X=\S+ )?(?:CV=\w+ )?(?:K )?A=[-\w]+:(\S+) S=\d+`)

// eximAuthFail is Exim's "AUTHENTICATOR authenticator failed for
// [NAME ](HELO) [ADDR]:PORT[ I=[LOCAL]:PORT]: 535 Incorrect authentication
// data (set_id=USER)". HELO may hold no space or parenthesis; USER is the
// client's and last.
var eximAuthFail = regexp.MustCompile(`^[-\w]+ authenticator failed for (?:[^\s\[(]+ )?(?:\([^\s()]*\) )?\[([0-9A-Fa-f.:]+)\](?::\d+)?(?: I=\[[0-9A-Fa-f.:]+\](?::\d+)?)?: 535 Incorrect authentication data \(set_id=(.+)\)$`)

// parseExim reads Exim's "ID <= SENDER H=... [ADDR]:PORT P=esmtpa
// A=AUTHENTICATOR:USER S=SIZE ...". The line does not count recipients
// (only with +received_recipients): each message counts as one.
func parseExim(m string) (Event, bool) {
	if f := eximAuthFail.FindStringSubmatch(m); f != nil {
		a, err := netip.ParseAddr(f[1])
		u, ok := user(f[2])
		if err != nil || !ok {
			return Event{}, false
		}
		return Event{Kind: Fail, User: u, Addr: a.Unmap()}, true
	}
	g := eximArrival.FindStringSubmatch(m)
	if g == nil {
		return Event{}, false
	}
	a, err := netip.ParseAddr(g[2])
	if err != nil {
		return Event{}, false
	}
	u, ok := user(g[3])
	if !ok {
		return Event{}, false
	}
	return Event{Kind: Submit, QueueID: g[1], User: u, Addr: a.Unmap(), Rcpt: 1}, true
}
