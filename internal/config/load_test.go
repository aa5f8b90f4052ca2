package config

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smtpban/internal/logline"
	"smtpban/jails"
)

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, map[string]string{"smtpban.hcl": testSource + `jail "a" {
  source    = "log"
  failregex = ["<HOST>"]
  programs  = ["p"]
}
`})
	if c.StateDir != DefaultStateDir || c.Socket != DefaultSocket {
		t.Errorf("state_dir, socket = %q, %q", c.StateDir, c.Socket)
	}
	want := Firewall{Kind: "nftables", Table: "smtpban", Ports: []int{25, 465, 587}, MinPrefixV4: 16, MinPrefixV6: 32, Resync: 10 * time.Second}
	if !equalFirewall(c.Firewall, want) {
		t.Errorf("firewall = %+v, want %+v", c.Firewall, want)
	}
	if len(c.Jails) != 1 {
		t.Fatalf("jails = %d, want 1", len(c.Jails))
	}
	j := c.Jails[0]
	if !j.Enabled || j.MaxRetry != 5 || j.FindTime != 10*time.Minute || j.BanTime != time.Hour {
		t.Errorf("jail defaults: %+v", *j)
	}
	if j.Key != (jails.Key{V4Bits: 32, V6Bits: 128}) || j.Increment != (jails.Increment{}) {
		t.Errorf("key, increment = %+v, %+v", j.Key, j.Increment)
	}
	if !slices.Equal(j.Sources, []string{"log"}) {
		t.Errorf("sources = %v", j.Sources)
	}
	if s, _ := c.Source("log"); s.Format != logline.Syslog {
		t.Errorf("log format = %v, want syslog by default", s.Format)
	}
}

func equalFirewall(a, b Firewall) bool {
	return slices.Equal(a.Ports, b.Ports) && a.Kind == b.Kind && a.Table == b.Table && a.AllPorts == b.AllPorts &&
		a.Reject == b.Reject && a.MinPrefixV4 == b.MinPrefixV4 && a.MinPrefixV6 == b.MinPrefixV6 && a.Resync == b.Resync
}

func TestLoadValues(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"smtpban.hcl": `state_dir = "/srv/smtpban"
socket    = "/tmp/s.sock"
include   = ["conf.d/*.hcl", "extra.hcl"]
ignore    = ["192.0.2.7", "10.1.2.3/8", "::ffff:198.51.100.1", "2001:db8::/32"]
source "journal" "mail" {
  match     = ["SYSLOG_IDENTIFIER=postfix/smtpd", "+", "_SYSTEMD_UNIT=dovecot.service"]
  trust     = ["_SYSTEMD_UNIT=postfix@-.service", "_SYSTEMD_UNIT=dovecot.service"]
  directory = "/var/log/journal/remote"
}
source "journal" "other" {
  match = ["SYSLOG_IDENTIFIER=exim"]
  trust = ["_COMM=exim4"]
  files = ["/tmp/a.journal", "/tmp/b.journal"]
}
firewall "nftables" {
  table         = "mailban"
  ports         = [25, 587]
  all_ports     = true
  reject        = true
  min_prefix_v4 = 24
  min_prefix_v6 = 48
  resync        = "1m"
}
`,
		"conf.d/b.hcl": `source "file" "mainlog" {
  path   = "/var/log/exim4/mainlog"
  format = "exim"
}
jail "b" {
  sources     = ["mail", "mainlog"]
  programs    = ["exim", "exim4*"]
  enabled     = false
  failregex   = ["failed for (?P<user>\\S+) <HOST>", "x=<HOST>"]
  ignoreregex = ["trusted"]
  maxretry    = 3
  findtime    = "1d12h"
  bantime     = "1w"
  key         = "ip/24,ip6/64"
  ignore      = ["203.0.113.0/24"]
  bantime_increment {
    factor = 1.5
    max    = "4w"
  }
}
`,
		"conf.d/a.hcl": `jail "a" {
  source    = "mail"
  programs  = ["postfix*/*smtpd", "dovecot"]
  failregex = ["<HOST>"]
  bantime_increment {
    factor = 2
  }
}
`,
		"extra.hcl": "",
	})
	if c.StateDir != "/srv/smtpban" || c.Socket != "/tmp/s.sock" {
		t.Errorf("state_dir, socket = %q, %q", c.StateDir, c.Socket)
	}
	wantIgnore := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("2001:db8::/32"),
	}
	if !slices.Equal(c.Ignore, wantIgnore) {
		t.Errorf("ignore = %v, want %v", c.Ignore, wantIgnore)
	}
	dir := filepath.Dir(c.File)
	wantFiles := []string{c.File, filepath.Join(dir, "conf.d/a.hcl"), filepath.Join(dir, "conf.d/b.hcl"), filepath.Join(dir, "extra.hcl")}
	if !slices.Equal(c.Files, wantFiles) {
		t.Errorf("files = %v, want %v", c.Files, wantFiles)
	}
	if len(c.Sources) != 3 {
		t.Fatalf("sources = %+v", c.Sources)
	}
	mail, _ := c.Source("mail")
	if mail.Kind != "journal" || mail.Directory != "/var/log/journal/remote" || len(mail.Match) != 3 || mail.Match[1] != "+" ||
		!slices.Equal(mail.Trust, []string{"_SYSTEMD_UNIT=postfix@-.service", "_SYSTEMD_UNIT=dovecot.service"}) {
		t.Errorf("mail = %+v", mail)
	}
	other, _ := c.Source("other")
	if !slices.Equal(other.Files, []string{"/tmp/a.journal", "/tmp/b.journal"}) || !slices.Equal(other.Trust, []string{"_COMM=exim4"}) {
		t.Errorf("other = %+v", other)
	}
	if ml, ok := c.Source("mainlog"); !ok || ml.Kind != "file" || ml.Path != "/var/log/exim4/mainlog" || ml.Format != logline.Exim || ml.Trust != nil {
		t.Errorf("mainlog = %+v, %v", ml, ok)
	}
	wantFW := Firewall{Kind: "nftables", Table: "mailban", Ports: []int{25, 587}, AllPorts: true, Reject: true, MinPrefixV4: 24, MinPrefixV6: 48, Resync: time.Minute}
	if !equalFirewall(c.Firewall, wantFW) {
		t.Errorf("firewall = %+v, want %+v", c.Firewall, wantFW)
	}
	if len(c.Jails) != 2 || c.Jails[0].Name != "a" || c.Jails[1].Name != "b" {
		t.Fatalf("jails = %v", c.Jails)
	}
	a, b := c.Jails[0], c.Jails[1]
	if a.Increment != (jails.Increment{Factor: 2, Max: Week}) {
		t.Errorf("a increment = %+v, want factor 2, default max", a.Increment)
	}
	if !slices.Equal(a.Programs, []string{"postfix*/*smtpd", "dovecot"}) || !slices.Equal(b.Programs, []string{"exim", "exim4*"}) {
		t.Errorf("programs = %q, %q", a.Programs, b.Programs)
	}
	if b.Enabled || b.MaxRetry != 3 || b.FindTime != 36*time.Hour || b.BanTime != Week ||
		len(b.Failregex) != 2 || len(b.Ignoreregex) != 1 || b.Key != (jails.Key{V4Bits: 24, V6Bits: 64}) ||
		b.Increment != (jails.Increment{Factor: 1.5, Max: 4 * Week}) ||
		!slices.Equal(b.Sources, []string{"mail", "mainlog"}) ||
		!slices.Equal(b.Ignore, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}) {
		t.Errorf("b = %+v", *b)
	}
	if got := c.EnabledJails(); len(got) != 1 || got[0] != a {
		t.Errorf("EnabledJails() = %v", got)
	}
	var active []string
	for _, s := range c.ActiveSources() {
		active = append(active, s.Name)
	}
	if !slices.Equal(active, []string{"mail"}) {
		t.Errorf("ActiveSources() = %v, want [mail]: mainlog is read by a disabled jail only", active)
	}
}

func TestLoadFirewallKinds(t *testing.T) {
	tests := []struct {
		name, body, kind string
	}{
		{"absent means nftables", "", "nftables"},
		{"dryrun", `firewall "dryrun" {}`, "dryrun"},
		{"nftables", `firewall "nftables" {}`, "nftables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, map[string]string{"smtpban.hcl": tt.body})
			if c.Firewall.Kind != tt.kind || c.Firewall.Table != DefaultTable {
				t.Errorf("firewall = %+v, want kind %q", c.Firewall, tt.kind)
			}
		})
	}
}

func TestLoadIncludeDefaults(t *testing.T) {
	jail := `jail "a" {
  source    = "log"
  failregex = ["<HOST>"]
  programs  = ["p"]
}
`
	t.Run("absent reads jails.d", func(t *testing.T) {
		c := mustLoad(t, map[string]string{"smtpban.hcl": testSource, "jails.d/a.hcl": jail})
		if len(c.Jails) != 1 {
			t.Errorf("jails = %d, want 1 from jails.d", len(c.Jails))
		}
	})
	t.Run("absent and no jails.d is quiet", func(t *testing.T) {
		c := mustLoad(t, map[string]string{"smtpban.hcl": testSource})
		if len(c.Jails) != 0 || len(c.Files) != 1 {
			t.Errorf("jails, files = %d, %v", len(c.Jails), c.Files)
		}
	})
	t.Run("empty reads nothing", func(t *testing.T) {
		c := mustLoad(t, map[string]string{"smtpban.hcl": "include = []\n" + testSource, "jails.d/a.hcl": jail})
		if len(c.Jails) != 0 {
			t.Errorf("jails = %d, want 0", len(c.Jails))
		}
	})
	t.Run("a file matched twice is read once", func(t *testing.T) {
		c := mustLoad(t, map[string]string{
			"smtpban.hcl":   `include = ["jails.d/*.hcl", "jails.d/a.hcl", "*.hcl"]` + "\n" + testSource,
			"jails.d/a.hcl": jail,
		})
		if len(c.Jails) != 1 || len(c.Files) != 2 {
			t.Errorf("jails, files = %d, %v", len(c.Jails), c.Files)
		}
	})
}
