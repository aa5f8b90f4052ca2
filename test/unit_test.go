package test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const unitPath = "../configs/smtpband.service"

// unitFile is a systemd unit's [Service] settings: each key's values in
// order, list values split on spaces, an empty assignment resetting the
// list as systemd does.
type unitFile map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "["):
			section = line
			continue
		}
		if section != "[Service]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a setting: %q", path, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			u[k] = nil
			continue
		}
		u[k] = append(u[k], strings.Fields(v)...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns a single-valued setting.
func (u unitFile) one(t *testing.T, k string) string {
	t.Helper()
	if len(u[k]) != 1 {
		t.Errorf("%s=%q, want one value", k, u[k])
		return ""
	}
	return u[k][0]
}

// TestUnitFile checks that the shipped unit runs smtpband as a system user
// with CAP_NET_ADMIN alone, unable to read the shadow files, that the
// package's postinst creates that user, and that systemd rates
// the unit 2.5 or lower.
func TestUnitFile(t *testing.T) {
	u := parseUnit(t, unitPath)

	usr := u.one(t, "User")
	if usr == "" || usr == "root" || usr == "0" {
		t.Errorf("User=%q: smtpband must not run as root", usr)
	}
	if g := u.one(t, "Group"); g == "root" || g == "0" || g == "shadow" {
		t.Errorf("Group=%q", g)
	}
	if dyn := u["DynamicUser"]; len(dyn) > 0 && dyn[len(dyn)-1] != "no" {
		t.Errorf("DynamicUser=%v: the state and the socket's owner must persist across starts", dyn)
	}
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if !slices.Equal(u[k], []string{"CAP_NET_ADMIN"}) {
			t.Errorf("%s=%q, want exactly CAP_NET_ADMIN", k, u[k])
		}
	}
	if v := u.one(t, "NoNewPrivileges"); v != "yes" {
		t.Errorf("NoNewPrivileges=%q, want yes", v)
	}
	groups := u["SupplementaryGroups"]
	for _, g := range []string{"adm", "systemd-journal"} {
		if !slices.Contains(groups, g) {
			t.Errorf("SupplementaryGroups=%q lacks %s: the logs could not be read", groups, g)
		}
	}
	if slices.Contains(groups, "shadow") {
		t.Errorf("SupplementaryGroups=%q holds shadow", groups)
	}
	var hidden []string
	for _, p := range u["InaccessiblePaths"] {
		hidden = append(hidden, strings.TrimLeft(p, "-+"))
	}
	for _, p := range []string{"/etc/shadow", "/etc/gshadow"} {
		if !slices.Contains(hidden, p) {
			t.Errorf("InaccessiblePaths=%q does not cover %s", u["InaccessiblePaths"], p)
		}
	}

	// The package's postinst creates the user the unit names (the
	// package test in packaging/ checks it does, in a scratch root).
	postinst, err := os.ReadFile("../packaging/deb/postinst")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`adduser --system [^\n]*(\\\n[^\n]*)* ` + regexp.QuoteMeta(usr) + `\n`).Match(postinst) {
		t.Errorf("packaging/deb/postinst does not adduser --system ... %s", usr)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is needed to score the unit; .ci/run installs systemd")
		}
		t.Skip("systemd-analyze not installed: the unit's security score is not checked")
	}
	// --threshold=25: exit non-zero above an exposure of 2.5.
	out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=25", unitPath).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	score := lines[len(lines)-1]
	if err != nil {
		t.Errorf("systemd-analyze security: %v, want an exposure of 2.5 or lower:\n%s", err, out)
	} else if !strings.Contains(score, "Overall exposure level") {
		t.Errorf("systemd-analyze security said no score:\n%s", out)
	}
	t.Log(score)

	// verify needs ExecStart to exist: point it at the binary just built.
	// It exits 0 even on unknown keys, so any output fails the test.
	// --man=no: Documentation= names smtpband(8), installed by the package
	// only (packaging/ verifies the installed unit with it).
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "smtpband.service")
	writeFile(t, tmp, strings.ReplaceAll(string(b), "/usr/sbin/smtpband", filepath.Join(binDir, "smtpband")))
	if out, err := exec.Command(sa, "verify", "--man=no", tmp).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// requireFeature skips a test that needs something the host lacks, except
// in CI where every test must run.
func requireFeature(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestDaemonAsSystemUser runs the real smtpband as the unit does: an
// unprivileged uid (nobody here, smtpban in the unit) in groups adm and
// systemd-journal, with CAP_NET_ADMIN alone, in ambient, bounding and
// effective sets. In a fresh network namespace, it reads a root:adm log,
// bans into nftables, lets root change things over its 0600 socket and
// keeps everyone else out, cannot read /etc/shadow, and -uninstall works
// with the capability and says what is missing without it.
func TestDaemonAsSystemUser(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	quickExit(t)
	_, err := exec.LookPath("setpriv")
	requireFeature(t, err == nil, "setpriv (util-linux) is needed to drop to an unprivileged uid with CAP_NET_ADMIN")
	const uid, other = 65534, 65533 // nobody, and a uid nobody uses
	gids := map[string]int{}
	for _, name := range []string{"adm", "systemd-journal"} {
		g, err := user.LookupGroup(name)
		// Creating the group would change the host; say so instead.
		requireFeature(t, err == nil, fmt.Sprintf("group %s (the unit's SupplementaryGroups=) does not exist on this host; this test creates none", name))
		gids[name], _ = strconv.Atoi(g.Gid)
	}
	shadowFiles := []string{"/etc/shadow", "/etc/gshadow"}
	for _, p := range shadowFiles {
		_, err := os.Stat(p)
		requireFeature(t, err == nil, p+" does not exist: nothing to prove unreadable")
	}
	ns := newNetns(t, "sysuser")

	// asUser is the argv prefix that runs a command as the unit would:
	// uid and gid nobody, groups adm and systemd-journal, no new
	// privileges, and caps ("+net_admin" or "") as its only capabilities.
	asUser := func(caps string) []string {
		c := "-all"
		if caps != "" {
			c += "," + caps
		}
		return []string{"setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid),
			fmt.Sprintf("--groups=%d,%d", gids["adm"], gids["systemd-journal"]), "--nnp",
			"--inh-caps=" + c, "--ambient-caps=" + c, "--bounding-set=" + c}
	}

	// Like /var/lib/smtpban and /run/smtpban under StateDirectory= and
	// RuntimeDirectory=: directories the user owns, in a tree it can
	// traverse (t.TempDir is 0700).
	dir, err := os.MkdirTemp("", "smtpban-sysuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stateDir, runDir := filepath.Join(dir, "state"), filepath.Join(dir, "run")
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{stateDir, 0o700}, {runDir, 0o755}} {
		if err := os.Mkdir(p.path, p.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p.path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	// The log as rsyslog writes it on Debian: root:adm 0640, readable
	// only through the adm group.
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
	if err := os.Chown(logPath, 0, gids["adm"]); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(logPath, 0o640); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(runDir, "smtpband.sock")
	config := filepath.Join(dir, "smtpban.hcl")
	writeFile(t, config, fmt.Sprintf(`
state_dir = %q
socket    = %q

source "file" "mail" {
  path = %q
}

jail "postfix-sasl" {
  source    = "mail"
  programs  = ["postfix*/*smtpd"]
  failregex = [%q]
  maxretry  = 3
  findtime  = "1h"
  bantime   = "1h"
}

firewall "nftables" {
  table = "smtpban"
}
`, stateDir, socket, logPath, saslRegex))

	// startDaemon's own status calls run as root: root gets through a
	// socket it does not own.
	d := startDaemon(t, config, socket, append(ns.exec(), asUser("+net_admin")...)...)
	waitSourcesOpen(t, d)
	pid := d.cmd.Process.Pid
	inTable := func(addr string) bool {
		return strings.Contains(ns.run(t, "nft", "list", "table", "inet", "smtpban"), addr)
	}

	t.Run("runs as the user with CAP_NET_ADMIN alone", func(t *testing.T) {
		st := procStatus(t, pid)
		if st["Name"] != "smtpband" {
			t.Fatalf("pid %d is %q, not smtpband: the wrappers did not exec it", pid, st["Name"])
		}
		want := map[string]string{
			"Uid": fmt.Sprintf("%d %d %d %d", uid, uid, uid, uid),
			"Gid": fmt.Sprintf("%d %d %d %d", uid, uid, uid, uid),
			// Bit 12 is CAP_NET_ADMIN.
			"CapEff":     "0000000000001000",
			"CapPrm":     "0000000000001000",
			"CapAmb":     "0000000000001000",
			"CapBnd":     "0000000000001000",
			"NoNewPrivs": "1",
		}
		for k, v := range want {
			if st[k] != v {
				t.Errorf("%s: %q, want %q", k, st[k], v)
			}
		}
		groups := strings.Fields(st["Groups"])
		for name, gid := range gids {
			if !slices.Contains(groups, strconv.Itoa(gid)) {
				t.Errorf("Groups %v lack %s (%d)", groups, name, gid)
			}
		}
		if g, err := user.LookupGroup("shadow"); err == nil && slices.Contains(groups, g.Gid) {
			t.Errorf("Groups %v hold shadow", groups)
		}
	})

	t.Run("state and socket belong to the user", func(t *testing.T) {
		for _, p := range []string{filepath.Join(stateDir, "smtpban.db"), socket} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v uid %d, want 0600 uid %d", p, fi.Mode(), st.Uid, uid)
			}
		}
	})

	t.Run("reads a root:adm log and bans into nftables", func(t *testing.T) {
		for range 3 {
			appendLines(t, logPath, saslFailure("198.51.100.9"))
		}
		waitFor(t, 10*time.Second, "198.51.100.9 in the kernel set", func() bool { return inTable("198.51.100.9") })
	})

	t.Run("root bans over the socket", func(t *testing.T) {
		out, errOut, code := d.client("ban", "203.0.113.7")
		if code != 0 || !strings.Contains(out, "banned 203.0.113.7") {
			t.Fatalf("smtpban ban as root: exit %d\n%s%s", code, out, errOut)
		}
		waitFor(t, 5*time.Second, "203.0.113.7 in the kernel set", func() bool { return inTable("203.0.113.7") })
	})

	t.Run("other users cannot connect", func(t *testing.T) {
		cred := &syscall.Credential{Uid: other, Gid: other, Groups: []uint32{}}
		_, errOut, code := runAs(filepath.Join(binDir, "smtpban"), cred, "-config", config, "-socket", socket, "unban", "203.0.113.7")
		if code != 1 || !strings.Contains(errOut, "permission denied: cannot connect") {
			t.Errorf("unban as uid %d: exit %d, want 1 and permission denied\n%s", other, code, errOut)
		}
		if !inTable("203.0.113.7") {
			t.Error("the ban is gone")
		}
	})

	t.Run("cannot read the shadow files", func(t *testing.T) {
		for _, p := range shadowFiles {
			cmd := exec.Command(asUser("+net_admin")[0], append(asUser("+net_admin")[1:], "cat", p)...)
			out, errOut, code := runCmd(cmd)
			if code == 0 || out != "" {
				t.Errorf("cat %s as the daemon's user: exit %d, read %d bytes", p, code, len(out))
			} else if !strings.Contains(errOut, "Permission denied") {
				t.Errorf("cat %s as the daemon's user: exit %d, want permission denied: %s", p, code, errOut)
			}
		}
	})

	// The table stays after the daemon stops; -uninstall removes it.
	d.kill(syscall.SIGTERM)
	t.Run("uninstall", func(t *testing.T) {
		uninstall := func(caps string) (string, int) {
			argv := append(append(ns.exec(), asUser(caps)...), filepath.Join(binDir, "smtpband"), "-config", config, "-uninstall")
			_, errOut, code := runCmd(exec.Command(argv[0], argv[1:]...))
			return errOut, code
		}
		errOut, code := uninstall("")
		if code != 1 || !strings.Contains(errOut, "need CAP_NET_ADMIN") {
			t.Errorf("-uninstall without CAP_NET_ADMIN: exit %d, want 1 and a hint naming the capability\n%s", code, errOut)
		}
		if !inTable("203.0.113.7") {
			t.Fatal("the table went away without the capability")
		}
		if errOut, code := uninstall("+net_admin"); code != 0 {
			t.Fatalf("-uninstall with CAP_NET_ADMIN: exit %d\n%s", code, errOut)
		}
		err := exec.Command("ip", "netns", "exec", ns.name, "nft", "list", "table", "inet", "smtpban").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("nft list table after -uninstall: %v, want it to fail: the table should be gone", err)
		}
	})
}

// procStatus reads /proc/PID/status, each value with its spaces folded.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}
