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
)

const widenConfig = `
state_dir = %q
socket    = %q
include   = []

source "file" "mail" {
  path = %q
}

jail "postfix-sasl" {
  source    = "mail"
  programs  = ["postfix/smtpd"]
  failregex = ["warning: [^\\s\\[]+\\[<HOST>\\]: SASL \\S+ authentication failed"]
  maxretry  = 1
  findtime  = "1h"
  bantime   = "1h"
  key       = "ip6/64"
  widen {
    after = 3
    ip6   = 48
  }
}

firewall "dryrun" {}
`

// TestWidenBan: the third banned /64 inside one /48 bans the /48 instead,
// and the /64 bans it covers leave state and the firewall (a set cannot
// hold a prefix and one inside it); a later failure inside the /48 bans
// nothing more.
func TestWidenBan(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "first line\n")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	writeTestFile(t, cfgPath, fmt.Sprintf(widenConfig, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), logPath))
	d, _ := runTest(t, cfgPath, time.Hour)
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fail := func(addr string) {
		t.Helper()
		fmt.Fprintf(f, "%s mx1 postfix/smtpd[1]: warning: unknown[%s]: SASL LOGIN authentication failed: x\n", time.Now().Format(time.Stamp), addr)
	}
	bans := func() []string {
		t.Helper()
		bs, err := d.store.Bans()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bs {
			out = append(out, b.Prefix.String())
		}
		slices.Sort(out)
		return out
	}
	kernel := func() []string {
		t.Helper()
		es, err := d.fw.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Prefix.String())
		}
		slices.Sort(out)
		return out
	}
	// A source on first sight starts at the end: feed it until it reads.
	eventually(t, "the first ban", func() bool {
		fail("2001:db8:7:1::1")
		return len(bans()) == 1
	})
	fail("2001:db8:7:2::1")
	fail("2001:db8:8:1::1") // another /48: counts apart
	eventually(t, "three /64 bans", func() bool { return len(bans()) == 3 })
	if got, want := bans(), []string{"2001:db8:7:1::/64", "2001:db8:7:2::/64", "2001:db8:8:1::/64"}; !slices.Equal(got, want) {
		t.Fatalf("bans %v, want %v", got, want)
	}
	fail("2001:db8:7:3::1")
	want := []string{"2001:db8:7::/48", "2001:db8:8:1::/64"}
	eventually(t, "the /48 in place of its /64s", func() bool { return slices.Equal(bans(), want) })
	// Durable first, then in the firewall.
	eventually(t, "the firewall to hold the /48 alone", func() bool { return slices.Equal(kernel(), want) })
	b, ok, err := d.store.Ban(netip.MustParsePrefix("2001:db8:7::/48"))
	if err != nil || !ok {
		t.Fatalf("the /48 ban: %v %v", ok, err)
	}
	if left := time.Until(b.Until); left < 50*time.Minute || left > time.Hour+time.Minute {
		t.Errorf("the /48 ends in %s, want about the jail's 1h bantime", left)
	}
	// Inside the banned /48 a new offender adds nothing.
	fail("2001:db8:7:4::1")
	fail("198.51.100.1") // a marker: once it is banned, the line before was counted
	eventually(t, "the marker ban", func() bool { return slices.Contains(bans(), "198.51.100.1/32") })
	if got := bans(); !slices.Equal(got, append([]string{"198.51.100.1/32"}, want...)) {
		t.Errorf("after a failure inside the /48, bans %v", got)
	}
}
