package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"smtpban/internal/config"
)

const testConfig = `
source "file" "mail" { path = "/nonexistent" }
ignore = ["192.0.2.0/24"]
jail "postfix-sasl" {
  source    = "mail"
  programs  = ["postfix/smtpd"]
  failregex = ["warning: [^\\s\\[]+\\[<HOST>\\]: SASL \\S+ authentication failed: [^,]*(?:, sasl_username=(?P<user>\\S+))?"]
  maxretry  = 3
  findtime  = "10m"
  bantime   = "1h"
  bantime_increment {
    factor = 2
    max    = "1d"
  }
}
jail "postfix-relay" {
  source    = "mail"
  enabled   = false
  programs  = ["postfix/smtpd"]
  failregex = ["NOQUEUE: reject: RCPT from [^\\s\\[]+\\[<HOST>\\]: 454 4\\.7\\.1 .*Relay access denied"]
  maxretry  = 2
}
`

func mustConfig(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "smtpban.hcl")
	if err := os.WriteFile(path, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func sasl(stamp, addr string) string {
	return "Nov 24 " + stamp + " mx postfix/smtpd[17]: warning: unknown[" + addr + "]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=bob"
}

// writeLog writes lines to a file whose mtime fixes the year of its stamps.
func writeLog(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 11, 25, 0, 0, 0, 0, time.Local)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return path
}

type event struct {
	Event    string    `json:"event"`
	File     string    `json:"file"`
	Line     int       `json:"line"`
	Jail     string    `json:"jail"`
	IP       string    `json:"ip"`
	User     string    `json:"user"`
	Time     time.Time `json:"time"`
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"`
}

func replayJSON(t *testing.T, o Options) []event {
	t.Helper()
	var out bytes.Buffer
	o.JSON, o.Out = true, &out
	if err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var evs []event
	dec := json.NewDecoder(&out)
	for dec.More() {
		var e event
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("output is not one JSON object per line: %v", err)
		}
		evs = append(evs, e)
	}
	return evs
}

func TestReplayJSON(t *testing.T) {
	cfg := mustConfig(t)
	log := writeLog(t,
		sasl("10:00:00", "203.0.113.7"),
		"Nov 24 10:00:01 mx postfix/smtpd[17]: connect from unknown[203.0.113.7]",
		sasl("10:00:02", "203.0.113.7"),
		sasl("10:00:03", "192.0.2.9"), // ignored network: matched, never banned
		sasl("10:00:04", "192.0.2.9"),
		sasl("10:00:05", "192.0.2.9"),
		sasl("10:00:06", "[::ffff:203.0.113.7]"),
		sasl("10:00:07", "unknown"),
		"Nov 24 10:00:08 mx postfix/smtpd[17]: NOQUEUE: reject: RCPT from unknown[198.51.100.4]: 454 4.7.1 <x@example.net>: Relay access denied; from=<a@b> to=<x@example.net>",
		"Nov 24 10:00:09 mx postfix/smtpd[17]: NOQUEUE: reject: RCPT from unknown[198.51.100.4]: 454 4.7.1 <x@example.net>: Relay access denied; from=<a@b> to=<x@example.net>",
	)
	evs := replayJSON(t, Options{Config: cfg, Files: []string{log}})
	var got []string
	for _, e := range evs {
		if e.Event == "ban" {
			got = append(got, "ban "+e.Jail+" "+e.IP+" "+e.Time.Format("15:04:05")+" "+e.Until.Sub(e.Time).String())
			continue
		}
		if e.File != log {
			t.Errorf("match file = %q, want %q", e.File, log)
		}
		got = append(got, e.Jail+" "+e.IP+" "+e.User+" "+e.Time.Format("15:04:05")+" line "+strconv.Itoa(e.Line))
	}
	want := []string{
		"postfix-sasl 203.0.113.7 bob 10:00:00 line 1",
		"postfix-sasl 203.0.113.7 bob 10:00:02 line 3",
		"postfix-sasl 192.0.2.9 bob 10:00:03 line 4",
		"postfix-sasl 192.0.2.9 bob 10:00:04 line 5",
		"postfix-sasl 192.0.2.9 bob 10:00:05 line 6",
		"postfix-sasl 203.0.113.7 bob 10:00:06 line 7",
		"ban postfix-sasl 203.0.113.7/32 10:00:06 1h0m0s",
		"postfix-relay 198.51.100.4  10:00:08 line 9",
		"postfix-relay 198.51.100.4  10:00:09 line 10",
		"ban postfix-relay 198.51.100.4/32 10:00:09 1h0m0s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("replay -json:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range evs {
		if e.Time.Year() != 2026 {
			t.Errorf("line %d: year %d, want 2026 (from the file's mtime)", e.Line, e.Time.Year())
		}
	}
}

// TestReplayEscalatesRepeatOffenders: each ban after the last one ended
// is one step longer (1h, 2h, 4h), as in the daemon: replay runs its ban
// manager.
func TestReplayEscalatesRepeatOffenders(t *testing.T) {
	cfg := mustConfig(t)
	var lines []string
	for _, hm := range []string{"10:00", "11:30", "14:00"} {
		for _, s := range []string{"00", "01", "02"} {
			lines = append(lines, sasl(hm+":"+s, "203.0.113.7"))
		}
	}
	var durs []string
	for _, e := range replayJSON(t, Options{Config: cfg, Jails: []string{"postfix-sasl"}, Files: []string{writeLog(t, lines...)}}) {
		if e.Event == "ban" {
			durs = append(durs, e.Until.Sub(e.Time).String())
		}
	}
	if want := "1h0m0s 2h0m0s 4h0m0s"; strings.Join(durs, " ") != want {
		t.Errorf("ban lengths = %v, want %s", durs, want)
	}
}

func TestReplaySummaryAndErrors(t *testing.T) {
	cfg := mustConfig(t)
	long := strings.Repeat("x", 70<<10)
	log := writeLog(t, sasl("10:00:00", "203.0.113.7"), long, sasl("10:00:01", "203.0.113.7"), sasl("10:00:02", "203.0.113.7"))
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Config: cfg, Files: []string{log}, Out: &out}); err != nil {
		t.Fatal(err)
	}
	// Compare rows field by field: the column widths are tabwriter's.
	var rows []string
	for _, l := range strings.Split(out.String(), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	text := strings.Join(rows, "\n")
	for _, want := range []string{"3 lines read, 1 skipped", "postfix-sasl 3 1 1", "postfix-relay (off) 0 0 0", "203.0.113.7 3 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if err := Run(context.Background(), Options{Config: cfg, Jails: []string{"nope"}, Files: []string{log}, Out: &out}); err == nil || !strings.Contains(err.Error(), `no jail named "nope"`) {
		t.Errorf("unknown jail: err = %v", err)
	}
	if err := Run(context.Background(), Options{Config: cfg, Files: []string{"/nonexistent/mail.log"}, Out: &out}); err == nil {
		t.Error("missing file: no error")
	}
}
