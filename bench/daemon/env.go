package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
)

// env is one run: a temporary directory with a config and log file, a
// network namespace, and the daemon once started.
type env struct {
	o       options
	dir     string
	logPath string
	config  string
	socket  string
	ns      string
	cmd     *exec.Cmd
	ready   chan time.Time // READY=1 over NOTIFY_SOCKET
	notify  *net.UnixConn
	bansMu  sync.Mutex
	banAt   map[string]time.Time // prefix -> time of the daemon's "ban" log line
	msgAt   map[string]time.Time // first time each log message was seen
	took    map[string]int64     // a message's "took" attribute (ns), if any
	logTail []string
	lastGC  string // the last gctrace line, with options.gctrace
}

// runningEnv is newEnv with the daemon started and caught up with its log;
// the caller closes it.
func runningEnv(ctx context.Context, o options) (*env, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	if _, err := e.start(); err != nil {
		e.close()
		return nil, err
	}
	if err := e.sync(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func newEnv(o options) (*env, error) {
	dir, err := os.MkdirTemp("", "smtpban-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	e := &env{o: o, dir: dir, logPath: filepath.Join(dir, "mail.log"), socket: filepath.Join(dir, "smtpband.sock"),
		// The directory's name is unique: several runs may be up at once (burst).
		config: filepath.Join(dir, "smtpban.hcl"), ns: filepath.Base(dir), banAt: map[string]time.Time{}, msgAt: map[string]time.Time{}, took: map[string]int64{}}
	if err := exec.Command("cp", "-r", o.jails, filepath.Join(dir, "jails.d")).Run(); err != nil {
		e.close()
		return nil, fmt.Errorf("copy jails: %w", err)
	}
	if o.saslRetry > 0 {
		if err := setSASLRetry(filepath.Join(dir, "jails.d", "postfix.hcl"), o.saslRetry); err != nil {
			e.close()
			return nil, err
		}
	}
	cfg := fmt.Sprintf(`state_dir = %q
socket    = %q
include   = ["jails.d/*.hcl"]
source "file" "mail" { path = %q }
firewall "nftables" {
  table = "smtpban"
  ports = [25, 465, 587, 110, 143, 993, 995, 4190]
}
`, filepath.Join(dir, "state"), e.socket, e.logPath)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		e.close()
		return nil, fmt.Errorf("write config: %w", err)
	}
	if err := os.WriteFile(e.logPath, []byte(time.Now().Format(time.Stamp)+" mx1 postfix/master[1]: daemon started\n"), 0o644); err != nil {
		e.close()
		return nil, fmt.Errorf("write log: %w", err)
	}
	if out, err := exec.Command("ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "exec", e.ns, "ip", "link", "set", "lo", "up").Run()
	return e, nil
}

// setSASLRetry rewrites postfix-sasl's maxretry in the run's copy of
// postfix.hcl.
func setSASLRetry(path string, n int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.Index(s, `jail "postfix-sasl" {`)
	if i < 0 {
		return fmt.Errorf("%s: no postfix-sasl jail", path)
	}
	m := regexp.MustCompile(`(?m)^(\s*maxretry\s*=\s*)\d+`).FindStringSubmatchIndex(s[i:])
	if m == nil {
		return fmt.Errorf("%s: postfix-sasl has no maxretry", path)
	}
	s = s[:i+m[3]] + strconv.Itoa(n) + s[i+m[1]:]
	return os.WriteFile(path, []byte(s), 0o644)
}

// start runs smtpband in the namespace and returns when READY=1 arrives.
func (e *env) start() (time.Duration, error) {
	nsock := filepath.Join(e.dir, "notify.sock")
	_ = os.Remove(nsock)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		return 0, fmt.Errorf("notify socket: %w", err)
	}
	e.notify = c
	e.ready = make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				e.ready <- time.Now()
				return
			}
		}
	}()
	e.cmd = exec.Command("ip", "netns", "exec", e.ns, filepath.Join(e.o.bin, "smtpband"), "-config", e.config, "-log-format", "json")
	e.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+nsock)
	if e.o.gctrace {
		// The Go heap can only be seen from outside through the runtime's
		// own trace: one line per GC on stderr.
		e.cmd.Env = append(e.cmd.Env, "GODEBUG=gctrace=1")
	}
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := e.cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := e.cmd.Start(); err != nil {
		return 0, fmt.Errorf("start smtpband: %w", err)
	}
	go e.readLog(stderr)
	select {
	case t := <-e.ready:
		return t.Sub(start), nil
	case <-time.After(60 * time.Second):
		return 0, fmt.Errorf("smtpband not ready after 60s; log tail:\n%s", strings.Join(e.tail(), "\n"))
	}
}

// readLog keeps the time of each "ban" line (the daemon logs it after the
// firewall call returned) and the last lines for error reports.
func (e *env) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		now := time.Now()
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
			Took int64  `json:"took"`
		}
		_ = json.Unmarshal(sc.Bytes(), &l)
		e.bansMu.Lock()
		if strings.HasPrefix(sc.Text(), "gc ") {
			e.lastGC = sc.Text()
		}
		if l.Msg == "ban" {
			e.banAt[l.Addr] = now
		}
		if _, ok := e.msgAt[l.Msg]; !ok && l.Msg != "" {
			e.msgAt[l.Msg] = now
			e.took[l.Msg] = l.Took
		}
		e.logTail = append(e.logTail, sc.Text())
		if len(e.logTail) > 20 {
			e.logTail = e.logTail[1:]
		}
		e.bansMu.Unlock()
	}
}

func (e *env) tail() []string {
	e.bansMu.Lock()
	defer e.bansMu.Unlock()
	return append([]string(nil), e.logTail...)
}

func (e *env) banTime(prefix string) (time.Time, bool) {
	e.bansMu.Lock()
	defer e.bansMu.Unlock()
	t, ok := e.banAt[prefix]
	return t, ok
}

func (e *env) pid() int { return e.cmd.Process.Pid }

func (e *env) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if e.notify != nil {
		e.notify.Close()
	}
	e.cmd = nil
}

func (e *env) close() {
	e.stop()
	if e.ns != "" {
		_ = exec.Command("ip", "netns", "del", e.ns).Run()
	}
	os.RemoveAll(e.dir)
}

// appendLines appends whole lines to the log in one write.
func (e *env) appendLines(lines ...string) error {
	f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	return err
}

// sourceRead is the daemon's count of lines read from the file source.
func (e *env) sourceRead(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(e.o.bin, "smtpban"), "-config", e.config, "-socket", e.socket, "status", "-json").Output()
	if err != nil {
		return 0, fmt.Errorf("smtpban status: %w", err)
	}
	var st struct {
		Sources []struct {
			Read int `json:"read"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(out, &st); err != nil || len(st.Sources) == 0 {
		return 0, fmt.Errorf("smtpban status: %v: %s", err, out)
	}
	return st.Sources[0].Read, nil
}

// waitRead waits until the daemon has read n lines.
func (e *env) waitRead(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got, err := e.sourceRead(ctx)
		if err == nil && got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon read %d of %d lines after %s (err %v)", got, n, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nft is a netlink connection into the namespace, for polling the set
// without starting an nft process per poll.
func (e *env) nft() (*nftables.Conn, error) {
	f, err := os.Open("/run/netns/" + e.ns)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

// setElements returns the elements of one of smtpban's sets (as keys).
func setElements(c *nftables.Conn, set string) (map[string]bool, error) {
	s, err := c.GetSetByName(&nftables.Table{Name: "smtpban", Family: nftables.TableFamilyINet}, set)
	if err != nil {
		return nil, err
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(els))
	for _, el := range els {
		if el.IntervalEnd {
			continue
		}
		m[string(el.Key)] = true
	}
	return m, nil
}

// procStat returns utime+stime in clock ticks and VmRSS/VmHWM in bytes.
func procCPU(pid int) (ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, nil
}

func procMem(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			kb, err := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func saslLine(t time.Time, addr string) string {
	return t.Format(time.Stamp) + " mx1 postfix/submission/smtpd[4242]: warning: unknown[" + addr + "]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
}

// logged returns when the daemon first logged msg, and its "took" attribute.
func (e *env) logged(msg string) (time.Time, time.Duration, bool) {
	e.bansMu.Lock()
	defer e.bansMu.Unlock()
	t, ok := e.msgAt[msg]
	return t, time.Duration(e.took[msg]), ok
}

// sync returns once the file source is reading: a line appended now is
// read. Lines appended before the source opened its file may be skipped.
func (e *env) sync(ctx context.Context) error {
	for range 20 {
		r, err := e.sourceRead(ctx)
		if err == nil {
			if err := e.appendLines(time.Now().Format(time.Stamp) + " mx1 postfix/qmgr[1111]: 4Y1ZQm1Xyz: removed"); err != nil {
				return err
			}
			if e.waitRead(ctx, r+1, time.Second) == nil {
				return nil
			}
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Errorf("the file source never read an appended line")
}
