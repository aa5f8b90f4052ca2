package jails

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testJail compiles a jail from regex strings, failing tb on any error.
func testJail(tb testing.TB, name string, sources, fail, ignore []string) *Jail {
	tb.Helper()
	j := &Jail{Name: name, Enabled: true, Sources: sources, MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour}
	for _, e := range fail {
		p, err := CompileFailregex(e)
		if err != nil {
			tb.Fatalf("jail %s: failregex %q: %v", name, e, err)
		}
		j.Failregex = append(j.Failregex, p)
	}
	for _, e := range ignore {
		p, err := CompileIgnoreregex(e)
		if err != nil {
			tb.Fatalf("jail %s: ignoreregex %q: %v", name, e, err)
		}
		j.Ignoreregex = append(j.Ignoreregex, p)
	}
	return j
}

// mailJails are five jails like the shipped ones: Postfix SASL and relay,
// Dovecot, Exim, Sendmail.
func mailJails(tb testing.TB) []*Jail {
	tb.Helper()
	return []*Jail{
		testJail(tb, "postfix-sasl", []string{"mail", "postfix"}, []string{
			`postfix/(?:submission/|smtps/)?smtpd\[\d+\]: warning: [-._\w]+\[<HOST>\]: SASL [-\w]+ authentication failed(?:: [^,]*)?(?:, sasl_username=(?P<user>\S+))?`,
		}, []string{
			`sasl_username=monitor@example\.com`,
		}),
		testJail(tb, "postfix-relay", []string{"mail", "postfix"}, []string{
			`postfix/(?:submission/|smtps/)?smtpd\[\d+\]: NOQUEUE: reject: RCPT from [-._\w]+\[<HOST>\]: \d{3} \d\.7\.1 <[^>]*>: Relay access denied`,
		}, nil),
		testJail(tb, "dovecot", []string{"mail", "dovecot"}, []string{
			`dovecot: (?:imap|pop3|submission|managesieve)-login: (?:Disconnected|Aborted login)(?::| \().*auth failed, \d+ attempts.*: user=<(?P<user>[^>]*)>.*, rip=<HOST>, lip=`,
			`dovecot: auth(?:-worker)?(?:\(\d+\))?: (?:pam|passwd-file|sql|ldap)\((?P<user>[^,)]*),<HOST>(?:,<[^>]*>)?\): (?:unknown user|[Pp]assword mismatch|pam_authenticate\(\) failed)`,
		}, nil),
		testJail(tb, "exim", []string{"exim"}, []string{
			`\w+ authenticator failed for (?:\S+ )?\([^)]*\) \[<HOST>\](?::\d+)?: 535 Incorrect authentication data(?: \(set_id=(?P<user>[^)]+)\))?`,
			`H=(?:\S+ )?(?:\([^)]*\) )?\[<HOST>\](?::\d+)? .*rejected RCPT <[^>]*>: relay not permitted`,
		}, nil),
		testJail(tb, "sendmail", []string{"mail"}, []string{
			`sm-mta\[\d+\]: \w+: \[(?:IPv6:)?<HOST>\]: possible SMTP attack: command=AUTH`,
			`sm-mta\[\d+\]: \w+: AUTH failure \([^)]*\): .*, user=(?P<user>[^,]*), relay=(?:\S+ )?\[(?:IPv6:)?<HOST>\]`,
			`sm-mta\[\d+\]: \w+: ruleset=check_rcpt, arg1=<[^>]*>, relay=(?:\S+ )?\[(?:IPv6:)?<HOST>\](?: \(may be forged\))?, reject=550 5\.7\.1 .*Relaying denied`,
		}, nil),
	}
}

// readLines returns the lines of testdata/name.
func readLines(tb testing.TB, name string) []string {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read testdata/%s: %v", name, err)
	}
	return lines
}

// allTestLines returns every line of testdata/*.log.
func allTestLines(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.log"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no testdata/*.log: %v", err)
	}
	var lines []string
	for _, f := range files {
		lines = append(lines, readLines(tb, filepath.Base(f))...)
	}
	return lines
}
