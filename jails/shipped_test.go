package jails

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"smtpban/internal/jailstest"
)

// shippedJails compiles every jail of configs/jails.d, enabled or not, as
// `smtpban replay` runs them (internal/config imports this package).
func shippedJails(tb testing.TB) []*Jail {
	tb.Helper()
	shipped, err := jailstest.Read(filepath.Join("..", "configs", "jails.d"))
	if err != nil {
		tb.Fatal(err)
	}
	programs := shippedPrograms(tb)
	var js []*Jail
	for _, sj := range shipped {
		j := testJail(tb, sj.Name, []string{"mail"}, sj.Failregex, sj.Ignoreregex)
		if j.Programs = programs[sj.Name]; len(j.Programs) == 0 {
			tb.Fatalf("jail %s: no programs", sj.Name)
		}
		for _, e := range sj.Successregex {
			p, err := CompileSuccessregex(e)
			if err != nil {
				tb.Fatalf("jail %s: successregex %q: %v", j.Name, e, err)
			}
			j.Successregex = append(j.Successregex, p)
		}
		js = append(js, j)
	}
	if len(js) < 10 {
		tb.Fatalf("only %d shipped jails found", len(js))
	}
	return js
}

// shippedPrograms reads each shipped jail's programs (jailstest does not
// read them).
func shippedPrograms(tb testing.TB) map[string][]string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "configs", "jails.d", "*.hcl"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no shipped jails: %v", err)
	}
	out := make(map[string][]string)
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			tb.Fatalf("parse %s: %v", name, diags)
		}
		for _, blk := range f.Body.(*hclsyntax.Body).Blocks {
			a, ok := blk.Body.Attributes["programs"]
			if blk.Type != "jail" || len(blk.Labels) == 0 || !ok {
				continue
			}
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				tb.Fatalf("%s: jail %s: programs: %v", name, blk.Labels[0], diags)
			}
			for it := v.ElementIterator(); it.Next(); {
				_, p := it.Element()
				out[blk.Labels[0]] = append(out[blk.Labels[0]], p.AsString())
			}
		}
	}
	return out
}

// normalLog returns n syslog lines of ordinary Postfix and Dovecot traffic
// with about 3% failures (SASL guessing, relay probes, Dovecot auth
// failures), from thousands of IPv4 and IPv6 addresses. It also returns
// how many lines are failures.
func normalLog(n int) ([]string, int) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func() string {
		if r.IntN(5) == 0 {
			return fmt.Sprintf("2001:db8:%x::%x", r.IntN(4096), r.IntN(65536))
		}
		return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(220), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	}
	const alnum = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
	qid := func() string {
		b := make([]byte, 12)
		for i := range b {
			b[i] = alnum[r.IntN(len(alnum))]
		}
		return string(b)
	}
	users := []string{"alice", "bob", "carol", "dave", "info", "sales", "postmaster"}
	user := func() string { return users[r.IntN(len(users))] }
	normal := []func(ts string) string{
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: connect from mail-%d.example.com[%s]", ts, 1000+r.IntN(9000), r.IntN(999), addr())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: %s: client=mail-%d.example.com[%s]", ts, 1000+r.IntN(9000), qid(), r.IntN(999), addr())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/cleanup[%d]: %s: message-id=<%s@mail.example.com>", ts, 1000+r.IntN(9000), qid(), qid())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/qmgr[812]: %s: from=<%s@example.org>, size=%d, nrcpt=1 (queue active)", ts, qid(), user(), 1000+r.IntN(90000))
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/smtp[%d]: %s: to=<%s@example.net>, relay=mx.example.net[%s]:25, delay=0.52, delays=0.01/0.01/0.3/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %s)", ts, 1000+r.IntN(9000), qid(), user(), addr(), qid())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/lmtp[%d]: %s: to=<%s@example.com>, relay=mx1.example.com[private/dovecot-lmtp], delay=0.1, delays=0.05/0/0/0.04, dsn=2.0.0, status=sent (250 2.0.0 <%s@example.com> Saved)", ts, 1000+r.IntN(9000), qid(), user(), user())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/qmgr[812]: %s: removed", ts, qid())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: disconnect from mail-%d.example.com[%s] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5", ts, 1000+r.IntN(9000), r.IntN(999), addr())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/postscreen[%d]: CONNECT from [%s]:%d to [192.0.2.1]:25", ts, 1000+r.IntN(9000), addr(), 1024+r.IntN(60000))
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/postscreen[%d]: PASS OLD [%s]:%d", ts, 1000+r.IntN(9000), addr(), 1024+r.IntN(60000))
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 dovecot: imap(%s)<%d><%s>: Logged out in=%d out=%d deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0", ts, user(), 1000+r.IntN(9000), qid(), r.IntN(9999), r.IntN(99999))
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 dovecot: lmtp(%s)<%d><%s>: msgid=<%s@mail.example.org>: saved mail to INBOX", ts, user(), 1000+r.IntN(9000), qid(), qid())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 dovecot: lmtp(%d): Connect from local", ts, 1000+r.IntN(9000))
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 dovecot: imap-login: Login: user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=%d, TLS, session=<%s>", ts, user(), addr(), 1000+r.IntN(9000), qid())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/submission/smtpd[%d]: %s: client=unknown[%s], sasl_method=PLAIN, sasl_username=%s@example.com", ts, 1000+r.IntN(9000), qid(), addr(), user())
		},
	}
	failure := []func(ts string) string{
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", ts, 1000+r.IntN(9000), addr())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <%s@example.org>: Relay access denied; from=<spam@example.biz> to=<%s@example.org> proto=ESMTP helo=<User>", ts, 1000+r.IntN(9000), addr(), user(), user())
		},
		func(ts string) string {
			return fmt.Sprintf("%s mx1 dovecot: imap-login: Disconnected: Connection closed (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.1, TLS, session=<%s>", ts, 1+r.IntN(3), r.IntN(30), user(), addr(), qid())
		},
	}
	out := make([]string, n)
	fails := 0
	for i := range out {
		ts := fmt.Sprintf("Nov 24 %02d:%02d:%02d", 10+i/3_600_000%10, i/60000%60, i/1000%60)
		if r.IntN(100) < 3 {
			out[i] = failure[r.IntN(len(failure))](ts)
			fails++
			continue
		}
		out[i] = normal[r.IntN(len(normal))](ts)
	}
	return out, fails
}

// TestShippedJailsNormalLog checks the generated log against the shipped
// jails: every failure line gives exactly one failure hit, no normal line
// gives one, and the prefilter changes nothing.
func TestShippedJailsNormalLog(t *testing.T) {
	js := shippedJails(t)
	lines, fails := normalLog(20_000)
	on, off := newMatcher(js, true), newMatcher(js, false)
	for _, line := range lines {
		sameMatch(t, on, off, line)
	}
	if got := on.Stats().Matched; got != uint64(fails) {
		t.Errorf("%d lines matched, want the %d failure lines", got, fails)
	}
	if on.Stats().Successes == 0 {
		t.Error("no success hit: the log lacks successful logins")
	}
}

// BenchmarkMatchShipped is `smtpban replay` with every shipped jail on a
// log of ordinary traffic with 3% failures; BenchmarkMatchShippedRegexOnly
// is its baseline in the same run, every regex on every line.
func BenchmarkMatchShipped(b *testing.B)          { benchShipped(b, true) }
func BenchmarkMatchShippedRegexOnly(b *testing.B) { benchShipped(b, false) }

func benchShipped(b *testing.B, prefilter bool) {
	js := shippedJails(b)
	texts, fails := normalLog(100_000)
	m := newMatcher(js, prefilter)
	read := time.Date(2024, 11, 25, 9, 0, 0, 0, time.UTC)
	lines := decodeAll(texts, read) // as a source hands them over
	dst := make([]Hit, 0, 8)
	n, failures := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		dst = m.Match("", &lines[n%len(lines)], dst[:0])
		for _, h := range dst {
			if !h.Success {
				failures++
			}
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	b.StopTimer()
	if passes := n / len(lines); passes > 0 && failures < passes*fails {
		b.Fatalf("%d failure hits over %d passes, want at least %d", failures, passes, passes*fails)
	}
}
