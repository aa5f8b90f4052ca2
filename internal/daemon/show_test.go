package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smtpban/internal/control"
)

// TestShow runs a daemon, bans one address from log lines and leaves
// another with one failure, and asks for both, directly and through the
// control socket: the ban with the line that tipped it and its history,
// the other's live window; an address it knows nothing of shows empty.
func TestShow(t *testing.T) {
	d, cfgPath, logPath := startTest(t)
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
	eventually(t, "the source to read a line", func() bool {
		appendLine("postfix/smtpd[1]: connect from unknown[192.0.2.99]")
		st, err := d.Status(ctx, "")
		return err == nil && len(st.Sources) == 1 && st.Sources[0].Read > 0
	})
	fail := func(ip string) string {
		return "postfix/smtpd[1]: warning: unknown[" + ip + "]: SASL LOGIN authentication failed: x"
	}
	for range 3 {
		appendLine(fail("203.0.113.7"))
	}
	appendLine(fail("203.0.113.8"))
	eventually(t, "the ban and the other window", func() bool {
		v, err := d.Show(ctx, netip.MustParseAddr("203.0.113.8"))
		bs, _ := d.Bans(ctx, "")
		return err == nil && len(v.Failures) == 1 && len(bs) == 1
	})

	c := control.NewClient(filepath.Join(filepath.Dir(cfgPath), "s.sock"))
	banned, err := c.Show(ctx, netip.MustParseAddr("::ffff:203.0.113.7"))
	if err != nil {
		t.Fatal(err)
	}
	if banned.Addr != netip.MustParseAddr("203.0.113.7") || len(banned.Bans) != 1 {
		t.Fatalf("banned address: %+v", banned)
	}
	b := banned.Bans[0]
	if b.Jail != "postfix-sasl" || b.Prefix != netip.MustParsePrefix("203.0.113.7/32") || b.Failures != 3 || len(b.Lines) == 0 || !strings.Contains(b.Lines[len(b.Lines)-1], "unknown[203.0.113.7]") {
		t.Errorf("ban %+v", b)
	}
	if len(banned.History) != 1 || banned.History[0].Prefix != netip.MustParsePrefix("203.0.113.7/32") || banned.History[0].Count != 1 {
		t.Errorf("history %+v", banned.History)
	}

	// A ban by hand of the banned address continues its ban under the
	// name "manual"; the history still says the jail banned it.
	if _, err := c.Ban(ctx, netip.MustParsePrefix("203.0.113.7/32"), "", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	again, err := c.Show(ctx, netip.MustParseAddr("203.0.113.7"))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Bans) != 1 || again.Bans[0].Jail != "manual" {
		t.Errorf("after the ban by hand, bans %+v", again.Bans)
	}
	if len(again.History) != 1 || fmt.Sprint(jailCounts(again.History[0].Jails)) != "[postfix-sasl 1 manual 1]" {
		t.Errorf("after the ban by hand, history %+v, want postfix-sasl 1 and manual 1", again.History)
	}

	failing, err := c.Show(ctx, netip.MustParseAddr("203.0.113.8"))
	if err != nil {
		t.Fatal(err)
	}
	if len(failing.Bans) != 0 || len(failing.History) != 0 || len(failing.Failures) != 1 {
		t.Fatalf("failing address: %+v", failing)
	}
	if f := failing.Failures[0]; f.Jail != "postfix-sasl" || f.Key != netip.MustParsePrefix("203.0.113.8/32") || f.Count != 1 || f.MaxRetry != 3 || len(f.Times) != 1 {
		t.Errorf("failures %+v", f)
	}

	none, err := c.Show(ctx, netip.MustParseAddr("2001:db8::1"))
	if err != nil || len(none.Bans)+len(none.History)+len(none.Failures) != 0 || none.Bans == nil {
		t.Errorf("unknown address: %+v, %v (want empty lists, not null)", none, err)
	}
}

// jailCounts flattens per-jail ban counts, sorted by jail name.
func jailCounts(js []control.JailBans) []any {
	slices.SortFunc(js, func(a, b control.JailBans) int { return strings.Compare(b.Jail, a.Jail) })
	var out []any
	for _, j := range js {
		out = append(out, j.Jail, j.Count)
	}
	return out
}
