package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"smtpban/firewall"
	"strings"
	"testing"
	"time"

	"smtpban/internal/control"
	"smtpban/state"
)

// neverBanned are hosts a log line may carry that no ban may touch, in the
// forms an attacker could write them.
var neverBanned = []string{
	"::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "224.0.0.1",
	"169.254.1.1", "255.255.255.255", "0.1.2.3", "240.1.2.3", "fe80::1", "ff02::1",
}

// TestNeverBanFromLines feeds enough failures from each never-banned host
// to ban it, and from one public address that must be banned, and checks
// that only the public one reaches state and the firewall.
func TestNeverBanFromLines(t *testing.T) {
	d, _, logPath := startTest(t)
	ctx := context.Background()
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
		st, err := d.Status(ctx, "")
		return err == nil && len(st.Sources) == 1 && st.Sources[0].Read > 0
	})
	hosts := append(neverBanned, "203.0.113.7")
	for range 3 { // maxretry
		for _, h := range hosts {
			appendLine("postfix/smtpd[1]: warning: unknown[" + h + "]: SASL LOGIN authentication failed: x")
		}
	}
	// Every line counted: each host reached maxretry, and was decided on.
	want := uint64(3 * len(hosts))
	eventually(t, "every failure to be counted", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.jailStats["postfix-sasl"].failures == want
	})
	eventually(t, "the public address to be banned", func() bool {
		bs, err := d.Bans(ctx, "")
		return err == nil && len(bs) > 0
	})
	bs, err := d.Bans(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Prefix != netip.MustParsePrefix("203.0.113.7/32") {
		t.Errorf("bans = %+v, want only 203.0.113.7/32", bs)
	}
	// Each never-banned host was decided on once, and counted as skipped.
	eventually(t, "the skipped bans to be counted", func() bool {
		return metric(t, d, "smtpban_bans_skipped_total", "reason=never_ban") == float64(len(neverBanned))
	})
	// A ban is durable first, then in the firewall.
	var es []firewall.Entry
	eventually(t, "the ban in the firewall", func() bool {
		es, err = d.fw.List(ctx)
		return err == nil && len(es) > 0
	})
	if len(es) != 1 || es[0].Prefix != netip.MustParsePrefix("203.0.113.7/32") {
		t.Errorf("firewall holds %v, want only 203.0.113.7/32", es)
	}
}

// TestNeverBanManual bans never-banned addresses and prefixes by hand,
// directly and over the control socket: each is refused with the reason
// and nothing is banned.
func TestNeverBanManual(t *testing.T) {
	d, _, _ := startTest(t)
	ctx := context.Background()
	client := control.NewClient(d.cfg.Socket)
	prefixes := []string{"64:ff9b::/96", "2002::/16", "2002:7f00:1::/48", "126.0.0.0/7", "0.0.0.0/7", "224.0.0.0/8", "169.254.0.0/16"}
	for _, h := range neverBanned {
		a := netip.MustParseAddr(h)
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()).String())
	}
	for _, s := range prefixes {
		p := netip.MustParsePrefix(s)
		t.Run(s, func(t *testing.T) {
			_, err := d.Ban(ctx, p, "", time.Hour)
			if !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "never banned") {
				t.Errorf("Ban(%s) = %v, want ErrInvalid saying never banned", p, err)
			}
			_, err = client.Ban(ctx, p, "postfix-sasl", time.Hour)
			var ae *control.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "never banned") {
				t.Errorf("client Ban(%s) = %v, want 400 saying never banned", p, err)
			}
		})
	}
	if bs, err := d.Bans(ctx, ""); err != nil || len(bs) != 0 {
		t.Errorf("bans = %+v, %v; want none", bs, err)
	}
	if es, err := d.fw.List(ctx); err != nil || len(es) != 0 {
		t.Errorf("firewall holds %v, %v; want nothing", es, err)
	}
}

// TestNeverBanInStateAtStart: a ban an older version saved on an address
// now never banned must not stop the daemon from starting; the other bans
// are restored.
func TestNeverBanInStateAtStart(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "first line\n")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	stateDir := filepath.Join(dir, "state")
	writeTestFile(t, cfgPath, fmt.Sprintf(testConfig, stateDir, filepath.Join(dir, "s.sock"), "", logPath))
	st, err := state.Open(filepath.Join(stateDir, "smtpban.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, p := range []string{"2002:7f00:1::/48", "203.0.113.7/32"} {
		if _, err := st.PutBan(state.Ban{Prefix: netip.MustParsePrefix(p), Jail: "postfix-sasl", Since: now, Until: now.Add(time.Hour), Origin: "mx1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	d, _ := runTest(t, cfgPath, time.Hour)
	es, err := d.fw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Prefix != netip.MustParsePrefix("203.0.113.7/32") {
		t.Errorf("firewall holds %v, want only 203.0.113.7/32", es)
	}
}
