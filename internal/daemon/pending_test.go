package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"smtpban/state"
)

// TestBanKeptWhileStateUnwritable: a ban that state cannot save (disk
// full, read-only) is neither lost nor are the failures behind it: it is
// kept, counted in a metric, and saved and applied once state is
// writable again. It used to be dropped with its failures.
func TestBanKeptWhileStateUnwritable(t *testing.T) {
	d, _, logPath := startTest(t) // maxretry 3, dryrun firewall, metrics
	d.mu.Lock()
	d.putBanFault = func(state.Ban) (state.Ban, error) {
		return state.Ban{}, fmt.Errorf("write page: %w", syscall.ENOSPC)
	}
	d.mu.Unlock()
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eventually(t, "the source to read", func() bool {
		fmt.Fprintf(f, "%s mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]\n", time.Now().Format(time.Stamp))
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.sources) == 1 && d.sources[0].src.Stats().Read > 0
	})
	for range 3 {
		fmt.Fprintf(f, "%s mx1 postfix/smtpd[1]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: x\n", time.Now().Format(time.Stamp))
	}
	eventually(t, "the ban to wait for state", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.pending) == 1
	})
	key := netip.MustParsePrefix("203.0.113.9/32")
	if _, ok, _ := d.store.Ban(key); ok {
		t.Fatal("saved while state refused writes")
	}
	if got := metric(t, d, "smtpban_state_ban_write_errors_total", ""); got < 1 {
		t.Errorf("smtpban_state_ban_write_errors_total = %v, want at least 1", got)
	}
	if got := metric(t, d, "smtpban_bans_pending", ""); got != 1 {
		t.Errorf("smtpban_bans_pending = %v, want 1", got)
	}
	// The disk has room again.
	d.mu.Lock()
	d.putBanFault = nil
	d.mu.Unlock()
	eventually(t, "the kept ban saved", func() bool {
		_, ok, _ := d.store.Ban(key)
		return ok
	})
	b, _, _ := d.store.Ban(key)
	if b.Failures != 3 {
		t.Errorf("ban saved with %d failures, want the 3 that decided it", b.Failures)
	}
	es, err := d.fw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || e.Prefix == key
	}
	if !found {
		t.Errorf("the kept ban is not in the firewall: %v", es)
	}
	if got := metric(t, d, "smtpban_bans_pending", ""); got != 0 {
		t.Errorf("smtpban_bans_pending = %v after the retry, want 0", got)
	}
}
