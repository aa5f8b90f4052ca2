package firewall

import (
	"log/slog"
	"testing"
	"time"
)

// TestAbilities pins which optional abilities each backend has: the daemon
// finds them by these names, and a DryRun has no table to ensure, watch or
// uninstall.
func TestAbilities(t *testing.T) {
	for _, c := range []struct {
		name                            string
		b                               Backend
		check, ensure, watch, uninstall bool
	}{
		{"nft", &NFT{}, true, true, true, true},
		{"dryrun", NewDryRun(slog.New(slog.DiscardHandler), time.Now, Limits{}), true, false, false, false},
	} {
		_, check := c.b.(Checker)
		_, ensure := c.b.(Ensurer)
		_, watch := c.b.(Watcher)
		_, uninstall := c.b.(Uninstaller)
		if check != c.check || ensure != c.ensure || watch != c.watch || uninstall != c.uninstall {
			t.Errorf("%s: Checker %v, Ensurer %v, Watcher %v, Uninstaller %v; want %v, %v, %v, %v",
				c.name, check, ensure, watch, uninstall, c.check, c.ensure, c.watch, c.uninstall)
		}
	}
}
