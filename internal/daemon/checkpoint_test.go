package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smtpban/jails"
	"smtpban/state"
)

// TestCheckpointIncremental checks that what a checkpoint saves is the
// counter's windows exactly, through every kind of change, each saved as
// just its shard; and that a restart brings them back.
func TestCheckpointIncremental(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "first line\n")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	writeTestFile(t, cfgPath, fmt.Sprintf(testConfig, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), "", logPath))
	// The ticker never fires: the test checkpoints by hand.
	d, stop := runTest(t, cfgPath, time.Hour)
	appendLine := func(line string) {
		t.Helper()
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(f, "%s mx1 %s\n", time.Now().Format(time.Stamp), line)
	}
	// A source on first sight starts at the end of the file: append until
	// it reads something, so that it follows the file before we count.
	eventually(t, "the source to read a line", func() bool {
		appendLine("postfix/smtpd[1]: connect from unknown[192.0.2.99]")
		st, err := d.Status(context.Background(), "")
		return err == nil && len(st.Sources) == 1 && st.Sources[0].Read > 0
	})

	lines := 0
	fail := func(addrs ...string) {
		t.Helper()
		for _, a := range addrs {
			appendLine("postfix/smtpd[1]: warning: unknown[" + a + "]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
			lines++
		}
		eventually(t, fmt.Sprintf("the daemon to count %d lines", lines), func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.jailStats["postfix-sasl"].failures == uint64(lines)
		})
	}
	checkpoint := func(step string) {
		t.Helper()
		if err := d.checkpoint(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		saved, err := d.store.Windows()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fromStates(saved), d.counter.Snapshot(); !sameWindows(got, want) {
			t.Fatalf("%s: saved %v, counter holds %v", step, got, want)
		}
	}

	fail("192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "2001:db8::5")
	checkpoint("added")
	if d.counter.Len() != 5 {
		t.Fatalf("%d windows, want 5", d.counter.Len())
	}
	fail("192.0.2.2") // changed
	checkpoint("changed")
	fail("192.0.2.1") // the third: banned, its window cleared
	eventually(t, "192.0.2.1 banned", func() bool {
		bs, _ := d.store.Bans()
		return len(bs) == 1
	})
	checkpoint("cleared by a ban")
	d.counter.Forget("postfix-sasl", netip.MustParsePrefix("192.0.2.3/32"))
	checkpoint("forgotten")
	d.counter.SetMaxKeys(2) // evicts the one closest to expiry
	if st := d.counter.Stats(); st.Evicted != 1 || st.Windows != 2 {
		t.Fatalf("stats %+v, want 1 evicted, 2 left", st)
	}
	checkpoint("evicted")
	if err := d.checkpoint(); err != nil {
		t.Fatal(err)
	}

	// Restart: the same windows and hash key come back.
	before, key := d.counter.Snapshot(), d.counter.HashKey()
	stop()
	d2, stop2 := runTest(t, cfgPath, time.Hour)
	if got := d2.counter.Snapshot(); !sameWindows(got, before) || d2.counter.HashKey() != key {
		t.Fatalf("after restart: %v (key %x), want %v (key %x)", got, d2.counter.HashKey(), before, key)
	}
	d = d2
	d.counter.Expire(time.Now().Add(2 * time.Hour))
	checkpoint("expired")
	if d.counter.Len() != 0 {
		t.Fatalf("%d windows left after expiry", d.counter.Len())
	}
	stop2()
}

func fromStates(ws []state.Window) []jails.Window {
	out := make([]jails.Window, len(ws))
	for i, w := range ws {
		out[i] = fromState(w)
	}
	slices.SortFunc(out, func(a, b jails.Window) int { return a.Key.Addr().Compare(b.Key.Addr()) })
	return out
}

// sameWindows compares two lists of one jail's windows sorted by address.
func sameWindows(a, b []jails.Window) bool {
	return slices.EqualFunc(a, b, func(x, y jails.Window) bool {
		return x.Jail == y.Jail && x.Key == y.Key && slices.EqualFunc(x.Times, y.Times, time.Time.Equal) &&
			slices.Equal(x.Users, y.Users) && slices.Equal(x.Passes, y.Passes)
	})
}
