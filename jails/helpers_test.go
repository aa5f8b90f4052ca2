package jails

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"

	"smtpban/internal/logline"
)

// testJail compiles a jail from regex strings, failing tb on any error.
// It reads every program ("*"): tests about programs set Programs.
func testJail(tb testing.TB, name string, sources, fail, ignore []string) *Jail {
	tb.Helper()
	j := &Jail{Name: name, Enabled: true, Sources: sources, Programs: []string{"*"}, MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour}
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

// withPrograms sets j's programs.
func withPrograms(j *Jail, programs ...string) *Jail {
	j.Programs = programs
	return j
}

// eximStamp is the optional stamp (and pid) Exim writes at the start of its
// message when it logs to syslog.
const eximStamp = `(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[-+]\d{4} )?(?:\[\d+\] )?)?`

// mailJails are five jails like the shipped ones: Postfix SASL and relay,
// Dovecot, Exim, Sendmail. Each reads its server's programs, and its
// patterns start at the message, as the shipped ones do.
func mailJails(tb testing.TB) []*Jail {
	tb.Helper()
	return []*Jail{
		withPrograms(testJail(tb, "postfix-sasl", []string{"mail", "postfix"}, []string{
			`warning: [^\s\[]*\[<HOST>\]: SASL [-\w]+ authentication failed(?:: [^,]*)?(?:, sasl_username=(?P<user>\S+))?`,
		}, []string{
			`warning: [^\s\[]*\[[^\]]*\]: SASL [-\w]+ authentication failed: [^,]*, sasl_username=monitor@example\.com$`,
		}), "postfix*/*smtpd"),
		withPrograms(testJail(tb, "postfix-relay", []string{"mail", "postfix"}, []string{
			`NOQUEUE: reject: RCPT from [^\s\[]*\[<HOST>\]: \d{3} \d\.7\.1 <[^>]*>: Relay access denied`,
		}, nil), "postfix*/*smtpd"),
		withPrograms(testJail(tb, "dovecot", []string{"mail", "dovecot"}, []string{
			`(?:imap|pop3|submission|managesieve)-login: (?:Info: )?(?:Disconnected|Aborted login)(?::| \().*auth failed, \d+ attempts.*: user=<(?P<user>[^>]*)>.*, rip=<HOST>, lip=`,
			`auth(?:-worker)?(?:\(\d+\))?: (?:Info: )?(?:pam|passwd-file|sql|ldap)\((?P<user>[^,)]*),<HOST>(?:,<[^>]*>)?\): (?:unknown user|[Pp]assword mismatch|pam_authenticate\(\) failed)`,
		}, nil), "dovecot"),
		withPrograms(testJail(tb, "exim", []string{"exim"}, []string{
			eximStamp + `\w+ authenticator failed for (?:\S+ )?\([^)]*\) \[<HOST>\](?::\d+)?: 535 Incorrect authentication data(?: \(set_id=(?P<user>[^)]+)\))?`,
			eximStamp + `H=(?:\S+ )?(?:\([^)]*\) )?\[<HOST>\](?::\d+)? .*rejected RCPT <[^>]*>: relay not permitted`,
		}, nil), "exim", "exim4"),
		withPrograms(testJail(tb, "sendmail", []string{"mail"}, []string{
			`\w+: \[(?:IPv6:)?<HOST>\]: possible SMTP attack: command=AUTH`,
			`\w+: AUTH failure \([^)]*\): .*, user=(?P<user>[^,]*), relay=(?:\S+ )?\[(?:IPv6:)?<HOST>\]`,
			`\w+: ruleset=check_rcpt, arg1=<[^>]*>, relay=(?:\S+ )?\[(?:IPv6:)?<HOST>\](?: \(may be forged\))?, reject=550 5\.7\.1 .*Relaying denied`,
		}, nil), "sm-mta"),
	}
}

// decode decodes text as the test logs are written: a syslog line, or,
// when it has no syslog tag but starts with Exim's stamp, a line of Exim's
// main log (testdata/exim.log holds both). The text is cleaned first, as
// the daemon's sources and replay do. Dovecot's log_path layout, whose
// "auth: Info: ..." reads as a syslog tag, is decoded by the tests that use
// it, with logline.Dovecot.
func decode(text string, read time.Time) logline.Line {
	text = logline.Clean(text)
	l := logline.Decode(logline.Syslog, text, read)
	if l.Program == "" && len(l.Stamp) >= 19 && l.Stamp[10] == ' ' {
		l = logline.Decode(logline.Exim, text, read)
	}
	return l
}

// match decodes text (see decode) and runs it through m.
func match(m *Matcher, source, text string, read time.Time, dst []Hit) []Hit {
	l := decode(text, read)
	return m.Match(source, &l, dst)
}

// decodeAll decodes lines (see decode), for benchmarks to do before
// their timed loop.
func decodeAll(lines []string, read time.Time) []logline.Line {
	out := make([]logline.Line, len(lines))
	for i, s := range lines {
		out[i] = decode(s, read)
	}
	return out
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
