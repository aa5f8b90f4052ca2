package config

import (
	"bufio"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"smtpban/internal/logline"
	"smtpban/jails"
)

const shippedMain = "../../configs/smtpban.hcl"

// TestShippedConfigs loads the shipped main file, which includes every
// jail file, and checks that nothing at all is reported and that every
// .hcl file under configs/ was read.
func TestShippedConfigs(t *testing.T) {
	c, ds := Load(shippedMain)
	if len(ds) > 0 || c == nil {
		t.Fatalf("Load(%s):\n%s", shippedMain, ds.Error())
	}
	var all []string
	err := filepath.WalkDir("../../configs", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".hcl") {
			all = append(all, filepath.Clean(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var loaded []string
	for _, f := range c.Files {
		loaded = append(loaded, filepath.Clean(f))
	}
	for _, f := range all {
		if !slices.Contains(loaded, f) {
			t.Errorf("%s is shipped but not loaded by %s", f, shippedMain)
		}
	}
	if c.Firewall.Kind != "nftables" {
		t.Errorf("shipped firewall = %q, want nftables", c.Firewall.Kind)
	}
	// On a Debian Postfix host only the journal is read.
	var active []string
	for _, s := range c.ActiveSources() {
		active = append(active, s.Kind+":"+s.Name)
	}
	if !slices.Equal(active, []string{"journal:mail"}) {
		t.Errorf("active sources = %v, want [journal:mail]", active)
	}
	wantEnabled := []string{"dovecot", "postfix-relay", "postfix-sasl"}
	var enabled []string
	for _, j := range c.EnabledJails() {
		enabled = append(enabled, j.Name)
	}
	slices.Sort(enabled)
	if !slices.Equal(enabled, wantEnabled) {
		t.Errorf("enabled jails = %v, want %v", enabled, wantEnabled)
	}
}

// TestShippedJails runs sample lines through the shipped jails, enabled or
// not, in the syslog layout and in the journal layout (no date), and checks
// which jail they hit with which address and user.
func TestShippedJails(t *testing.T) {
	c, ds := Load(shippedMain)
	if c == nil {
		t.Fatalf("Load(%s):\n%s", shippedMain, ds.Error())
	}
	m := jails.NewMatcher(c.Jails)
	tests := []struct {
		name string
		line string // message after "HOST IDENT[PID]: ", or a whole line
		jail string // "" for no hit
		addr string
		user string
	}{
		// postfix-sasl
		{"sasl login challenge", "mx1 postfix/smtpd[1234]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "postfix-sasl", "203.0.113.7", ""},
		{"sasl challenge with user", "mx1 postfix/smtpd[1234]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=alice", "postfix-sasl", "203.0.113.7", "alice"},
		{"sasl reason unavailable", "mx1 postfix/smtpd[1234]: warning: unknown[203.0.113.7]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice", "postfix-sasl", "203.0.113.7", "alice"},
		{"sasl submission ipv6", "mx1 postfix/submission/smtpd[99]: warning: host.example[2001:db8::7]: SASL CRAM-MD5 authentication failed: authentication failure, sasl_username=bob@example.com", "postfix-sasl", "2001:db8::7", "bob@example.com"},
		{"sasl smtps mapped", "mx1 postfix/smtps/smtpd[99]: warning: unknown[::ffff:198.51.100.9]: SASL DIGEST-MD5 authentication failed: authentication failure", "postfix-sasl", "198.51.100.9", ""},
		{"sasl not an address", "mx1 postfix/smtpd[1]: warning: unknown[unknown]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "", "", ""},
		{"sasl auth server down", "mx1 postfix/smtpd[1]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: Connection lost to authentication server", "", "", ""},
		{"sasl bad mechanism", "mx1 postfix/smtpd[1]: warning: unknown[203.0.113.7]: SASL FOO authentication failed: Invalid authentication mechanism", "", "", ""},
		{"sasl success", "mx1 postfix/smtpd[1]: 4Y1ZQm1Xyz: client=unknown[203.0.113.7], sasl_method=PLAIN, sasl_username=alice", "", "", ""},
		// postfix-relay
		{"relay denied", "mx1 postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 454 4.7.1 <x@example.net>: Relay access denied; from=<a@example.org> to=<x@example.net> proto=ESMTP helo=<x>", "postfix-relay", "203.0.113.9", ""},
		{"relay denied queue id", "mx1 postfix/smtpd[1234]: 4Y1ZQm1Xyz: reject: RCPT from mail.example[2001:db8::9]: 554 5.7.1 <x@example.net>: Relay access denied; from=<> to=<x@example.net>", "postfix-relay", "2001:db8::9", ""},
		{"other reject is not relay", "mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.33]: 450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.33]; from=<a@example.com>", "postfix-reject", "192.0.2.33", ""}, // reject_unknown_client_hostname: postfix-reject
		// postfix-reject (disabled, still matched here)
		{"unknown user", "mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.40]: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@b> to=<nobody@example.org>", "postfix-reject", "192.0.2.40", ""},
		{"pipelining", "mx1 postfix/smtpd[1]: improper command pipelining after CONNECT from unknown[192.0.2.67]: QUIT\\r\\n", "postfix-reject", "192.0.2.67", ""},
		{"lost after auth", "mx1 postfix/smtpd[1]: lost connection after AUTH from unknown[192.0.2.10]", "postfix-reject", "192.0.2.10", ""},
		// postscreen (disabled)
		{"pregreet", "mx1 postfix/postscreen[700]: PREGREET 11 after 0.1 from [192.0.2.70]:51234: EHLO x\\r\\n", "postscreen", "192.0.2.70", ""},
		{"postscreen pass", "mx1 postfix/postscreen[700]: PASS OLD [192.0.2.68]:51234", "", "", ""},
		// dovecot
		{"dovecot auth failed old", "mx1 dovecot[88]: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<alice>, method=PLAIN, rip=203.0.113.7, lip=192.0.2.1, TLS, session=<x>", "dovecot", "203.0.113.7", "alice"},
		{"dovecot auth failed 2.3.19", "mx1 dovecot: imap-login: Disconnected: auth failed, 3 attempts in 15 secs (auth failed, 3 attempts in 15 secs): user=<bob@example.com>, method=PLAIN, rip=2001:db8:1::5, lip=192.0.2.1, TLS, session=<x>", "dovecot", "2001:db8:1::5", "bob@example.com"},
		{"dovecot pop3 aborted", "mx1 dovecot[88]: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<admin>, method=PLAIN, rip=::ffff:198.51.100.20, lip=::ffff:192.0.2.1, session=<x>", "dovecot", "198.51.100.20", "admin"},
		{"dovecot log_path layout", "imap-login: Info: Disconnected (auth failed, 2 attempts in 5 secs): user=<carol>, method=LOGIN, rip=192.0.2.5, lip=192.0.2.1, session=<x>", "dovecot", "192.0.2.5", "carol"},
		{"dovecot login ok", "mx1 dovecot[88]: imap-login: Login: user=<frank@example.com>, method=PLAIN, rip=192.0.2.44, lip=192.0.2.1, mpid=5555, TLS, session=<x>", "", "", ""},
		{"dovecot no auth attempts", "mx1 dovecot[88]: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=192.0.2.90, lip=192.0.2.1, TLS handshaking, session=<x>", "", "", ""},
		// dovecot-auth (disabled)
		{"passwd-file mismatch", "mx1 dovecot: auth: passwd-file(alice,203.0.113.7): Password mismatch", "dovecot-auth", "203.0.113.7", "alice"},
		{"passwd-file log_path layout", "auth: Info: passwd-file(alice,10.77.0.2): Password mismatch", "dovecot-auth", "10.77.0.2", "alice"},
		{"pam with session", "mx1 dovecot[88]: auth-worker(4321): pam(dave,203.0.113.6,<6789abcdefghijkl>): pam_authenticate() failed: Authentication failure (password mismatch?)", "dovecot-auth", "203.0.113.6", "dave"},
		{"unknown user", "mx1 dovecot[88]: auth: passwd-file(erin,2001:db8:ffff::6): unknown user", "dovecot-auth", "2001:db8:ffff::6", "erin"},
		// exim (disabled)
		{"exim auth", "2024-11-24 16:06:07 login authenticator failed for (User) [192.0.2.77]:56789: 535 Incorrect authentication data (set_id=admin)", "exim", "192.0.2.77", "admin"},
		{"exim auth fake helo", "2024-11-24 16:06:08 dovecot_login authenticator failed for ([192.168.1.2]) [2001:db8:1::5]:50522: 535 Incorrect authentication data (set_id=test@example.com)", "exim", "2001:db8:1::5", "test@example.com"},
		{"exim auth rdns", "2024-11-24 16:06:09 plain authenticator failed for host-198-51-100-60.example.net (WIN-ABC) [198.51.100.60]:4000: 535 Incorrect authentication data", "exim", "198.51.100.60", ""},
		{"exim relay", "2024-11-24 16:06:10 H=(example.com) [198.51.100.23]:4152 F=<a@example.biz> rejected RCPT <x@example.info>: relay not permitted", "exim", "198.51.100.23", ""},
		{"exim delivery", "2024-11-24 16:06:01 1tF3aB-000Abc-12 <= alice@example.org H=mail.example.org [192.0.2.11] P=esmtps S=2048", "", "", ""},
		// sendmail-auth (disabled)
		{"sendmail auth", "mx1 sm-mta[2346]: 4AOG71ab002346: AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=admin, relay=[192.0.2.201]", "sendmail-auth", "192.0.2.201", "admin"},
		{"sendmail auth ipv6", "mx1 sm-mta[2347]: 4AOG72ac002347: AUTH failure (PLAIN): authentication failure (-13) SASL(-13): authentication failure: Password verification failed, user=webmaster, relay=host.example.net [IPv6:2001:db8::7]", "sendmail-auth", "2001:db8::7", "webmaster"},
		{"sendmail fake relay in user", "mx1 sm-mta[2347]: 4AOG72ac002347: AUTH failure (PLAIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=x, relay=[192.0.2.9], relay=[198.51.100.77]", "sendmail-auth", "198.51.100.77", "x, relay=[192.0.2.9]"},
		{"sendmail attack", "mx1 sm-mta[2345]: 4AOG70aa002345: [192.0.2.200]: possible SMTP attack: command=AUTH, count=5", "sendmail-auth", "192.0.2.200", ""},
		{"sendmail sent", "mx1 sm-mta[2351]: 4AOG75af002350: to=<bob@example.net>, delay=00:00:00, mailer=local, stat=Sent", "", "", ""},
	}
	read := time.Date(2024, 11, 24, 17, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The layout a source of that server reads: Exim's main log,
			// Dovecot's log_path, else syslog; without and with a date.
			format := logline.Syslog
			switch {
			case tt.line[0] >= '0' && tt.line[0] <= '9':
				format = logline.Exim
			case strings.HasPrefix(tt.line, "auth: ") || strings.HasPrefix(tt.line, "imap-login: "):
				format = logline.Dovecot
			}
			for _, line := range []string{tt.line, "Nov 24 16:04:04 " + tt.line} {
				if format == logline.Exim && line != tt.line {
					continue // stamped already
				}
				l := logline.Decode(format, line, read)
				var hits []jails.Hit
				for _, h := range m.Match("", &l, nil) {
					if !h.Success { // successes are checked by the corpus test
						hits = append(hits, h)
					}
				}
				if tt.jail == "" {
					if len(hits) > 0 {
						t.Errorf("%q hit %s (%v), want no hit", line, hits[0].Jail.Name, hits[0].Addr)
					}
					continue
				}
				if len(hits) != 1 {
					var names []string
					for _, h := range hits {
						names = append(names, h.Jail.Name)
					}
					t.Fatalf("%q: %d hits %v, want one in %s", line, len(hits), names, tt.jail)
				}
				h := hits[0]
				if h.Jail.Name != tt.jail || h.Addr != netip.MustParseAddr(tt.addr) || h.User != tt.user {
					t.Errorf("%q: hit %s %v user %q, want %s %s user %q", line, h.Jail.Name, h.Addr, h.User, tt.jail, tt.addr, tt.user)
				}
			}
		})
	}
}

// TestReadmeHCL loads every ```hcl block of the README as a main file. A
// block may be a fragment that uses the shipped "mail" source, so an
// unknown source is the one error tolerated.
func TestReadmeHCL(t *testing.T) {
	f, err := os.Open("../../README.md")
	if os.IsNotExist(err) {
		t.Skip("no README.md yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks, start, err := hclBlocks(f)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		// The directory holds nothing else: includes match nothing, which
		// is only a warning.
		main := writeConfig(t, map[string]string{"smtpban.hcl": b})
		_, ds := Load(main)
		for _, d := range ds.Errs() {
			if d.Summary == "Unknown source" {
				continue
			}
			t.Errorf("README.md block starting at line %d: %s", start[i], strings.ReplaceAll(d.String(), main, "block"))
		}
	}
}

// hclBlocks returns the ```hcl blocks of a Markdown text and the line
// each starts on.
func hclBlocks(r io.Reader) (blocks []string, start []int, err error) {
	var cur *strings.Builder
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```hcl":
			cur = &strings.Builder{}
			start = append(start, n+1)
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks, start, sc.Err()
}

func TestHCLBlocks(t *testing.T) {
	md := "# x\n```sh\nls\n```\n```hcl\njail \"a\" {\n  source = \"mail\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n```\ntext\n```hcl\nbogus = 1\n```\n"
	blocks, start, err := hclBlocks(strings.NewReader(md))
	if err != nil || len(blocks) != 2 || !slices.Equal(start, []int{6, 14}) {
		t.Fatalf("hclBlocks = %q, %v, %v", blocks, start, err)
	}
	for i, wantErr := range []bool{false, true} {
		_, ds := Load(writeConfig(t, map[string]string{"smtpban.hcl": blocks[i]}))
		var errs int
		for _, d := range ds.Errs() {
			if d.Summary != "Unknown source" {
				errs++
			}
		}
		if (errs > 0) != wantErr {
			t.Errorf("block %d: errors %v, want errors: %v", i, ds, wantErr)
		}
	}
}

// BenchmarkLoadShipped loads configs/smtpban.hcl with its jails.d, as
// every smtpban and smtpband start does; the baseline in the same run is
// the HCL parse of the same files alone, which compiling no pattern costs.
func BenchmarkLoadShipped(b *testing.B) {
	files, err := filepath.Glob("../../configs/jails.d/*.hcl")
	if err != nil || len(files) == 0 {
		b.Fatalf("no shipped jails: %v", err)
	}
	files = append(files, shippedMain)
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, diags := Load(shippedMain)
			if diags.HasErrors() || len(c.Jails) == 0 {
				b.Fatalf("load: %v", diags)
			}
		}
	})
	b.Run("baseline-hcl-parse", func(b *testing.B) {
		srcs := make([][]byte, len(files))
		for i, f := range files {
			if srcs[i], err = os.ReadFile(f); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			for i, src := range srcs {
				if _, diags := hclsyntax.ParseConfig(src, files[i], hcl.InitialPos); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		}
	})
}
