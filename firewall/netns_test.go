package firewall

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// skipOrFail skips a test whose environment lacks something, except in CI,
// which is root and has everything, so there a skip would hide a failure.
func skipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(reason)
	}
	tb.Skip(reason)
}

// requireNetNS checks for root and iproute2.
func requireNetNS(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(tb, "needs root: creates network namespaces and nftables tables")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(tb, tool+" not installed: "+err.Error())
		}
	}
}

// netNS is a named network namespace made for one test.
type netNS struct {
	name string
	file *os.File
}

// mustNetNS creates a fresh namespace, removed in cleanup even on failure.
func mustNetNS(tb testing.TB) *netNS {
	tb.Helper()
	requireNetNS(tb)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "smtpban-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		skipOrFail(tb, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	ns := &netNS{name: name}
	tb.Cleanup(func() {
		if ns.file != nil {
			ns.file.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		tb.Fatalf("open netns: %v", err)
	}
	ns.file = f
	return ns
}

func (ns *netNS) fd() int { return int(ns.file.Fd()) }

// exec runs a command inside the namespace and returns its output.
func (ns *netNS) exec(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip netns exec %s %s: %v: %s", ns.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs f on an OS thread switched into the namespace, so sockets f
// creates belong to it. The thread is switched back; if that fails it
// stays locked and the runtime discards it when the goroutine ends.
func (ns *netNS) in(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			errc <- err
			return // thread discarded
		}
		defer orig.Close()
		if err := unix.Setns(ns.fd(), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("restore netns: %w", err)
			return // thread discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// execB runs a command inside the namespace for benchmarks and tests alike.
func (ns *netNS) execB(tb testing.TB, args ...string) {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip netns exec %s %s: %v: %s", ns.name, strings.Join(args, " "), err, out)
	}
}
