package replay

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smtpban/internal/config"
)

// bannedIPs replays lines and returns the prefixes banned, in order.
func bannedIPs(t *testing.T, cfg *config.Config, lines ...string) []string {
	t.Helper()
	var got []string
	for _, e := range replayJSON(t, Options{Config: cfg, Jails: []string{"postfix-sasl"}, Files: []string{writeLog(t, lines...)}}) {
		if e.Event == "ban" {
			got = append(got, e.IP)
		}
	}
	return got
}

// TestReplayNeverBans: hosts that must never be banned, in the forms a log
// line may carry them, reach maxretry and yield no ban; a public address
// among them does.
func TestReplayNeverBans(t *testing.T) {
	cfg := mustConfig(t)
	hosts := []string{
		"::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "224.0.0.1",
		"169.254.1.1", "255.255.255.255", "0.1.2.3", "240.1.2.3", "fe80::1", "ff02::1",
		"203.0.113.7",
	}
	var lines []string
	for i := range 3 { // maxretry
		for _, h := range hosts {
			lines = append(lines, sasl(fmt.Sprintf("10:00:%02d", i), h))
		}
	}
	if got := bannedIPs(t, cfg, lines...); !slices.Equal(got, []string{"203.0.113.7/32"}) {
		t.Errorf("bans = %v, want only 203.0.113.7/32", got)
	}
}

// TestReplayNeverBansKeyedPrefix: a jail counting IPv6 per /16 would ban
// 2002::/16 for a public 6to4 address; that prefix holds IPv4 loopback
// inside 6to4, so it is refused, while 2001::/16 is banned.
func TestReplayNeverBansKeyedPrefix(t *testing.T) {
	text := strings.Replace(testConfig, "maxretry  = 3\n", "maxretry  = 3\n  key       = \"ip6/16\"\n", 1)
	if text == testConfig {
		t.Fatal("test config has no maxretry to key on")
	}
	// A key wider than the firewall adds is a config error: a firewall
	// that takes a /16, so that only neverban can refuse one.
	text += "firewall \"nftables\" {\n  min_prefix_v6 = 16\n}\n"
	path := filepath.Join(t.TempDir(), "smtpban.hcl")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var lines []string
	for _, s := range []string{"10:00:00", "10:00:01", "10:00:02"} {
		lines = append(lines, sasl(s, "2002:cb00:7107::1"), sasl(s, "2001:db8::1"))
	}
	if got := bannedIPs(t, cfg, lines...); !slices.Equal(got, []string{"2001::/16"}) {
		t.Errorf("bans = %v, want only 2001::/16", got)
	}
}
