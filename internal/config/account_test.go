package config

import (
	"strings"
	"testing"
	"time"

	"smtpban/internal/account"
)

func TestAccountConfig(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"smtpban.hcl": testSource + `
policy {
  listen = "unix:/run/smtpban/policy.sock"
}
accounts {
  sources         = ["log"]
  ban_time        = "2d"
  guess_addresses = 40
  hook            = ["/usr/local/sbin/lock-account", "--notify"]
}
account "newsletter@example.test" {
  messages_per_hour   = 2000
  recipients_per_hour = 20000
  action              = "defer"
  text                = "newsletter over its limit"
}
account "*@example.test" {
  messages_per_hour = 50
}
`})
	if cfg.Policy != "unix:/run/smtpban/policy.sock" {
		t.Errorf("policy %q", cfg.Policy)
	}
	s := cfg.Accounts
	if s == nil {
		t.Fatal("no account watch")
	}
	if s.BanTime != 48*time.Hour || s.GuessAddresses != 40 || len(s.Hook) != 2 || s.Sources[0] != "log" || s.GuessWindow != account.DefaultGuessWindow {
		t.Errorf("settings %+v", s)
	}
	if l := s.For("newsletter@example.test"); l.MessagesPerHour != 2000 || l.Action != account.Defer || l.Text != "newsletter over its limit" || l.MessagesPerDay != account.DefaultLimits.MessagesPerDay {
		t.Errorf("newsletter limits %+v", l)
	}
	if l := s.For("bob@example.test"); l.MessagesPerHour != 50 || l.Action != account.Hold {
		t.Errorf("bob's limits %+v", l)
	}
	// No "*" block: the defaults hold for everyone else.
	if l := s.For("carol@elsewhere"); l != account.DefaultLimits {
		t.Errorf("carol's limits %+v, want the defaults", l)
	}

	if off := mustLoad(t, map[string]string{"smtpban.hcl": testSource}); off.Accounts != nil || off.Policy != "" {
		t.Errorf("no account blocks, but the watch is on: %+v %q", off.Accounts, off.Policy)
	}
}

func TestAccountConfigErrors(t *testing.T) {
	tests := []struct {
		name, hcl string
		want      []string
	}{
		{"bad action", "account \"*\" {\n  action = \"drop\"\n}\n",
			[]string{`smtpban.hcl:3:12: Invalid action: action is "drop"; it must be "hold", "defer" or "reject"`}},
		{"negative limit", "account \"alice\" {\n  messages_per_hour = -1\n}\n",
			[]string{"smtpban.hcl:3:23: Invalid messages_per_hour"}},
		{"duplicate pattern", "account \"*\" {\n}\naccount \"*\" {\n}\n",
			[]string{`smtpban.hcl:4:9: Duplicate account: account "*" is already defined at smtpban.hcl:2:9`}},
		{"unknown attribute", "account \"*\" {\n  messages_per_minute = 5\n}\n",
			[]string{"smtpban.hcl:3:3: Unsupported argument"}},
		{"policy without a port", "policy {\n  listen = \"127.0.0.1\"\n}\n",
			[]string{"smtpban.hcl:3:12: Invalid listen address"}},
		{"policy on a relative socket", "policy {\n  listen = \"unix:policy.sock\"\n}\n",
			[]string{"smtpban.hcl:3:12: Invalid listen address"}},
		{"unknown source", "accounts {\n  sources = [\"nope\"]\n}\n",
			[]string{`smtpban.hcl:3:14: Unknown source: accounts reads source "nope"`}},
		{"relative hook", "accounts {\n  hook = [\"lock-account\"]\n}\n",
			[]string{"smtpban.hcl:3:10: Invalid hook"}},
		{"bad duration", "accounts {\n  guess_window = \"a day\"\n}\n",
			[]string{"smtpban.hcl:3:18: Invalid duration"}},
		{"reply text with a newline", "account \"*\" {\n  text = \"a\\nb\"\n}\n",
			[]string{"smtpban.hcl:3:10: Invalid text"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			main := writeConfig(t, map[string]string{"smtpban.hcl": testSource + tc.hcl})
			_, ds := Load(main)
			got := relative(ds, main)
			if len(got) != len(tc.want) {
				t.Fatalf("diagnostics %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("diagnostic %q, want prefix %q", got[i], w)
				}
			}
		})
	}
}
