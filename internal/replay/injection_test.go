package replay_test

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/logline"
	"smtpban/jails"
)

// An injection template is a real log line of a shipped jail with the
// text a client chooses marked: {C} where the server writes the client's
// words as given (user names, MAIL FROM and RCPT TO, HELO in Postfix's
// helo=<...>, unknown commands, pregreet text), {H} where it writes an Exim
// HELO, which Exim takes only without white space. Its true client address
// is the one the server wrote at its own place in the line.
type injTemplate struct {
	name   string
	jail   string // the shipped jail the line is for
	format logline.Format
	addr   string // the true client address, as a hit gives it (unmapped)
	line   string
}

// The true addresses are in 203.0.113.100-199 and 2001:db8:7e57::/48,
// which no corpus line holds; victims (injVictim4, injVictim6) are elsewhere.
var injTemplates = []injTemplate{
	// postfix-sasl: the user name after "sasl_username=", always last.
	{"sasl v4 user", "postfix-sasl", logline.Syslog, "203.0.113.101",
		"Nov 24 16:04:04 mx1 postfix/smtpd[12345]: warning: unknown[203.0.113.101]: SASL PLAIN authentication failed: (reason unavailable), sasl_username={C}"},
	{"sasl v6 user", "postfix-sasl", logline.Syslog, "2001:db8:7e57::102",
		"Nov 24 16:04:06 mx1 postfix/submission/smtpd[12347]: warning: host.example.net[2001:db8:7e57::102]: SASL LOGIN authentication failed: authentication failure, sasl_username={C}"},
	{"sasl mapped user", "postfix-sasl", logline.Syslog, "203.0.113.103",
		"2024-11-24T16:04:08.123456+00:00 mx1 postfix/smtps/smtpd[12349]: warning: unknown[::ffff:203.0.113.103]: SASL CRAM-MD5 authentication failed: (reason unavailable), sasl_username={C}"},
	{"sasl success user", "postfix-sasl", logline.Syslog, "203.0.113.104",
		"Nov 24 16:04:15 mx1 postfix/submission/smtpd[12354]: 4Y1ZQm1Xyz: client=unknown[203.0.113.104]:52114, sasl_method=PLAIN, sasl_username={C}"},

	// postfix-relay: the recipient in <...>, from=<...>, to=<...>, helo=<...>.
	{"relay rcpt", "postfix-relay", logline.Syslog, "203.0.113.111",
		"Nov 24 16:05:01 mx1 postfix/smtpd[2001]: NOQUEUE: reject: RCPT from unknown[203.0.113.111]: 454 4.7.1 <{C}>: Relay access denied; from=<a@example.org> to=<{C}> proto=ESMTP helo=<x>"},
	{"relay from helo", "postfix-relay", logline.Syslog, "2001:db8:7e57::112",
		"Nov 24 16:05:02 mx1 postfix/smtpd[2002]: 4Y1ZQm1Xyz: reject: RCPT from mail.example[2001:db8:7e57::112]: 554 5.7.1 <x@example.net>: Relay access denied; from=<{C}> to=<x@example.net> proto=ESMTP helo=<{C}>"},

	// postfix-reject: addresses in <...>, HELO, pipelined command text.
	{"reject rcpt", "postfix-reject", logline.Syslog, "203.0.113.121",
		"Nov 24 16:06:01 mx1 postfix/smtpd[3001]: NOQUEUE: reject: RCPT from unknown[203.0.113.121]: 550 5.1.1 <{C}>: Recipient address rejected: User unknown in local recipient table; from=<{C}> to=<{C}> proto=ESMTP helo=<{C}>"},
	{"reject helo", "postfix-reject", logline.Syslog, "203.0.113.122",
		"Jan 31 13:55:24 xxx postfix/smtpd[3462]: NOQUEUE: reject: EHLO from s271272.example.net[203.0.113.122]: 504 5.5.2 <{C}>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<{C}>"},
	{"reject pipelining", "postfix-reject", logline.Syslog, "2001:db8:7e57::123",
		"Jan 12 11:07:49 mx1 postfix/smtpd[13767]: improper command pipelining after CONNECT from unknown[2001:db8:7e57::123]: {C}"},

	// postscreen: what a bot said before the greeting.
	{"postscreen pregreet v4", "postscreen", logline.Syslog, "203.0.113.131",
		"Nov 24 16:07:01 mx1 postfix/postscreen[700]: PREGREET 11 after 0.1 from [203.0.113.131]:51234: {C}"},
	{"postscreen pregreet v6", "postscreen", logline.Syslog, "2001:db8:7e57::132",
		"Nov 24 16:07:10 mx1 postfix-in/postscreen[701]: PREGREET 26 after 0 from [2001:db8:7e57::132]:40312: {C}"},

	// dovecot: the user name in user=<...>.
	{"dovecot disconnected", "dovecot", logline.Syslog, "203.0.113.141",
		"Jun 13 16:30:54 platypus dovecot: imap-login: Disconnected (auth failed, 2 attempts): user=<{C}>, method=PLAIN, rip=203.0.113.141, lip=198.51.100.1, TLS"},
	{"dovecot login aborted", "dovecot", logline.Syslog, "2001:db8:7e57::142",
		"Jun 12 20:02:23 kvm456 dovecot[996]: imap-login: Login aborted: Connection closed (auth failed, 2 attempts in 14 secs) (auth_failed): user=<{C}>, method=PLAIN, rip=2001:db8:7e57::142, lip=2001:db8:ffff::1, TLS, session=<8oNSumM3A8mK/86a>"},
	{"dovecot log_path", "dovecot", logline.Dovecot, "203.0.113.143",
		"Jan 29 09:34:17 pop3-login: Info: Aborted login (auth failed, 1 attempts in 62 secs): user=<{C}>, method=PLAIN, rip=203.0.113.143, TLS"},
	{"dovecot success", "dovecot", logline.Syslog, "203.0.113.144",
		"Nov 24 16:05:07 mx1 dovecot[88]: imap-login: Login: user=<{C}>, method=PLAIN, rip=203.0.113.144, lip=198.51.100.1, mpid=5555, TLS, session=<aaaabbbbccccdddd>"},

	// dovecot-auth: the user name in "passwd-file(USER,ADDR)", and the
	// password itself with auth_verbose_passwords = plain.
	{"dovecot-auth passwd-file", "dovecot-auth", logline.Syslog, "203.0.113.151",
		"Nov 24 16:04:03 mx1 dovecot[812]: auth: passwd-file({C},203.0.113.151): Password mismatch"},
	{"dovecot-auth pam", "dovecot-auth", logline.Syslog, "203.0.113.152",
		"Nov 24 16:05:04 mx1 dovecot[88]: auth-worker(4321): pam({C},203.0.113.152,<6789abcdefghijkl>): pam_authenticate() failed: Authentication failure (password mismatch?)"},
	{"dovecot-auth log_path sha1", "dovecot-auth", logline.Dovecot, "2001:db8:7e57::153",
		"Nov 24 16:04:04 auth: Info: passwd-file({C},2001:db8:7e57::153,<Hp3vDlAl4tIKTQAC>): Password mismatch (SHA1 of given password: 1a2b3c)"},
	{"dovecot-auth plain password", "dovecot-auth", logline.Dovecot, "203.0.113.154",
		"Apr 01 12:12:40 auth: Info: static(john,203.0.113.154,<1xnw5wcV/I2sEQAB>): Password mismatch (given password: {C})"},

	// exim: HELO in (...), set_id=, F=<...> and the recipient.
	{"exim auth helo set_id", "exim", logline.Exim, "203.0.113.161",
		"2013-01-04 17:03:46 login authenticator failed for rrcs.example.com ({H}) [203.0.113.161]: 535 Incorrect authentication data (set_id={C})"},
	{"exim auth v6 port", "exim", logline.Exim, "2001:db8:7e57::162",
		"2014-12-02 03:00:23 auth_plain authenticator failed for ({H}) [2001:db8:7e57::162]:41556 I=[198.51.100.1]:25: 535 Incorrect authentication data (set_id={C})"},
	{"exim relay", "exim", logline.Exim, "203.0.113.163",
		"2024-11-24 16:06:10 H=({H}) [203.0.113.163]:4152 F=<{C}> rejected RCPT <{C}>: relay not permitted"},
	{"exim syslog", "exim", logline.Syslog, "203.0.113.164",
		"Nov 24 16:06:10 mx1 exim4[1234]: 2024-11-24 16:06:10 [1234] dovecot_login authenticator failed for ({H}) [203.0.113.164]: 535 Incorrect authentication data (set_id={C})"},

	// exim-reject: as exim, and the command Exim quotes.
	{"exim-reject sender verify", "exim-reject", logline.Exim, "203.0.113.171",
		"2013-06-10 10:10:59 H=mail.example.com ({H}) [203.0.113.171] sender verify fail for <{C}>: Unrouteable address"},
	{"exim-reject rcpt", "exim-reject", logline.Exim, "203.0.113.172",
		"2013-06-15 16:36:49 H=altmx.example.com [203.0.113.172] F=<{C}> rejected RCPT <{C}>: Unknown user"},
	{"exim-reject sync input", "exim-reject", logline.Exim, "2001:db8:7e57::173",
		"2024-11-24 16:07:01 SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[2001:db8:7e57::173]:41234 I=[198.51.100.1]:25 input=\"{C}\""},
	{"exim-reject dropped", "exim-reject", logline.Exim, "203.0.113.174",
		"2013-06-02 09:22:05 [19591] SMTP call from ({H}) [203.0.113.174]:3767 I=[198.51.100.1]:25 dropped: too many nonmail commands (last was \"{C}\")"},

	// sendmail-auth: user=, and the user name Cyrus SASL's reason quotes.
	{"sendmail forged", "sendmail-auth", logline.Syslog, "203.0.113.181",
		"Feb 25 04:02:27 relay1 sendmail[16664]: 06I02CNi016764: AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user={C}, relay=example.com [203.0.113.181] (may be forged)"},
	{"sendmail v6", "sendmail-auth", logline.Syslog, "2001:db8:7e57::182",
		"Nov 24 16:07:02 mx1 sm-mta[2347]: 4AOG72ac002347: AUTH failure (PLAIN): authentication failure (-13) SASL(-13): authentication failure: Password verification failed, user={C}, relay=host.example.net [IPv6:2001:db8:7e57::182]"},
	{"sendmail sasldb", "sendmail-auth", logline.Syslog, "203.0.113.183",
		"May 24 01:59:07 server sm-mta[65815]: 14NNx65Q065815: AUTH failure (CRAM-MD5): user not found (-20) SASL(-13): user not found: user: {C}@server.example.com property: userPassword not found in sasldb /usr/local/etc/sasldb2, user={C}, relay=[203.0.113.183]"},

	// courier: user=, and courieresmtpd's cmd:.
	{"courier imapd", "courier", logline.Syslog, "203.0.113.191",
		"Apr 23 21:59:01 dns2 imapd: LOGIN FAILED, user={C}, ip=[::ffff:203.0.113.191]"},
	{"courier port", "courier", logline.Syslog, "2001:db8:7e57::192",
		"Apr 27 09:00:00 servername imapd-ssl[42]: LOGIN FAILED, user={C}, ip=[2001:db8:7e57::192], port=[255]"},
	{"courier esmtpd cmd", "courier", logline.Syslog, "203.0.113.193",
		"Jul  3 23:07:20 szerver courieresmtpd: error,relay=::ffff:203.0.113.193,msg=\"535 Authentication failed.\",cmd: {C}"},
	{"courier success", "courier", logline.Syslog, "203.0.113.194",
		"Nov 24 16:08:04 mx1 imapd: LOGIN, user={C}, ip=[::ffff:203.0.113.194], port=[51234], protocol=IMAP"},
	{"courier esmtpd port", "courier", logline.Syslog, "203.0.113.195",
		"Aug 14 12:51:05 mail.server courieresmtpd[425070]: error,relay=::ffff:203.0.113.195,port=43632,msg=\"535 Authentication failed.\",cmd: AUTH LOGIN {C}"},

	// Issue 15's formats. dovecot: user=<...> of a proxy's and 2.4's lines.
	{"dovecot proxy dest 2.3", "dovecot", logline.Syslog, "203.0.113.145",
		"Jul 17 09:21:22 mailproxy dovecot: imap-login: Disconnected (proxy dest auth failed): user=<{C}>, method=PLAIN, rip=203.0.113.145, lip=192.168.1.2, session=<NTI4FiZxcQCSud4G>"},
	{"dovecot proxy dest 2.4", "dovecot", logline.Syslog, "2001:db8:7e57::146",
		"Nov 24 16:11:02 proxy1 dovecot[77]: imap-login: Login aborted: Connection closed (proxy dest authentication failure to 10.0.0.5, 2 attempts in 4 secs, last failure: [AUTHENTICATIONFAILED] Authentication failed.) (proxy_dest_auth_failed): user=<{C}>, method=PLAIN, rip=2001:db8:7e57::146, lip=2001:db8::2, TLS, session=<cd4FiZxcQCSud4G>"},
	// dovecot-cleartext: user=<...>.
	{"dovecot-cleartext 2.3", "dovecot-cleartext", logline.Syslog, "203.0.113.147",
		"Dec  2 01:22:52 mx1 dovecot: imap-login: Disconnected: Connection closed (tried to use disallowed plaintext auth): user=<{C}>, method=PLAIN, rip=203.0.113.147, lip=198.51.100.1, session=<cftbe5xhz9HLAHHS>"},
	{"dovecot-cleartext 2.4", "dovecot-cleartext", logline.Syslog, "2001:db8:7e57::148",
		"Nov 24 16:09:01 mx1 dovecot[241]: imap-login: Login aborted: Connection closed (tried to use disallowed cleartext auth, 1 attempts in 0 secs) (cleartext_auth_disabled): user=<{C}>, method=PLAIN, rip=2001:db8:7e57::148, lip=2001:db8::1, session=<9ZHq02g3J8S60fan>"},
	// dovecot-pam: ruser=, the user name as given, before rhost=.
	{"dovecot-pam unknown user", "dovecot-pam", logline.Syslog, "203.0.113.155",
		"Dec  2 01:21:41 mx1 auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser={C} rhost=203.0.113.155 "},
	{"dovecot-pam v6", "dovecot-pam", logline.Syslog, "2001:db8:7e57::156",
		"Dec  2 01:22:56 mx1 auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser={C} rhost=2001:db8:7e57::156 "},
	// dovecot-auth: 2.3's auth-worker prefix, an empty field, 2.4's prefix.
	{"dovecot-auth worker conn", "dovecot-auth", logline.Syslog, "203.0.113.157",
		"Dec  2 01:22:34 mx1 dovecot: auth-worker(809): conn unix:auth-worker (pid=805,uid=103): auth-worker<1>: pam({C},203.0.113.157,<nWUyepxh++PLAHEp>): pam_authenticate() failed: Authentication failure (Password mismatch?)"},
	{"dovecot-auth ldap empty field", "dovecot-auth", logline.Dovecot, "203.0.113.158",
		"Mar 23 06:10:52 auth: Info: ldap({C},203.0.113.158,): invalid credentials"},
	{"dovecot-auth 2.4", "dovecot-auth", logline.Syslog, "2001:db8:7e57::159",
		"Nov 24 16:12:02 mx1 dovecot[300]: auth-worker({C},2001:db8:7e57::159,sasl:login)<4242><Cd1+E95Uf4e7eEnj>: request [7]: pam: pam_authenticate() failed: Authentication failure (password mismatch?)"},
	{"dovecot-auth 2.4 sha1", "dovecot-auth", logline.Dovecot, "203.0.113.159",
		"Nov 24 16:12:07 auth({C},203.0.113.159,sasl:plain)<Mn1+E95Uf4e7eEnj>: Info: sql: Password mismatch (SHA1 of given password: 4d5e6f)"},
	// exim: the AUTH command Exim quotes, the HELO, set_id=.
	{"exim auth not advertised", "exim", logline.Exim, "203.0.113.165",
		"2026-12-02 01:26:36 SMTP protocol error in \"AUTH LOGIN {C}\" H=({H}) [203.0.113.165] I=[198.51.100.1]:25 AUTH command used when not advertised"},
	{"exim auth Ci", "exim", logline.Exim, "2001:db8:7e57::166",
		"2026-11-24 16:10:04 plain_server authenticator failed for H=({H}) [2001:db8:7e57::166]:50123 I=[198.51.100.1]:587 Ci=4714: 535 Incorrect authentication data (set_id={C})"},
	// exim-connection: the HELO.
	{"exim-connection no MAIL", "exim-connection", logline.Exim, "203.0.113.167",
		"2026-12-02 01:26:39 no MAIL in SMTP connection from ({H}) [203.0.113.167] I=[198.51.100.1]:25 D=0s C=EHLO,NOOP,RSET,QUIT"},
	{"exim-connection drop", "exim-connection", logline.Exim, "2001:db8:7e57::168",
		"2016-03-21 04:07:49 [25874] 1ahr79-0006jK-G9 SMTP connection from ({H}) [2001:db8:7e57::168]:44884 I=[172.89.0.6]:25 closed by DROP in ACL"},
	// postfix-rbl: from=<...>, to=<...>, helo=<...> after the address.
	{"rbl smtpd", "postfix-rbl", logline.Syslog, "203.0.113.125",
		"Nov 24 16:13:01 mx1 postfix/smtpd[5001]: NOQUEUE: reject: RCPT from unknown[203.0.113.125]: 554 5.7.1 Service unavailable; Client host [203.0.113.125] blocked using zen.spamhaus.org; from=<{C}> to=<{C}> proto=ESMTP helo=<{C}>"},
	{"rbl postscreen", "postfix-rbl", logline.Syslog, "2001:db8:7e57::126",
		"Nov 24 16:13:05 mx1 postfix/postscreen[700]: NOQUEUE: reject: RCPT from [2001:db8:7e57::126]:51235: 550 5.7.1 Service unavailable; client [2001:db8:7e57::126] blocked using b.barracudacentral.org; from=<{C}>, to=<{C}>, proto=SMTP, helo=<{C}>"},
	// postfix-reject's new patterns.
	{"reject hostname", "postfix-reject", logline.Syslog, "203.0.113.127",
		"Apr  7 03:10:56 server postfix/smtpd[7754]: NOQUEUE: reject: RCPT from unknown[203.0.113.127]: 550 5.7.25 Client host rejected: cannot find your hostname, [203.0.113.127]; from=<{C}> to=<{C}> proto=ESMTP helo=<{C}>"},
	{"reject data", "postfix-reject", logline.Syslog, "2001:db8:7e57::128",
		"Nov 24 16:15:03 mx1 postfix/smtpd[7003]: NOQUEUE: reject: DATA from unknown[2001:db8:7e57::128]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<{C}> to=<{C}> proto=ESMTP helo=<{C}>"},
	{"reject milter", "postfix-reject", logline.Syslog, "203.0.113.129",
		"Nov 24 16:15:06 mx1 postfix/cleanup[7006]: 4Y1ZQq4Ghi: milter-reject: END-OF-MESSAGE from unknown[203.0.113.129]: 5.7.1 Spam message rejected; from=<{C}> to=<{C}> proto=ESMTP helo=<{C}>"},
}

// injUnread names the templates whose jail, by design, reads none of
// their lines: they must give the true address or nothing, and nothing is
// all they may give.
var injUnread = map[string]string{
	// The password comes after the address and could spell another
	// (see injFound): dovecot-auth's ignoreregex drops these lines.
	"dovecot-auth plain password": "auth_verbose_passwords = plain",
}

// fill puts payload where the template's client writes. A log line holds
// no '\n' (servers escape it), and an Exim HELO no white space (Exim
// refuses it); every other byte is kept.
func (tm injTemplate) fill(payload string) string {
	payload = strings.ReplaceAll(payload, "\n", "")
	helo := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\f', '\v':
			return -1
		}
		return r
	}, payload)
	return strings.ReplaceAll(strings.ReplaceAll(tm.line, "{C}", payload), "{H}", helo)
}

// decode reads the filled line as a source of its format would.
func (tm injTemplate) decode(payload string) *logline.Line {
	l := logline.Decode(tm.format, logline.Clean(tm.fill(payload)), injRead)
	return &l
}

var injRead = time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)

// Victims: the addresses a hostile payload names, none a template's true one.
var (
	injVictim4 = netip.MustParsePrefix("192.0.2.0/24")
	injVictim6 = netip.MustParsePrefix("2001:db8:bad::/48")
)

func injIsVictim(a netip.Addr) bool {
	a = a.Unmap()
	return injVictim4.Contains(a) || injVictim6.Contains(a)
}

// injCrafted are hand-made payloads, each spelled with every form of
// victim address in place of {V}: fake fields of every shipped jail's line.
var injCrafted = []string{
	">, method=PLAIN, rip={V}, lip=1.2.3.4",
	">, method=PLAIN, rip={V}, lip=1.2.3.4, TLS, session=<x>",
	"x>, method=PLAIN, rip={V}",
	",{V}): Password mismatch (",
	",{V}): Password mismatch",
	",{V},<abc>): unknown user",
	"a),{V}): Password mismatch (given password: b",
	"a,{V}): pam_authenticate() failed: Authentication failure (x",
	"\" H=[{V}]:25 ",
	"x\" H=[{V}]:25 I=[1.2.3.4]:25 input=\"",
	"\") rejected connection from H=[{V}]:1 x",
	"relay=[{V}]",
	"x, relay=[{V}]",
	"x, relay=[{V}] (may be forged)",
	"x, relay=host.example [{V}] ",
	"ip=[{V}]",
	"x, ip=[{V}]",
	"x, ip=[{V}], port=[1]",
	"x, ip=[{V}], port=[1], protocol=IMAP",
	"x[{V}]: SASL LOGIN authentication failed: x",
	"]: SASL LOGIN authentication failed: x, sasl_username=y",
	"x, sasl_username=y\rwarning: unknown[{V}]: SASL LOGIN authentication failed: x",
	": 554 5.7.1 <a>: Relay access denied; from=<",
	"a>: Relay access denied; x[{V}]: 554 5.7.1 <a>: Relay access denied;",
	"x) [{V}]: 535 Incorrect authentication data (set_id=x",
	"x)[{V}]:535",
	"[{V}]",
	// Issue 15's formats: pam_unix's rhost=, Dovecot 2.4's prefix, Exim's
	// quoted AUTH command.
	"x rhost={V}",
	"x rhost={V}  user=root",
	"x rhost={V} ",
	",{V},sasl:plain)<a>: sql: Password mismatch",
	"x,{V},sasl:login)<1><a>: request [1]: pam: pam_authenticate() failed: x",
	"\" H=(x) [{V}]:1 I=[1.2.3.4]:25 AUTH command used when not advertised",
	"(proxy dest auth failed): user=<x>, rip={V}, lip=1.2.3.4",
	"(x) [{V}]:1 dropped: too many nonmail commands",
	"x> H=(x) [{V}] F=<a> rejected RCPT <b>: relay not permitted",
	"x [{V}]:1 from [{V}]:1: x",
	"error,relay={V},msg=\"535 Authentication failed.\"",
	"\xff\xfe\xc3(, rip={V}\xed\xa0\x80",
	"a\x00b, rip={V}\x00, ip=[{V}]\x00",
	"\x00",
	"\r",
	"\t",
	" ",
	"",
	"alice",
	"alice@example.com",
}

// injVictimForms are the spellings of victims that {V} stands for.
var injVictimForms = []string{"192.0.2.66", "2001:db8:bad::66", "::ffff:192.0.2.66", "IPv6:2001:db8:bad::66"}

// injAddrToken finds candidate addresses: runs of hex digits, ':' and '.'
// holding a digit.
var injAddrToken = regexp.MustCompile(`[0-9A-Fa-f:.]*[0-9][0-9A-Fa-f:.]*`)

// injVictimizer replaces every address in a text by a victim address,
// the same victim for the same address, mapped IPv4 as mapped.
type injVictimizer struct{ seen map[netip.Addr]netip.Addr }

func (v *injVictimizer) victim(a netip.Addr) netip.Addr {
	u := a.Unmap()
	if w, ok := v.seen[u]; ok {
		return w
	}
	n := len(v.seen)
	var w netip.Addr
	if u.Is4() {
		w = netip.AddrFrom4([4]byte{192, 0, 2, byte(2 + n%250)})
	} else {
		b := injVictim6.Addr().As16()
		b[14], b[15] = byte(n>>8), byte(n+1)
		w = netip.AddrFrom16(b)
	}
	v.seen[u] = w
	return w
}

func (v *injVictimizer) replace(s string) string {
	return injAddrToken.ReplaceAllStringFunc(s, func(tok string) string {
		body := strings.TrimRight(tok, ".:")
		pre := ""
		a, err := netip.ParseAddr(body)
		if err != nil {
			// "IPv6:2001:db8::7" is found as "6:2001:db8::7"; the
			// address starts after its first ':'.
			if i := strings.IndexByte(body, ':'); i > 0 {
				if a, err = netip.ParseAddr(body[i+1:]); err == nil {
					pre, body = body[:i+1], body[i+1:]
				}
			}
		}
		if err != nil {
			return tok
		}
		w := v.victim(a)
		out := w.String()
		if a.Is4In6() {
			out = "::ffff:" + w.String()
		}
		return pre + out + tok[len(pre)+len(body):]
	})
}

// injCorpusLines reads every log line of configs/testdata/*.log with its
// file's format ("# format: NAME").
func injCorpusLines(tb testing.TB) (lines []string, formats []logline.Format) {
	tb.Helper()
	files, err := filepath.Glob("../../configs/testdata/*.log")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus: %v", err)
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			tb.Fatal(err)
		}
		format := logline.Syslog
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if name, ok := strings.CutPrefix(line, "# format: "); ok {
				if format, err = logline.ParseFormat(name); err != nil {
					tb.Fatalf("%s: %v", file, err)
				}
				continue
			}
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			lines, formats = append(lines, line), append(formats, format)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			tb.Fatal(err)
		}
	}
	return lines, formats
}

// injPayloads is the fixed list of hostile payloads: every corpus line,
// whole and its message alone, every template filled and its text after
// the client's part, all with their addresses turned into victims; and
// the crafted ones, with invalid UTF-8, NUL and 10 KiB texts.
func injPayloads(tb testing.TB) []string {
	tb.Helper()
	v := &injVictimizer{seen: map[netip.Addr]netip.Addr{}}
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	lines, formats := injCorpusLines(tb)
	for i, line := range lines {
		add(v.replace(line))
		add(v.replace(logline.Decode(formats[i], logline.Clean(line), injRead).Message))
	}
	for _, tm := range injTemplates {
		filled := tm.fill("x")
		add(v.replace(filled))
		add(v.replace(logline.Decode(tm.format, filled, injRead).Message))
		for _, mark := range []string{"{C}", "{H}"} {
			if i := strings.Index(tm.line, mark); i >= 0 {
				rest := strings.NewReplacer("{C}", "x", "{H}", "x").Replace(tm.line[i+len(mark):])
				add(v.replace(rest))
				add("x" + v.replace(rest))
			}
		}
	}
	for _, c := range injCrafted {
		for _, form := range injVictimForms {
			add(strings.ReplaceAll(c, "{V}", form))
		}
	}
	long := strings.Repeat("A", 10<<10)
	add(long)
	add(long + ">, method=PLAIN, rip=192.0.2.66, lip=1.2.3.4")
	add(strings.Repeat("x, rip=192.0.2.66, ip=[192.0.2.67], relay=[192.0.2.68]", 10<<10/54))
	add(strings.Repeat("\xff", 10<<10))
	add(strings.Repeat("(", 10<<10) + ",192.0.2.66): Password mismatch")
	return out
}

var (
	injOnce    sync.Once
	injMatcher *jails.Matcher
	injErr     string
)

// injShipped is a matcher over every shipped jail, enabled or not.
func injShipped(tb testing.TB) *jails.Matcher {
	tb.Helper()
	injOnce.Do(func() {
		c, ds := config.Load("../../configs/smtpban.hcl")
		if c == nil || len(ds) > 0 {
			injErr = fmt.Sprintf("load ../../configs/smtpban.hcl:\n%v", ds)
			return
		}
		injMatcher = jails.NewMatcher(c.Jails)
	})
	if injMatcher == nil {
		tb.Fatal(injErr)
	}
	return injMatcher
}

// injCheck runs the template filled with payload through every shipped
// jail and reports each hit whose address is not the template's true one.
func injCheck(t *testing.T, m *jails.Matcher, tm injTemplate, payload string) bool {
	t.Helper()
	want := netip.MustParseAddr(tm.addr)
	l := tm.decode(payload)
	ok := true
	for _, h := range m.Match("", l, nil) {
		if h.Addr == want {
			continue
		}
		ok = false
		kind := "wrong address"
		if injIsVictim(h.Addr) {
			kind = "VICTIM"
		}
		t.Errorf("%s: template %q, jail %s (success=%v) yields %s, want %s or nothing\n  payload %q\n  message %q",
			kind, tm.name, h.Jail.Name, h.Success, h.Addr, want, injShort(payload), injShort(l.Message))
	}
	return ok
}

func injShort(s string) string {
	if len(s) > 300 {
		return s[:150] + "..." + s[len(s)-150:]
	}
	return s
}

// TestInjectionTemplates puts every hostile payload where the client
// writes in every template, and asserts that no shipped jail takes any
// address from the line but its true client's. First it checks that each
// template, with a benign user name, does hit its own jail with the true
// address: a template no jail reads would prove nothing.
func TestInjectionTemplates(t *testing.T) {
	m := injShipped(t)
	perJail := map[string]int{}
	for _, tm := range injTemplates {
		if !strings.Contains(tm.line, tm.addr) || !strings.ContainsAny(tm.line, "{") {
			t.Errorf("template %q: its line must hold its address %s and a {C} or {H}", tm.name, tm.addr)
		}
		want := netip.MustParseAddr(tm.addr)
		if injIsVictim(want) {
			t.Errorf("template %q: true address %s is a victim address", tm.name, want)
		}
		_, unread := injUnread[tm.name]
		own := false
		for _, h := range m.Match("", tm.decode("alice"), nil) {
			if h.Jail.Name == tm.jail && h.Addr == want {
				own = true
			}
		}
		if !own && !unread {
			t.Errorf("template %q: with payload \"alice\" jail %s does not hit %s:\n  %s", tm.name, tm.jail, want, tm.fill("alice"))
		}
		if !unread {
			perJail[tm.jail]++
		}
	}
	for _, j := range []string{"postfix-sasl", "postfix-relay", "postfix-reject", "postscreen", "dovecot", "dovecot-auth", "exim", "exim-reject", "sendmail-auth", "courier", "dovecot-cleartext", "dovecot-pam", "exim-connection", "postfix-rbl"} {
		if perJail[j] < 2 {
			t.Errorf("jail %s has %d templates, want at least 2", j, perJail[j])
		}
	}

	payloads := injPayloads(t)
	for _, p := range payloads {
		for _, tm := range injTemplates {
			if strings.Contains(p, tm.addr) {
				t.Fatalf("payload holds true address %s of template %q: %q", tm.addr, tm.name, injShort(p))
			}
		}
	}
	t.Logf("%d templates x %d payloads", len(injTemplates), len(payloads))
	failed := 0
	for _, tm := range injTemplates {
		for _, p := range payloads {
			if !injCheck(t, m, tm, p) {
				if failed++; failed >= 20 {
					t.Fatal("too many failures")
				}
			}
		}
	}
}

// FuzzInjection is TestInjectionTemplates with payloads the fuzzer
// makes: any byte but '\n' where the client writes, in the template the
// index picks. Any hit must name the true address. Seeds: each payload
// in two templates (TestInjectionTemplates runs them in all; the whole
// product would take the fuzzer a minute to load), and the inputs below.
func FuzzInjection(f *testing.F) {
	n := len(injTemplates)
	for k, p := range injPayloads(f) {
		f.Add(uint(k%n), p)
		f.Add(uint((k*7+3)%n), p)
	}
	// Inputs that gave a victim's address: the template's name and the
	// payload.
	for _, s := range injFound {
		i := slices.IndexFunc(injTemplates, func(tm injTemplate) bool { return tm.name == s[0] })
		if i < 0 {
			f.Fatalf("seed for unknown template %q", s[0])
		}
		f.Add(uint(i), s[1])
	}
	m := injShipped(f)
	f.Fuzz(func(t *testing.T, i uint, payload string) {
		tm := injTemplates[i%uint(len(injTemplates))]
		injCheck(t, m, tm, payload)
	})
}

// injFound are the bypasses found so far, kept as seeds: {template, payload}.
var injFound = [][2]string{
	// dovecot-auth: a plain password (auth_verbose_passwords = plain)
	// that spells a second ",ADDR): REASON (given password: " is read
	// as the address, the real one going into the user name.
	{"dovecot-auth plain password", "a),192.0.2.66): Password mismatch (given password: b"},
	{"dovecot-auth plain password", "a,192.0.2.66): pam_authenticate() failed: Authentication failure (x"},
}
