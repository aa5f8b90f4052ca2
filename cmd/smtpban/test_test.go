package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const shippedConfig = "../../configs/smtpban.hcl"

// TestTestCommand runs `smtpban test` over the shipped config: the jail's
// verdict, the captured address and user, the deciding pattern, for a
// failure whose user name spells a fake address, a voided line, a line of
// another program, and the usage errors.
func TestTestCommand(t *testing.T) {
	pam := "Dec  2 01:22:35 mx1 auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=x rhost=192.0.2.12  user=root rhost=203.0.113.42 "
	r := cli(t, "-config", shippedConfig, "test", "-json", "dovecot-pam", pam)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got testResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if got.Program != "auth" || len(got.Jails) != 1 {
		t.Fatalf("got %+v", got)
	}
	j := got.Jails[0]
	if j.Jail != "dovecot-pam" || j.Enabled || !j.Reads || j.Verdict != "failure" || j.IP != "203.0.113.42" || j.User != "x rhost=192.0.2.12  user=root" || j.Pattern != "failregex 1" {
		t.Errorf("dovecot-pam: %+v", j)
	}

	// -line, every jail: the text names the voiding ignoreregex and
	// leaves out the jails that neither read the program nor match.
	lost := "Nov 24 16:04:09 mx1 postfix/smtpd[1]: warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: Connection lost to authentication server"
	r = cli(t, "-config", shippedConfig, "test", "-line", lost)
	for _, want := range []string{
		`program "postfix/smtpd"`,
		"postfix-sasl (on): a failregex matched, but ignoreregex 1 voids it: not counted",
		"failregex 1     matched: 203.0.113.10",
		"and no pattern matching: courier,",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("test -line output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\ndovecot (") {
		t.Errorf("a jail that does not read the program is listed:\n%s", r.stdout)
	}

	// One jail that does not read the line's program says so.
	r = cli(t, "-config", shippedConfig, "test", "dovecot", lost)
	if !strings.Contains(r.stdout, `dovecot (on): does not read program "postfix/smtpd"`) {
		t.Errorf("other program:\n%s", r.stdout)
	}

	// Exim's own log, by -format.
	exim := `2026-12-02 01:26:36 SMTP protocol error in "AUTH LOGIN "x" H=(y) [192.0.2.1] AUTH command used when not advertised" H=(ylmf-pc) [203.0.113.74] I=[198.51.100.1]:25 AUTH command used when not advertised`
	r = cli(t, "-config", shippedConfig, "test", "-format", "exim", "exim", exim)
	if !strings.Contains(r.stdout, "exim (off): failure of 203.0.113.74 (failregex 2)") {
		t.Errorf("exim:\n%s", r.stdout)
	}

	for _, bad := range [][]string{
		{"test"},
		{"test", "dovecot"},
		{"test", "-format", "nope", "dovecot", lost},
	} {
		if r := cli(t, append([]string{"-config", shippedConfig}, bad...)...); r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", bad, r.code, exitUsage, r.stderr)
		}
	}
	if r := cli(t, "-config", shippedConfig, "test", "nope", lost); r.code != exitError || !strings.Contains(r.stderr, `no jail named "nope"`) {
		t.Errorf("unknown jail: exit %d: %s", r.code, r.stderr)
	}
}

// TestShowCommand asks the fake daemon about a banned address, one with
// a failure and a bad argument.
func TestShowCommand(t *testing.T) {
	_, sock := daemon(t)
	r := cli(t, "-socket", sock, "show", "203.0.113.7")
	for _, want := range []string{
		"banned as 203.0.113.7/32 by postfix-sasl since 3m ago",
		`"warning: unknown[203.0.113.7]: SASL LOGIN authentication failed"`,
		"ban history",
		"no failures counted now",
	} {
		if r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("show banned: exit %d, lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	r = cli(t, "-socket", sock, "show", "-json", "198.51.100.4")
	var v struct {
		Bans     []any `json:"bans"`
		Failures []struct {
			Jail  string `json:"jail"`
			Count int    `json:"count"`
		} `json:"failures"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Bans == nil || len(v.Bans) != 0 || len(v.Failures) != 1 || v.Failures[0].Jail != "postfix-sasl" {
		t.Errorf("show -json: %v: %s", err, r.stdout)
	}
	if r := cli(t, "-socket", sock, "show", "nope"); r.code != exitUsage {
		t.Errorf("bad address: exit %d", r.code)
	}
}
