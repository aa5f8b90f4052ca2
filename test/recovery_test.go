package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nftConfig is the firewall block of the recovery tests: the real table
// in the daemon's namespace.
const nftConfig = `firewall "nftables" {
  table  = "smtpban"
  resync = "1s"
}`

// kernelBans lists the addresses in the mail namespace's smtpban sets.
func kernelBans(t *testing.T, n *netns) []string {
	t.Helper()
	out := n.run(t, "nft", "-j", "list", "set", "inet", "smtpban", "addrs4")
	var v struct {
		Nftables []struct {
			Set *struct {
				Elem []struct {
					Elem struct {
						Val string `json:"val"`
					} `json:"elem"`
				} `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := jsonUnmarshal(out, &v); err != nil {
		t.Fatalf("nft -j list set: %v\n%s", err, out)
	}
	var addrs []string
	for _, o := range v.Nftables {
		if o.Set != nil {
			for _, e := range o.Set.Elem {
				addrs = append(addrs, e.Elem.Val+"/32")
			}
		}
	}
	slices.Sort(addrs)
	return addrs
}

type stateStatus struct {
	Writable  bool   `json:"writable"`
	Error     string `json:"error"`
	Pending   int    `json:"pending"`
	Recovered []struct {
		Damaged  string         `json:"damaged"`
		Salvaged map[string]int `json:"salvaged"`
	} `json:"recovered"`
}

func (d *daemon) state(t *testing.T) stateStatus {
	t.Helper()
	var st struct {
		State *stateStatus `json:"state"`
	}
	d.clientJSON(t, &st, "status")
	if st.State == nil {
		t.Fatal("status -json has no state")
	}
	return *st.State
}

// banMany bans n addresses of 10.88.0.0/16 through the log (maxretry 1)
// and waits for them all.
func banMany(t *testing.T, d *daemon, logPath string, n int) {
	t.Helper()
	var lines []string
	for i := range n {
		lines = append(lines, saslFailure(fmt.Sprintf("10.88.%d.%d", i/200, 1+i%200)))
	}
	appendLines(t, logPath, lines...)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d bans", n), func() bool { return len(d.bans(t)) == n })
}

// TestDamagedDatabaseStartsAndRelearns: 8 KiB in the middle of the state
// database of a stopped daemon with 300 bans is overwritten, as a bad
// sector would. The daemon starts anyway, moves the file aside, keeps the
// bans it could read and re-learns the others from the kernel's set: every
// ban is back, with its time left. Status says state was recovered until
// the admin acknowledges it.
func TestDamagedDatabaseStartsAndRelearns(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mail := newNetns(t, "mail")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
	config := writeConfig(t, dir, logPath, nftConfig, 1, "1h")
	socket := filepath.Join(dir, "smtpband.sock")
	d := startDaemon(t, config, socket, mail.exec()...)
	waitSourcesOpen(t, d)
	const n = 300
	banMany(t, d, logPath, n)
	before := d.bans(t)
	d.kill(syscall.SIGTERM)

	db := filepath.Join(dir, "state", "smtpban.db")
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	// The middle of the pages in use (the file grows 1 MiB at a time, so
	// its own middle may be unused): bbolt's high water mark, from the
	// newer meta page.
	used := usedPages(t, db, ps)
	off := used / 2 * ps
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 8<<10), off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Logf("overwrote 8 KiB at %d of %d bytes (%d in use)", off, fi.Size(), used*ps)

	d = startDaemon(t, config, socket, mail.exec()...)
	after := map[string]apiBan{}
	for _, b := range d.bans(t) {
		after[b.Prefix] = b
	}
	kept, relearnt := 0, 0
	for _, b := range before {
		a, ok := after[b.Prefix]
		switch {
		case !ok:
			t.Errorf("ban %s lost", b.Prefix)
			continue
		case a.Jail == b.Jail:
			kept++
			if !a.Until.Equal(b.Until) {
				t.Errorf("kept ban %s until %v, was %v", b.Prefix, a.Until, b.Until)
			}
		case a.Jail == "recovered":
			relearnt++
			// The kernel keeps milliseconds; the re-learnt end is cut to
			// the second.
			if diff := a.Until.Sub(b.Until); diff < -2*time.Second || diff > 2*time.Second {
				t.Errorf("re-learnt ban %s until %v, was %v", b.Prefix, a.Until, b.Until)
			}
		default:
			t.Errorf("ban %s now in jail %q, was %q", b.Prefix, a.Jail, b.Jail)
		}
	}
	t.Logf("%d bans kept from the damaged file, %d re-learnt from the kernel", kept, relearnt)
	if kept == 0 {
		t.Error("no ban kept from a file only 8 KiB of which was overwritten")
	}
	if len(after) != n {
		t.Errorf("%d bans after the restart, want %d", len(after), n)
	}
	if got := kernelBans(t, mail); len(got) != n {
		t.Errorf("kernel holds %d bans after the restart, want %d", len(got), n)
	}
	st := d.state(t)
	if len(st.Recovered) != 1 || !strings.Contains(st.Recovered[0].Damaged, "smtpban.db.damaged-") {
		t.Fatalf("status state = %+v, want one recovery", st)
	}
	if _, err := os.Stat(st.Recovered[0].Damaged); err != nil {
		t.Errorf("the damaged file was not kept: %v", err)
	}
	if out, _, _ := d.client("status"); !strings.Contains(out, "STATE RECOVERED") {
		t.Errorf("status does not say state was recovered:\n%s", out)
	}
	if _, errOut, code := d.client("status", "-ack-recovery"); code != 0 {
		t.Fatalf("status -ack-recovery: exit %d: %s", code, errOut)
	}
	if st := d.state(t); len(st.Recovered) != 0 {
		t.Errorf("after the acknowledgement status still says %+v", st)
	}
}

// TestDeletedDatabaseRelearnsKernelBans: with the state database deleted
// while the kernel still holds bans, a restart puts every kernel ban in
// `smtpban bans`, in jail "recovered", with the time it has left.
func TestDeletedDatabaseRelearnsKernelBans(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mail := newNetns(t, "mail")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
	config := writeConfig(t, dir, logPath, nftConfig, 1, "1h")
	socket := filepath.Join(dir, "smtpband.sock")
	d := startDaemon(t, config, socket, mail.exec()...)
	want := map[string]time.Duration{"203.0.113.7/32": 2 * time.Hour, "198.51.100.9/32": 20 * time.Minute, "203.0.113.64/26": 3 * time.Hour}
	for p, dur := range want {
		if _, errOut, code := d.client("ban", "-for", dur.String(), p); code != 0 {
			t.Fatalf("smtpban ban %s: exit %d: %s", p, code, errOut)
		}
	}
	until := map[string]time.Time{}
	for _, b := range d.bans(t) {
		until[b.Prefix] = b.Until
	}
	d.kill(syscall.SIGKILL)
	if err := os.Remove(filepath.Join(dir, "state", "smtpban.db")); err != nil {
		t.Fatal(err)
	}

	d = startDaemon(t, config, socket, mail.exec()...)
	got := map[string]apiBan{}
	for _, b := range d.bans(t) {
		got[b.Prefix] = b
	}
	for p := range want {
		b, ok := got[p]
		if !ok {
			t.Errorf("kernel ban %s not in smtpban bans after the restart; bans: %+v", p, got)
			continue
		}
		if diff := b.Until.Sub(until[p]); b.Jail != "recovered" || diff < -2*time.Second || diff > 2*time.Second {
			t.Errorf("ban %s: jail %q until %v, want jail recovered until %v", p, b.Jail, b.Until, until[p])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d bans after the restart, want %d", len(got), len(want))
	}
}

// TestExportWipeImport: export from a running daemon, wipe its state,
// import into the fresh daemon: the same bans, allow list and histories.
func TestExportWipeImport(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
	config := writeConfig(t, dir, logPath, `firewall "dryrun" {}`, 2, "1h")
	socket := filepath.Join(dir, "smtpband.sock")
	d := startDaemon(t, config, socket)
	waitSourcesOpen(t, d)
	appendLines(t, logPath, saslFailure("203.0.113.7"), saslFailure("203.0.113.7"))
	waitFor(t, 10*time.Second, "203.0.113.7 banned", func() bool { _, ok := d.banned(t, "203.0.113.7/32"); return ok })
	for p, dur := range map[string]string{"198.51.100.9": "20m", "2001:db8:1::/48": "3h", "192.0.2.77": "1w"} {
		if _, errOut, code := d.client("ban", "-for", dur, p); code != 0 {
			t.Fatalf("smtpban ban %s: exit %d: %s", p, code, errOut)
		}
	}
	if _, errOut, code := d.client("allow", "-for", "2d", "198.51.100.200"); code != 0 {
		t.Fatalf("smtpban allow: exit %d: %s", code, errOut)
	}
	before := d.bans(t)
	allowBefore, _, _ := d.client("allow", "-list", "-json")

	backup := filepath.Join(dir, "backup.jsonl")
	if _, errOut, code := d.client("export", "-o", backup); code != 0 {
		t.Fatalf("smtpban export: exit %d: %s", code, errOut)
	}
	d.kill(syscall.SIGTERM)
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, config, socket)
	if n := len(d.bans(t)); n != 0 {
		t.Fatalf("%d bans after the wipe", n)
	}
	out, errOut, code := d.client("import", backup)
	if code != 0 {
		t.Fatalf("smtpban import: exit %d: %s", code, errOut)
	}
	t.Logf("import: %s", out)
	after := d.bans(t)
	if len(after) != len(before) {
		t.Fatalf("bans after import: %+v\nbefore: %+v", after, before)
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.Prefix != b.Prefix || a.Jail != b.Jail || !a.Until.Equal(b.Until) || a.Count != b.Count || a.Failures != b.Failures {
			t.Errorf("ban %d after import %+v, before %+v", i, a, b)
		}
	}
	if allowAfter, _, _ := d.client("allow", "-list", "-json"); allowAfter != allowBefore {
		t.Errorf("allow list after import:\n%s\nbefore:\n%s", allowAfter, allowBefore)
	}
	// Imported again: nothing changes (the later until wins, and it is
	// the same).
	out, _, _ = d.client("import", "-json", backup)
	var again struct {
		Bans *int `json:"bans"`
		Kept int  `json:"kept"`
	}
	if err := jsonUnmarshal(out, &again); err != nil || again.Bans == nil || *again.Bans != 0 || again.Kept != len(before) {
		t.Errorf("a second import: %s, want no ban written, all kept", out)
	}
}

// TestFullStateDir: the state directory (a small tmpfs) fills up while the
// daemon runs. New bans still reach the kernel, status says state is not
// being written, a resync keeps them in the set, the daemon does not
// exit; once there is room the bans are saved: after a kill -9 they come
// back with their jail, not as re-learnt. (A read-only remount is what the
// issue names too, but the kernel refuses it, EBUSY, while the daemon
// holds the database open for writing; both reach the ban manager as a
// failed write, which is what this exercises.)
func TestFullStateDir(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mail := newNetns(t, "mail")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", stateDir)
	t.Cleanup(func() { exec.Command("umount", "-l", stateDir).Run() })
	logPath := filepath.Join(dir, "mail.log")
	appendLines(t, logPath, "Nov 24 00:00:00 mail postfix/smtpd[1]: daemon started")
	config := writeConfig(t, dir, logPath, nftConfig, 1, "1h")
	socket := filepath.Join(dir, "smtpband.sock")
	d := startDaemon(t, config, socket, mail.exec()...)
	waitSourcesOpen(t, d)
	appendLines(t, logPath, saslFailure("203.0.113.1"))
	waitFor(t, 10*time.Second, "203.0.113.1 banned", func() bool { _, ok := d.banned(t, "203.0.113.1/32"); return ok })

	// Fill the disk; dd stops at ENOSPC.
	filler := filepath.Join(stateDir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run()
	// 300 bans in one batch need pages the file does not have yet.
	var lines []string
	var want []string
	for i := range 300 {
		a := fmt.Sprintf("10.89.%d.%d", i/200, 1+i%200)
		lines = append(lines, saslFailure(a))
		want = append(want, a+"/32")
	}
	appendLines(t, logPath, lines...)
	waitFor(t, 15*time.Second, "the new bans in the kernel set while the disk is full", func() bool {
		k := kernelBans(t, mail)
		for _, p := range want {
			if !slices.Contains(k, p) {
				return false
			}
		}
		return true
	})
	if st := d.state(t); st.Writable || st.Error == "" || st.Pending == 0 {
		t.Errorf("status while the disk is full: %+v, want not writable, the error, bans pending", st)
	}
	if out, _, _ := d.client("status"); !strings.Contains(out, "STATE NOT BEING WRITTEN") {
		t.Errorf("status does not say state is not written:\n%s", out)
	}
	if n := len(d.bans(t)); n != len(want)+1 {
		t.Errorf("smtpban bans lists %d bans while the disk is full, want %d (the unsaved ones too)", n, len(want)+1)
	}
	// Resyncs (every second) meanwhile keep them.
	time.Sleep(2500 * time.Millisecond)
	if k := kernelBans(t, mail); !slices.Contains(k, want[0]) || len(k) != len(want)+1 {
		t.Errorf("a resync removed unsaved bans: kernel holds %d", len(k))
	}
	if d.exited() {
		t.Fatal("the daemon exited while the disk was full")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the bans saved once there is room", func() bool {
		return len(d.bans(t)) == len(want)+1 && d.state(t).Writable
	})
	d.kill(syscall.SIGKILL)
	d = startDaemon(t, config, socket, mail.exec()...)
	got := d.bans(t)
	if len(got) != len(want)+1 {
		t.Errorf("%d bans after a restart, want %d", len(got), len(want)+1)
	}
	for _, b := range got {
		if b.Jail != "postfix-sasl" {
			t.Errorf("after a restart %s is in jail %q, want saved in postfix-sasl", b.Prefix, b.Jail)
		}
	}
}

// usedPages reads the high water mark (pages in use) of a bbolt file from
// its newer meta page: page header (16 bytes), magic, version, page size,
// flags, root bucket (16), freelist (8), then the high water mark and the
// transaction id, in the machine's byte order.
func usedPages(t *testing.T, pattern string, ps int64) int64 {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		return 0
	}
	b, err := os.ReadFile(m[0])
	if err != nil || int64(len(b)) < 2*ps {
		t.Fatalf("read %s: %v", m[0], err)
	}
	var hwm, tx uint64
	for _, off := range []int64{0, ps} {
		if txid := binary.NativeEndian.Uint64(b[off+64:]); txid >= tx {
			tx, hwm = txid, binary.NativeEndian.Uint64(b[off+56:])
		}
	}
	return int64(hwm)
}
