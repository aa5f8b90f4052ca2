package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds smtpband and smtpban, built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smtpban-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// MkdirTemp makes it 0700: some tests run the binaries as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	args := []string{"build", "-o", dir}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "smtpban/cmd/smtpband", "smtpban/cmd/smtpban", "smtpban/bench/gen")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireRoot skips a test that needs root, except in CI where every test
// must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI runs as root: something is wrong with the CI machine")
	}
	t.Skip("needs root (network namespaces, nftables)")
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// daemon is a running smtpband child process.
type daemon struct {
	cmd    *exec.Cmd
	config string
	socket string
	logMu  sync.Mutex
	log    bytes.Buffer
	done   chan struct{}
}

// startDaemon runs smtpband on config, prefixed by wrap (e.g. ip netns exec),
// and waits until its socket answers. The daemon lives as long as t: start
// it with the parent test's t to outlive a subtest.
func startDaemon(t *testing.T, config, socket string, wrap ...string) *daemon {
	t.Helper()
	argv := append(append([]string{}, wrap...), filepath.Join(binDir, "smtpband"), "-config", config, "-log-level", "debug")
	d := &daemon{config: config, socket: socket, done: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start smtpband: %v", err)
	}
	pw.Close()
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.logMu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.logMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		d.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("smtpband log:\n%s", d.logs())
		}
	})
	waitFor(t, 20*time.Second, "smtpband to answer on its socket", func() bool {
		if d.exited() {
			t.Fatalf("smtpband exited early:\n%s", d.logs())
		}
		_, _, code := d.client("status", "-json")
		return code == 0
	})
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) logs() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

// kill signals the daemon's process group and waits for it.
func (d *daemon) kill(sig syscall.Signal) {
	if d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, sig)
	_ = d.cmd.Wait()
	<-d.done
}

// client runs smtpban against this daemon.
func (d *daemon) client(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-config", d.config, "-socket", d.socket}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "smtpban"), full...)
	// A race-built binary otherwise sleeps 1 s at exit.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	return runCmd(cmd)
}

// runCmd runs cmd and returns its output and exit code (-1 if it did not
// run or was killed).
func runCmd(cmd *exec.Cmd) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return o.String(), e.String(), code
}

// apiBan is the part of `smtpban bans -json` the tests read.
type apiBan struct {
	Prefix   string    `json:"prefix"`
	Jail     string    `json:"jail"`
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"`
	Count    int       `json:"count"`
}

func (d *daemon) bans(t *testing.T) []apiBan {
	t.Helper()
	var resp struct {
		Bans []apiBan `json:"bans"`
	}
	d.clientJSON(t, &resp, "bans")
	return resp.Bans
}

// clientJSON runs `smtpban ARGS -json`, fails the test unless it exits 0
// with JSON, and decodes that into v.
func (d *daemon) clientJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	args = append(args, "-json")
	out, errOut, code := d.client(args...)
	if code != 0 {
		t.Fatalf("smtpban %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("smtpban %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (d *daemon) banned(t *testing.T, prefix string) (apiBan, bool) {
	t.Helper()
	for _, b := range d.bans(t) {
		if b.Prefix == prefix {
			return b, true
		}
	}
	return apiBan{}, false
}

// appendLines appends lines to a log file, as a syslog daemon would.
func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// saslFailure is a real Postfix 3.7 SASL failure line for addr, stamped now.
func saslFailure(addr string) string {
	return fmt.Sprintf("%s mail postfix/submission/smtpd[4242]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=alice",
		time.Now().Format(time.Stamp), addr)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// appendConfig adds HCL to a config file.
func appendConfig(t *testing.T, path, hcl string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(hcl); err != nil {
		t.Fatal(err)
	}
}

// waitSourcesOpen waits until every source has found its file, so that
// lines appended afterwards are read (on first sight a file is read from
// its end).
func waitSourcesOpen(t *testing.T, d *daemon) {
	t.Helper()
	waitFor(t, 10*time.Second, "sources to open their files", func() bool {
		var st struct {
			Sources []struct {
				Position string `json:"position"`
			} `json:"sources"`
		}
		out, _, code := d.client("status", "-json")
		if code != 0 || jsonUnmarshal(out, &st) != nil || len(st.Sources) == 0 {
			return false
		}
		for _, s := range st.Sources {
			if s.Position == "" || strings.Contains(s.Position, "waiting") {
				return false
			}
		}
		return true
	})
}
