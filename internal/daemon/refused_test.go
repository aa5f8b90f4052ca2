package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"smtpban/internal/control"
)

// TestManualBanRefusedByFirewall: a manual ban wider than the firewall's
// min_prefix is refused with a clear error before anything is stored (it
// used to be stored, retried every resync, and kept the daemon from
// starting again).
func TestManualBanRefusedByFirewall(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "first line\n")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	writeTestFile(t, cfgPath, fmt.Sprintf(crashConfig, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), logPath)+
		"\n# min_prefix_v4 16 is the dryrun default too; said here for the reader.\n")
	d, stop := runTest(t, cfgPath, time.Hour)
	for _, p := range []string{"10.0.0.0/8", "2001:db8::/16"} {
		_, err := d.Ban(context.Background(), netip.MustParsePrefix(p), "", time.Hour)
		if !errors.Is(err, control.ErrInvalid) {
			t.Errorf("ban %s: err %v, want ErrInvalid", p, err)
		}
		t.Logf("ban %s: %v", p, err)
	}
	bans, err := d.store.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 0 {
		t.Errorf("refused bans were stored: %+v", bans)
	}
	// A ban inside the limits still works, and a restart is clean.
	if _, err := d.Ban(context.Background(), netip.MustParsePrefix("10.1.0.0/16"), "", time.Hour); err != nil {
		t.Errorf("ban 10.1.0.0/16: %v", err)
	}
	stop()
	runTest(t, cfgPath, time.Hour)
}
