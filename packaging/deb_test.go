// Package packaging holds the tests of what `make deb` builds: the
// package as dpkg installs it, and man pages and bash completion that
// match the binaries' real flags and commands.
package packaging

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireTool fails in CI (which installs every tool) and skips elsewhere
// when a tool is missing.
func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			why := n + " is not installed: the package cannot be built or checked (.ci/run installs it)"
			if os.Getenv("CI") == "true" {
				t.Fatal(why)
			}
			t.Skip(why)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root: dpkg installs into a scratch root made with overlayfs in a mount namespace")
}

func runOK(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// scratchRoot is this host's / seen through an overlay whose writable
// layer is a tmpfs, inside a mount and a network namespace of its own,
// held by one sleeping process. dpkg, adduser, deb-systemd-helper and the
// maintainer scripts run in it for real, chrooted, with the host's own
// packages (nftables, adduser, init-system-helpers) below; whatever they
// write (users, symlinks, the dpkg database) and any nftables table they
// touch stay in the namespaces, which vanish with the process.
type scratchRoot struct {
	holder *exec.Cmd
	dir    string // the overlay's mount point, inside the holder's namespace
}

const holderScript = `set -e
T=$1
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
mount -t proc proc "$T/root/proc"
mount --rbind /dev "$T/root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$T/root/run"
mount -t tmpfs -o mode=1777 tmpfs "$T/root/tmp"
echo ready
exec sleep 900
`

func newScratchRoot(t *testing.T) *scratchRoot {
	t.Helper()
	requireTool(t, "unshare", "nsenter", "chroot")
	dir := t.TempDir()
	cmd := exec.Command("unshare", "--mount", "--net", "sh", "-c", holderScript, "holder", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the scratch root's namespace: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("scratch root (overlay over / in a mount namespace): %v\n%s", err, stderr.String())
	}
	return &scratchRoot{holder: cmd, dir: filepath.Join(dir, "root")}
}

// path is where the host sees a file of the scratch root.
func (r *scratchRoot) path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(r.holder.Process.Pid), "root", r.dir, p)
}

// sh runs a shell command chrooted in the scratch root.
func (r *scratchRoot) sh(script string) (string, error) {
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(r.holder.Process.Pid), "-m", "-n",
		"chroot", r.dir, "/bin/sh", "-c", script)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "HOME=/root",
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *scratchRoot) mustSh(t *testing.T, script string) string {
	t.Helper()
	out, err := r.sh(script)
	if err != nil {
		t.Fatalf("in the scratch root: %s: %v\n%s", script, err, out)
	}
	return out
}

func (r *scratchRoot) exists(p string) bool {
	_, err := os.Lstat(r.path(p))
	return err == nil
}

func (r *scratchRoot) read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// systemctlLog is where the scratch root's systemctl writes each call; the
// real systemctl runs after, and in a chroot it does preset and enable but
// ignores start, stop and daemon-reload.
const systemctlLog = "/tmp/systemctl.log"

const fakeSystemd = `set -e
# Maintainer scripts and deb-systemd-invoke act only where systemd runs.
mkdir -p /run/systemd/system
# The host's policy-rc.d may forbid starting services; here nothing starts.
rm -f /usr/sbin/policy-rc.d
# man-db's trigger rebuilds its whole index at each install: seconds.
rm -f /var/lib/man-db/auto-update
cat > /usr/local/sbin/systemctl <<'EOS'
#!/bin/sh
echo "$*" >> ` + systemctlLog + `
exec /usr/bin/systemctl "$@"
EOS
chmod 0755 /usr/local/sbin/systemctl
`

// TestDebPackage builds the package with `make deb` as an admin would,
// has lintian check it, and installs, upgrades, removes and purges it with
// dpkg in a scratch root. It checks the files and conffiles, the user and
// group, the unit (enabled, not started; systemd-analyze verify and
// security), the version both binaries print, `smtpband -t` on the
// installed config, that an upgrade keeps an edited conffile and restarts
// only a running daemon, that remove stops it and drops its nftables
// table, and that purge removes the config and the state.
//
// Not tested here: systemd as PID 1 running the unit (no boot in a chroot;
// systemctl calls are recorded, not carried out), apt resolving Depends
// (the host's nftables and adduser are below the overlay), and a minimal
// Debian: the scratch root is this host with its packages.
func TestDebPackage(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTool(t, "make", "dpkg-deb", "dpkg", "lintian", "systemd-analyze", "git", "nft")
	wantVersion := strings.TrimSpace(runOK(t, exec.Command("./version.sh")))
	tmp := t.TempDir()
	dist := filepath.Join(tmp, "dist")
	make := exec.Command("make", "-C", "..", "deb", "BUILD="+filepath.Join(tmp, "build"), "DIST="+dist)
	start := time.Now()
	runOK(t, make)
	t.Logf("make deb: %v", time.Since(start).Round(time.Second))

	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb wrote %v, want one .deb in %s", debs, dist)
	}
	deb := debs[0]
	field := func(name string) string {
		return strings.TrimSpace(runOK(t, exec.Command("dpkg-deb", "-f", deb, name)))
	}
	version, arch := field("Version"), field("Architecture")
	if want := "smtpban_" + version + "_" + arch + ".deb"; filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}
	if version != wantVersion || version == "dev" {
		t.Errorf("Version: %q, want %q (packaging/version.sh)", version, wantVersion)
	}
	if deps := field("Depends"); !slices.Contains(strings.Split(strings.ReplaceAll(deps, " ", ""), ","), "nftables") {
		t.Errorf("Depends: %q, want nftables", deps)
	}

	// lintian exits non-zero on any error tag; its warnings are logged.
	lint := exec.Command("lintian", "--fail-on", "error", deb)
	out, err := lint.CombinedOutput()
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	} else if len(out) > 0 {
		t.Logf("lintian (no errors):\n%s", out)
	}

	r := newScratchRoot(t)
	r.mustSh(t, fakeSystemd)
	copyFile(t, deb, r.path("/tmp/smtpban.deb"))

	// First install.
	r.mustSh(t, "dpkg -i /tmp/smtpban.deb")
	jails, _ := filepath.Glob("../configs/jails.d/*.hcl")
	if len(jails) == 0 {
		t.Fatal("no jails in ../configs/jails.d")
	}
	wantConf := []string{"/etc/smtpban/smtpban.hcl"}
	for _, j := range jails {
		wantConf = append(wantConf, "/etc/smtpban/jails.d/"+filepath.Base(j))
	}
	for _, f := range append([]string{
		"/usr/sbin/smtpband", "/usr/bin/smtpban", "/lib/systemd/system/smtpband.service",
		"/usr/share/man/man8/smtpband.8.gz", "/usr/share/man/man1/smtpban.1.gz",
		"/usr/share/bash-completion/completions/smtpban", "/usr/share/bash-completion/completions/smtpband",
		"/usr/share/doc/smtpban/copyright", "/usr/share/doc/smtpban/changelog.gz",
		"/usr/share/doc/smtpban/examples/monitoring/smtpban-alerts.yml",
		"/usr/share/doc/smtpban/examples/monitoring/smtpband-metrics.conf",
	}, wantConf...) {
		if !r.exists(f) {
			t.Errorf("%s not installed", f)
		}
	}
	for _, f := range []string{"/usr/sbin/smtpband", "/usr/bin/smtpban"} {
		if fi, err := os.Stat(r.path(f)); err == nil && fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755", f, fi.Mode().Perm())
		}
	}
	for _, f := range wantConf {
		shipped := "../configs/" + strings.TrimPrefix(f, "/etc/smtpban/")
		if b, err := os.ReadFile(shipped); err != nil || r.exists(f) && r.read(t, f) != string(b) {
			t.Errorf("%s differs from %s (%v)", f, shipped, err)
		}
	}
	var gotConf []string
	for _, l := range strings.Split(strings.TrimSpace(r.mustSh(t, "dpkg-query -W -f='${Conffiles}' smtpban")), "\n") {
		if fs := strings.Fields(l); len(fs) > 0 {
			gotConf = append(gotConf, fs[0])
		}
	}
	slices.Sort(gotConf)
	slices.Sort(wantConf)
	if !slices.Equal(gotConf, wantConf) {
		t.Errorf("conffiles %q, want %q", gotConf, wantConf)
	}
	if out, err := r.sh("man -w smtpband smtpban"); err != nil {
		t.Errorf("man -w smtpband smtpban: %v\n%s", err, out)
	}

	// The unit: as shipped, its programs installed, its user and groups made.
	unit := r.read(t, "/lib/systemd/system/smtpband.service")
	if b, _ := os.ReadFile("../configs/smtpband.service"); unit != string(b) {
		t.Error("installed unit differs from configs/smtpband.service")
	}
	u := unitSettings(unit)
	for _, k := range []string{"ExecStartPre", "ExecStart", "ExecReload"} {
		for _, v := range u[k] {
			prog := strings.TrimLeft(strings.Fields(v)[0], "-+!@:")
			if !r.exists(prog) {
				t.Errorf("%s=%s: %s is not installed", k, v, prog)
			}
		}
	}
	user, group := last(u["User"]), last(u["Group"])
	if user == "" || group == "" {
		t.Fatalf("unit has User=%q Group=%q", user, group)
	}
	if out, err := r.sh("getent passwd " + user); err != nil || !strings.Contains(out, ":/var/lib/smtpban:/usr/sbin/nologin") {
		t.Errorf("user %s: %v %q, want a system user with home /var/lib/smtpban and no shell", user, err, out)
	}
	groups := []string{group}
	for _, g := range u["SupplementaryGroups"] {
		groups = append(groups, strings.Fields(g)...)
	}
	// The group the shipped config suggests for socket_group.
	conf := r.read(t, "/etc/smtpban/smtpban.hcl")
	for _, l := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(strings.TrimLeft(l, "# "), "="); ok && strings.TrimSpace(k) == "socket_group" {
			groups = append(groups, strings.Trim(strings.TrimSpace(v), `"`))
		}
	}
	for _, g := range groups {
		if _, err := r.sh("getent group " + g); err != nil {
			t.Errorf("group %s (the unit's or socket_group's) does not exist after install", g)
		}
	}
	if !r.exists("/etc/systemd/system/multi-user.target.wants/smtpband.service") {
		t.Error("unit not enabled on first install")
	}
	if calls := r.read(t, systemctlLog); strings.Contains(calls, "start") {
		t.Errorf("first install started the daemon; systemctl calls:\n%s", calls)
	}
	if out, err := r.sh("systemd-analyze verify /lib/systemd/system/smtpband.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out2, err := r.sh("systemd-analyze security --offline=yes --threshold=25 /lib/systemd/system/smtpband.service")
	if err != nil {
		t.Errorf("systemd-analyze security: %v, want an exposure of 2.5 or lower:\n%s", err, out2)
	} else {
		t.Log(lastLine(out2))
	}

	// The installed binaries and config.
	if got := r.mustSh(t, "smtpband -version"); got != "smtpband "+version+"\n" {
		t.Errorf("smtpband -version: %q, want %q", got, "smtpband "+version)
	}
	// version also asks the daemon, which is not running: exit 0 all the same.
	if got := r.mustSh(t, "smtpban version"); !strings.HasPrefix(got, "smtpban "+version+"\n") {
		t.Errorf("smtpban version: %q, want it to start with %q", got, "smtpban "+version)
	}
	if out, err := r.sh("smtpband -t"); err != nil || !strings.Contains(out, "/etc/smtpban/smtpban.hcl") {
		t.Errorf("smtpband -t on the installed config: %v\n%s", err, out)
	}

	// Upgrade (the same package again) with an edited conffile and the
	// daemon's state present.
	const edit = "\n# edited by the admin\n"
	appendFile(t, r.path("/etc/smtpban/smtpban.hcl"), edit)
	r.mustSh(t, "install -d /var/lib/smtpban && touch /var/lib/smtpban/state.db && : > "+systemctlLog)
	r.mustSh(t, "dpkg -i /tmp/smtpban.deb")
	if !strings.HasSuffix(r.read(t, "/etc/smtpban/smtpban.hcl"), edit) {
		t.Error("the upgrade overwrote the admin's edit of /etc/smtpban/smtpban.hcl")
	}
	calls := r.read(t, systemctlLog)
	if !strings.Contains(calls, "try-restart smtpband.service") || strings.Contains(calls, "\nstart ") || strings.HasPrefix(calls, "start ") {
		t.Errorf("upgrade: want try-restart (a running daemon on the new binary, a stopped one left stopped); systemctl calls:\n%s", calls)
	}

	// Remove: stopped, its nftables table gone (in the scratch root's own
	// network namespace), binaries gone, config and state kept.
	r.mustSh(t, "nft add table inet smtpban && nft add set inet smtpban probe '{ type ipv4_addr; }'")
	r.mustSh(t, ": > "+systemctlLog+" && dpkg -r smtpban")
	if out, err := r.sh("nft list table inet smtpban"); err == nil {
		t.Errorf("remove left the nftables table (and its bans) in the kernel:\n%s", out)
	}
	if calls := r.read(t, systemctlLog); !strings.Contains(calls, "stop smtpband.service") {
		t.Errorf("remove did not stop the daemon; systemctl calls:\n%s", calls)
	}
	for f, want := range map[string]bool{"/usr/sbin/smtpband": false, "/etc/smtpban/smtpban.hcl": true, "/var/lib/smtpban/state.db": true} {
		if r.exists(f) != want {
			t.Errorf("after remove: %s exists %v, want %v", f, !want, want)
		}
	}

	// Purge: config and state gone.
	r.mustSh(t, "dpkg --purge smtpban")
	for _, f := range []string{"/etc/smtpban", "/var/lib/smtpban", "/etc/systemd/system/multi-user.target.wants/smtpband.service"} {
		if r.exists(f) {
			t.Errorf("after purge: %s still exists", f)
		}
	}
}

// unitSettings maps each key of a unit to its values in order.
func unitSettings(unit string) map[string][]string {
	m := map[string][]string{}
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(v) != "" {
			m[strings.TrimSpace(k)] = append(m[strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return m
}

func last(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
