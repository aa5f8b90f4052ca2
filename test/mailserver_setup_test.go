package test

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// mailServer is a real Postfix and Dovecot, running in a network namespace
// with everything (config, queue, logs, mailboxes, sockets) under one temp
// dir.
type mailServer struct {
	dir        string
	postfixEtc string // Postfix's config_directory
	maillog    string // Postfix's maillog_file, written by postlogd
	dovecotLog string
	mailbox    string // alice@example.test's mbox file
}

// The one mailbox user, and the password Dovecot checks SMTP AUTH against.
const (
	mailUser     = "alice"
	mailPassword = "correct-horse-battery"
)

// requireMailServer skips without Postfix, Dovecot and swaks, except in CI,
// where .ci/run installs them.
func requireMailServer(t *testing.T) {
	t.Helper()
	var missing []string
	for _, bin := range []string{"postfix", "postconf", "dovecot", "swaks"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := user.Lookup("postfix"); err != nil {
		missing = append(missing, "user postfix")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing %s; .ci/run installs postfix, dovecot-core and swaks", strings.Join(missing, ", "))
	}
	t.Skipf("missing %s (apt-get install postfix dovecot-core swaks)", strings.Join(missing, ", "))
}

// startMailServer starts Dovecot (auth only) and Postfix in ns, Postfix
// listening on listen, and stops both when t ends, even if t fails.
func startMailServer(t *testing.T, ns *netns, listen []string) *mailServer {
	t.Helper()
	dir := t.TempDir()
	// Postfix and Dovecot drop root before they open the auth socket or
	// write a mailbox; they must get through the temp dir's parents.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	m := &mailServer{
		dir:        dir,
		postfixEtc: filepath.Join(dir, "postfix", "etc"),
		maillog:    filepath.Join(dir, "postfix", "maillog"),
		dovecotLog: filepath.Join(dir, "dovecot", "dovecot.log"),
		mailbox:    filepath.Join(dir, "mailboxes", mailUser),
	}
	for _, d := range []string{"postfix/etc", "postfix/queue", "postfix/data", "dovecot/run", "dovecot/state", "mailboxes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix wants its data directory, and virtual (running as the
	// mailbox's uid) the mailbox directory, owned by postfix.
	for _, d := range []string{"postfix/data", "mailboxes"} {
		if err := os.Chown(filepath.Join(dir, d), mustAtoi(t, pf.Uid), mustAtoi(t, pf.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	fields := map[string]string{
		"Dir":        dir,
		"Maillog":    m.maillog,
		"DovecotLog": m.dovecotLog,
		"Listen":     strings.Join(listen, ", "),
		"AuthSocket": filepath.Join(dir, "dovecot", "run", "auth-postfix"),
		"UID":        pf.Uid,
		"GID":        pf.Gid,
	}
	dovecotConf := filepath.Join(dir, "dovecot", "dovecot.conf")
	render(t, "mailserver/dovecot.conf", dovecotConf, fields)
	render(t, "mailserver/main.cf", filepath.Join(m.postfixEtc, "main.cf"), fields)
	render(t, "mailserver/master.cf", filepath.Join(m.postfixEtc, "master.cf"), fields)
	writeText(t, filepath.Join(dir, "dovecot", "users"), mailUser+":{PLAIN}"+mailPassword+"\n")
	// Postfix waits for a config file written within the last second or
	// two to settle before it starts: date them back.
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"postfix/etc/main.cf", "postfix/etc/master.cf", "dovecot/dovecot.conf", "dovecot/users"} {
		if err := os.Chtimes(filepath.Join(dir, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Postfix log:\n%s", readOr(m.maillog))
			t.Logf("Dovecot log:\n%s", readOr(m.dovecotLog))
		}
	})

	m.startDovecot(t, ns, dovecotConf, fields["AuthSocket"])
	m.startPostfix(t, ns)
	return m
}

// startDovecot runs Dovecot in the foreground, its output to a file: a
// pipe would stay open as long as any of its children lives.
func (m *mailServer) startDovecot(t *testing.T, ns *netns, conf, authSocket string) {
	t.Helper()
	out := createOut(t, filepath.Join(m.dir, "dovecot", "dovecot.out"))
	cmd := exec.Command("ip", "netns", "exec", ns.name, "dovecot", "-c", conf, "-F")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Dovecot's master stops its children on SIGTERM.
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("dovecot output:\n%s", readOr(out.Name()))
		}
	})
	waitFor(t, 10*time.Second, "Dovecot's auth socket", func() bool {
		select {
		case <-done:
			t.Fatalf("dovecot exited: %s\n%s", cmd.ProcessState, readOr(out.Name()))
		default:
		}
		_, err := os.Stat(authSocket)
		return err == nil
	})
}

// startPostfix runs `postfix start`, whose master daemonizes; the cleanup
// stops it with `postfix stop` (the namespace's cleanup then kills anything
// left).
func (m *mailServer) startPostfix(t *testing.T, ns *netns) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns.name, "postfix", "-c", m.postfixEtc, "stop").CombinedOutput(); err != nil {
			t.Logf("postfix stop: %v\n%s", err, out)
		}
	})
	// Output to a file: the daemonized master inherits it.
	out := createOut(t, filepath.Join(m.dir, "postfix", "start.out"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.name, "postfix", "-c", m.postfixEtc, "start")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, readOr(out.Name()), readOr(m.maillog))
	}
	waitFor(t, 10*time.Second, "Postfix's master to start", func() bool {
		return strings.Contains(readOr(m.maillog), "postfix/master")
	})
}

// swaks runs swaks in ns with a 3 s timeout per step, and returns its
// transcript; its exit status is in the transcript's last lines.
func swaks(ns *netns, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"netns", "exec", ns.name, "swaks", "--timeout", "3"}, args...)
	out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
	if err != nil {
		out = append(out, "\n[swaks: "+err.Error()+"]\n"...)
	}
	return string(out)
}

// render fills the template testdata/name with fields into path.
func render(t *testing.T, name, path string, fields map[string]string) {
	t.Helper()
	tmpl, err := template.New(filepath.Base(name)).Option("missingkey=error").ParseFiles(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, fields); err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	writeText(t, path, b.String())
}

func createOut(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func writeText(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readOr returns a file's content, or why it could not be read.
func readOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
