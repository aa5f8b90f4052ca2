package account

import (
	"net/netip"
	"testing"
	"time"

	"smtpban/internal/logline"
)

func line(program, msg string) *logline.Line {
	return &logline.Line{Program: program, Message: msg, Read: time.Unix(1700000000, 0)}
}

func TestParse(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name, program, msg string
		want               Event
		ok                 bool
	}{
		{"postfix submission", "postfix/submission/smtpd",
			"4XyZ1k2J3mz9abc: client=unknown[10.78.3.2], sasl_method=PLAIN, sasl_username=alice",
			Event{Kind: Submit, QueueID: "4XyZ1k2J3mz9abc", User: "alice", Addr: a("10.78.3.2")}, true},
		{"postfix with port and ipv6", "postfix/smtpd",
			"ABC123: client=mail.example[2001:db8::7]:40122, sasl_method=LOGIN, sasl_username=bob@example.test",
			Event{Kind: Submit, QueueID: "ABC123", User: "bob@example.test", Addr: a("2001:db8::7")}, true},
		{"mapped address unmapped", "postfix/smtpd",
			"ABC123: client=unknown[::ffff:192.0.2.9], sasl_method=PLAIN, sasl_username=alice",
			Event{Kind: Submit, QueueID: "ABC123", User: "alice", Addr: a("192.0.2.9")}, true},
		{"unauthenticated client line", "postfix/smtpd", "ABC123: client=unknown[192.0.2.9]", Event{}, false},
		{"qmgr", "postfix/qmgr", "ABC123: from=<alice@example.test>, size=1234, nrcpt=3 (queue active)",
			Event{Kind: Queued, QueueID: "ABC123", Rcpt: 3}, true},
		{"qmgr null sender", "postfix/qmgr", "ABC123: from=<>, size=1234, nrcpt=1 (queue active)",
			Event{Kind: Queued, QueueID: "ABC123", Rcpt: 1}, true},
		{"qmgr removed", "postfix/qmgr", "ABC123: removed", Event{}, false},
		{"sasl failure", "postfix/submission/smtpd",
			"warning: unknown[10.79.1.20]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice",
			Event{Kind: Fail, User: "alice", Addr: a("10.79.1.20")}, true},
		{"sasl failure with challenge", "postfix/smtpd",
			"warning: unknown[10.79.1.20]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=alice",
			Event{Kind: Fail, User: "alice", Addr: a("10.79.1.20")}, true},
		{"sasl failure without user (old postfix)", "postfix/smtpd",
			"warning: unknown[10.79.1.20]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", Event{}, false},
		{"auth server down is no guess", "postfix/smtpd",
			"warning: unknown[10.79.1.20]: SASL LOGIN authentication failed: Connection lost to authentication server, sasl_username=alice", Event{}, false},
		{"dovecot login", "dovecot",
			"imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=123, TLS, session=<abc>",
			Event{Kind: Login, User: "alice", Addr: a("192.0.2.10")}, true},
		{"dovecot failure", "dovecot",
			"imap-login: Disconnected (auth failed, 2 attempts in 4 secs): user=<alice>, method=PLAIN, rip=192.0.2.11, lip=192.0.2.1, TLS, session=<abc>",
			Event{Kind: Fail, User: "alice", Addr: a("192.0.2.11")}, true},
		{"dovecot submission login", "dovecot",
			"submission-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.12, lip=192.0.2.1, mpid=9, session=<x>",
			Event{Kind: Login, User: "alice", Addr: a("192.0.2.12")}, true},
		{"exim submission", "exim",
			"1rXyZa-000Abc-Xy <= alice@example.test H=(laptop) [192.0.2.20]:51234 P=esmtpa A=dovecot_plain:alice S=1234 id=x@y",
			Event{Kind: Submit, QueueID: "1rXyZa-000Abc-Xy", User: "alice", Addr: a("192.0.2.20"), Rcpt: 1}, true},
		{"exim with TLS and interface", "exim",
			"1rXyZa-000Abc-Xy <= alice@example.test H=host.example (laptop) [192.0.2.20]:51234 I=[192.0.2.1]:587 P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=login:alice S=99",
			Event{Kind: Submit, QueueID: "1rXyZa-000Abc-Xy", User: "alice", Addr: a("192.0.2.20"), Rcpt: 1}, true},
		{"exim auth failure", "exim",
			"plain_server authenticator failed for (laptop) [192.0.2.22]:5123: 535 Incorrect authentication data (set_id=alice)",
			Event{Kind: Fail, User: "alice", Addr: a("192.0.2.22")}, true},
		{"exim auth failure with name and interface", "exim",
			"login authenticator failed for host.example (laptop) [192.0.2.22]:5123 I=[192.0.2.1]:587: 535 Incorrect authentication data (set_id=bob@example.test)",
			Event{Kind: Fail, User: "bob@example.test", Addr: a("192.0.2.22")}, true},
		{"exim unauthenticated", "exim",
			"1rXyZa-000Abc-Xy <= bob@elsewhere.example H=(x) [192.0.2.21]:51234 P=esmtp S=1234", Event{}, false},
		{"wrong program", "postfix/cleanup",
			"ABC123: client=unknown[10.78.3.2], sasl_method=PLAIN, sasl_username=alice", Event{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse(line(tc.program, tc.msg))
			if ok != tc.ok || got != tc.want {
				t.Errorf("Parse = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestParseInjection: everything after the server's fixed text is the
// client's; a client that writes fake fields there must not choose the
// address, the account or the figures.
func TestParseInjection(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name, program, msg string
		want               Event
		ok                 bool
	}{
		{"fake client line in a sasl user name", "postfix/smtpd",
			"warning: unknown[10.79.1.20]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=x, sasl_username=alice warning: unknown[192.0.2.99]: SASL",
			Event{Kind: Fail, User: "x, sasl_username=alice warning: unknown[192.0.2.99]: SASL", Addr: a("10.79.1.20")}, true},
		{"fake queue line inside a failure", "postfix/smtpd",
			"warning: unknown[10.79.1.20]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=ABC: client=unknown[192.0.2.99], sasl_method=PLAIN, sasl_username=bob",
			Event{Kind: Fail, User: "ABC: client=unknown[192.0.2.99], sasl_method=PLAIN, sasl_username=bob", Addr: a("10.79.1.20")}, true},
		{"sender posing as figures", "postfix/qmgr",
			"ABC123: from=<x>, size=1, nrcpt=9999 (queue active)@evil>, size=1234, nrcpt=2 (queue active)",
			Event{Kind: Queued, QueueID: "ABC123", Rcpt: 2}, true},
		{"dovecot user posing as rip", "dovecot",
			"imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<alice>, method=PLAIN, rip=192.0.2.99, lip=1.2.3.4>, method=PLAIN, rip=192.0.2.11, lip=192.0.2.1, session=<abc>",
			Event{Kind: Fail, User: "alice>, method=PLAIN, rip=192.0.2.99, lip=1.2.3.4", Addr: a("192.0.2.11")}, true},
		{"dovecot user posing as a login", "dovecot",
			"imap-login: Disconnected (auth failed, 1 attempts): user=<imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.11, lip=192.0.2.1",
			Event{Kind: Fail, User: "imap-login: Login: user=<bob", Addr: a("192.0.2.11")}, true},
		{"exim sender with spaces posing as fields", "exim",
			`1rXyZa-000Abc-Xy <= "x H=(y) [192.0.2.99]:1 P=esmtpa A=plain:bob S=1"@evil H=(z) [192.0.2.21]:5 P=esmtp S=9`, Event{}, false},
		{"exim helo posing as fields", "exim",
			"1rXyZa-000Abc-Xy <= a@b H=([192.0.2.99]) [192.0.2.21]:5 P=esmtp S=9 A=plain:bob S=1", Event{}, false},
		{"exim set_id posing as a failure", "exim",
			"login authenticator failed for (x) [192.0.2.22]:5: 535 Incorrect authentication data (set_id=a) login authenticator failed for (y) [192.0.2.99]:1: 535 Incorrect authentication data (set_id=bob)",
			Event{Kind: Fail, User: "a) login authenticator failed for (y) [192.0.2.99]:1: 535 Incorrect authentication data (set_id=bob", Addr: a("192.0.2.22")}, true},
		{"exim helo posing as a failure", "exim",
			"login authenticator failed for ([192.0.2.99]:1: 535 Incorrect authentication data (set_id=bob)) [192.0.2.22]:5: 535 Incorrect authentication data (set_id=a)", Event{}, false},
		{"a whole line in another program", "postfix/cleanup",
			"warning: header Subject: x postfix/smtpd[1]: ABC: client=unknown[192.0.2.99], sasl_method=PLAIN, sasl_username=bob", Event{}, false},
		{"over-long user", "postfix/smtpd",
			"ABC123: client=unknown[10.78.3.2], sasl_method=PLAIN, sasl_username=" + string(make([]byte, MaxUser+1)), Event{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse(line(tc.program, tc.msg))
			if ok != tc.ok || got != tc.want {
				t.Errorf("Parse = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
