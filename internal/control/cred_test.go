package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"smtpban/internal/control"
	"smtpban/internal/control/controltest"
)

// skipOrFail skips, except in CI where everything must run.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to run a client as another uid and chown the socket")
	}
}

func requireGroup(t *testing.T, name string) uint32 {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		skipOrFail(t, "needs group "+name+": "+err.Error())
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(id)
}

// helperResult is what the helper process reports on stdout.
type helperResult struct {
	Err        string `json:"err"`
	Permission bool   `json:"permission"`
}

const helperEnv = "SMTPBAN_CONTROL_HELPER"

// TestHelperProcess is not a test: it is the client run as another user by
// TestCredentials. It does one call ("status" or "ban") on the socket in
// $SMTPBAN_CONTROL_HELPER.
func TestHelperProcess(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		return // a normal run: nothing to do
	}
	op, sock, _ := strings.Cut(arg, ":")
	if op == "serve" {
		serveHelper(sock)
	}
	c := control.NewClient(sock)
	var err error
	switch op {
	case "status":
		_, err = c.Status(t.Context(), "")
	case "ban":
		_, err = c.Ban(t.Context(), netip.MustParsePrefix("192.0.2.1/32"), "", 0)
	}
	var r helperResult
	if err != nil {
		r = helperResult{Err: err.Error(), Permission: errors.Is(err, control.ErrPermission)}
	}
	json.NewEncoder(os.Stdout).Encode(r)
	os.Exit(0)
}

// TestCredentials runs the client as nobody (uid 65534) against a server
// run as root: reads are open to whoever can connect; changes need root
// or the socket's group, checked with SO_PEERCRED and SO_PEERGROUPS.
func TestCredentials(t *testing.T) {
	requireRoot(t)
	adm := requireGroup(t, "adm")
	if _, err := user.LookupId("65534"); err != nil {
		skipOrFail(t, "needs user nobody (65534)")
	}
	// nobody must reach the socket and the test binary: a world-readable
	// directory of our own, since t.TempDir's is 0700.
	dir, err := os.MkdirTemp("", "ctlcred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copyExecutable(t, dir)

	tests := []struct {
		name   string
		group  string   // server's Group
		chmod  bool     // make the socket 0666 so nobody connects without the group
		groups []uint32 // nobody's supplementary groups
		op     string
		errHas string // "" = success
		perm   bool   // the error is ErrPermission
	}{
		{"read without group", "", true, nil, "status", "", false},
		{"change without group", "", true, nil, "ban", "permission denied: run as root", true},
		{"change not in group", "adm", true, nil, "ban", "permission denied: run as root or as a member of group adm", true},
		{"change as supplementary member", "adm", false, []uint32{adm}, "ban", "", false},
		{"read as supplementary member", "adm", false, []uint32{adm}, "status", "", false},
		{"connect refused by socket mode", "adm", false, nil, "status", "permission denied: cannot connect to", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			sock := controltest.Serve(t, f, control.ServerOptions{Path: filepath.Join(dir, strconv.Itoa(i)+".sock"), Group: tc.group})
			if tc.chmod {
				if err := os.Chmod(sock, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestHelperProcess$")
			// The race runtime sleeps a second at exit unless told not to.
			cmd.Env = append(os.Environ(), helperEnv+"="+tc.op+":"+sock, "GORACE=atexit_sleep_ms=0")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: tc.groups}}
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v: %s", err, out)
			}
			var r helperResult
			if err := json.Unmarshal(lastLine(out), &r); err != nil {
				t.Fatalf("helper output %q: %v", out, err)
			}
			switch {
			case tc.errHas == "" && r.Err != "":
				t.Errorf("error %q, want success", r.Err)
			case tc.errHas != "" && !strings.Contains(r.Err, tc.errHas):
				t.Errorf("error %q, want it to contain %q", r.Err, tc.errHas)
			case r.Permission != tc.perm:
				t.Errorf("errors.Is(err, ErrPermission) = %v, want %v", r.Permission, tc.perm)
			}
			banned := false
			for _, c := range f.Calls() {
				banned = banned || c == "Ban"
			}
			if wantBan := tc.op == "ban" && tc.errHas == ""; banned != wantBan {
				t.Errorf("daemon's Ban called: %v, want %v", banned, wantBan)
			}
		})
	}
	t.Run("change as root", func(t *testing.T) {
		sock := controltest.Serve(t, newFake(), control.ServerOptions{Path: filepath.Join(dir, "root.sock")})
		if _, err := control.NewClient(sock).Ban(t.Context(), netip.MustParsePrefix("192.0.2.1/32"), "", 0); err != nil {
			t.Errorf("ban as root: %v", err)
		}
	})
}

// serveResult is what the serving helper reports when its stdin closes.
type serveResult struct {
	Calls []string `json:"calls"`
}

// helperGroupEnv is the socket group of the serving helper's server.
const helperGroupEnv = "SMTPBAN_CONTROL_GROUP"

// serveHelper is the server run as another user: it says "ready" once the
// socket at sock listens (or "error: ..."), serves until stdin closes,
// then reports the daemon calls made.
func serveHelper(sock string) {
	f := newFake()
	srv := control.NewServer(f, control.ServerOptions{Path: sock, Group: os.Getenv(helperGroupEnv)})
	if err := srv.Listen(); err != nil {
		fmt.Println("error:", err)
		os.Exit(0)
	}
	go srv.Serve(context.Background())
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	json.NewEncoder(os.Stdout).Encode(serveResult{Calls: f.Calls()})
	os.Exit(0)
}

// serverAs runs the server as cred in a helper process, its socket at
// sock with group as socket group. It returns the helper's first line
// ("ready" or "error: ...") and a function that stops it and returns the
// daemon's Ban calls.
func serverAs(t *testing.T, bin, sock, group string, cred *syscall.Credential) (string, func() int) {
	t.Helper()
	srv := exec.Command(bin, "-test.run=^TestHelperProcess$")
	srv.Env = append(os.Environ(), helperEnv+"=serve:"+sock, helperGroupEnv+"="+group, "GORACE=atexit_sleep_ms=0")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	srv.Stderr = os.Stderr
	stdin, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
	})
	out := bufio.NewReader(stdout)
	var first string
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("server as uid %d said nothing: %v", cred.Uid, err)
		}
		if line == "ready\n" || strings.HasPrefix(line, "error:") {
			first = strings.TrimSpace(line)
			break
		}
	}
	return first, func() int {
		stdin.Close()
		rest, err := io.ReadAll(out)
		if err != nil {
			t.Fatal(err)
		}
		var r serveResult
		if err := json.Unmarshal(lastLine(rest), &r); err != nil {
			t.Fatalf("server output %q: %v", rest, err)
		}
		bans := 0
		for _, c := range r.Calls {
			if c == "Ban" {
				bans++
			}
		}
		return bans
	}
}

// clientAs runs one client call (op "status" or "ban") as cred.
func clientAs(t *testing.T, bin, sock, op string, cred *syscall.Credential) helperResult {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+op+":"+sock, "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var r helperResult
	if err := json.Unmarshal(lastLine(out), &r); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return r
}

const nobody, otherUID = 65534, 65533 // otherUID: any uid but root's and the daemon's

// nobodyRun makes a directory nobody may reach, holding a copy of this
// test binary and, like /run/smtpban under RuntimeDirectory=, a directory
// nobody owns for the socket.
func nobodyRun(t *testing.T) (bin, run string) {
	t.Helper()
	if _, err := user.LookupId(strconv.Itoa(nobody)); err != nil {
		skipOrFail(t, "needs user nobody (65534)")
	}
	dir, err := os.MkdirTemp("", "ctlcred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = copyExecutable(t, dir)
	run = filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(run, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return bin, run
}

// TestCredentialsDaemonNotRoot runs the server as nobody, as the unit runs
// smtpband as smtpban: root and the daemon's own uid may make changes,
// another uid may not connect (socket 0600, owned by nobody), nor change
// anything when the socket is opened to it.
func TestCredentialsDaemonNotRoot(t *testing.T) {
	requireRoot(t)
	bin, run := nobodyRun(t)
	sock := filepath.Join(run, "s.sock")
	first, stop := serverAs(t, bin, sock, "", &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}})
	if first != "ready" {
		t.Fatalf("server as nobody: %s", first)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || st.Uid != nobody {
		t.Errorf("socket %v owned by uid %d, want 0600 and uid %d", fi.Mode(), st.Uid, nobody)
	}

	wantBans := 0
	t.Run("root changes", func(t *testing.T) {
		// Root connects to a socket it does not own: CAP_DAC_OVERRIDE.
		if _, err := control.NewClient(sock).Ban(t.Context(), netip.MustParsePrefix("192.0.2.1/32"), "", 0); err != nil {
			t.Errorf("ban as root: %v", err)
		}
		wantBans++
	})
	tests := []struct {
		name   string
		uid    uint32
		chmod  bool // open the socket to everyone, to reach the server's own check
		op     string
		errHas string // "" = success
	}{
		{"daemon's own uid changes", nobody, false, "ban", ""},
		{"other uid cannot connect", otherUID, false, "status", "permission denied: cannot connect to"},
		{"other uid reads an open socket", otherUID, true, "status", ""},
		{"other uid may not change", otherUID, true, "ban", "permission denied: run as root or as user nobody"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode := os.FileMode(0o600)
			if tc.chmod {
				mode = 0o666
			}
			if err := os.Chmod(sock, mode); err != nil {
				t.Fatal(err)
			}
			r := clientAs(t, bin, sock, tc.op, &syscall.Credential{Uid: tc.uid, Gid: tc.uid, Groups: []uint32{}})
			switch {
			case tc.errHas == "" && r.Err != "":
				t.Errorf("error %q, want success", r.Err)
			case tc.errHas != "" && !strings.Contains(r.Err, tc.errHas):
				t.Errorf("error %q, want it to contain %q", r.Err, tc.errHas)
			case tc.errHas != "" && !r.Permission:
				t.Errorf("error %q is not ErrPermission", r.Err)
			}
			if tc.op == "ban" && tc.errHas == "" {
				wantBans++
			}
		})
	}
	if bans := stop(); bans != wantBans {
		t.Errorf("daemon's Ban called %d times, want %d", bans, wantBans)
	}
}

// TestSocketGroupDaemonNotRoot: a daemon not run as root gives its socket
// to socket_group when it is a member (no CAP_CHOWN needed), and says why
// it cannot when it is not.
func TestSocketGroupDaemonNotRoot(t *testing.T) {
	requireRoot(t)
	adm := requireGroup(t, "adm")
	mail := requireGroup(t, "mail")
	bin, run := nobodyRun(t)

	t.Run("daemon in the group", func(t *testing.T) {
		sock := filepath.Join(run, "adm.sock")
		first, stop := serverAs(t, bin, sock, "adm", &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{adm}})
		if first != "ready" {
			t.Fatalf("server as nobody in adm: %s", first)
		}
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Uid != nobody || st.Gid != adm {
			t.Errorf("socket %v %d:%d, want 0660 %d:%d", fi.Mode(), st.Uid, st.Gid, nobody, adm)
		}
		if r := clientAs(t, bin, sock, "ban", &syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{adm}}); r.Err != "" {
			t.Errorf("ban as a member of adm: %s", r.Err)
		}
		if r := clientAs(t, bin, sock, "status", &syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{}}); !strings.Contains(r.Err, "permission denied: cannot connect to") {
			t.Errorf("status as a non-member: %q, want permission denied", r.Err)
		}
		if bans := stop(); bans != 1 {
			t.Errorf("daemon's Ban called %d times, want 1", bans)
		}
	})
	t.Run("daemon not in the group", func(t *testing.T) {
		sock := filepath.Join(run, "mail.sock")
		first, _ := serverAs(t, bin, sock, "mail", &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}})
		want := fmt.Sprintf("must be a member of gid %d", mail)
		if !strings.HasPrefix(first, "error:") || !strings.Contains(first, want) {
			t.Errorf("server as nobody, socket_group mail: %q, want an error saying %q", first, want)
		}
	})
}

func copyExecutable(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "control.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// lastLine skips what the test framework prints around the helper's JSON.
func lastLine(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return []byte(lines[i])
		}
	}
	return nil
}
