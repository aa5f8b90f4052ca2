package config

import (
	"strings"
	"testing"
	"time"

	"smtpban/internal/logline"
	"smtpban/jails"
)

// TestLoadSuccessregex checks the successregex attribute: decoded into
// Jail.Successregex, checked like a failregex (it needs <HOST>), and a
// warning when it captures no user (it would clear nothing).
func TestLoadSuccessregex(t *testing.T) {
	tests := []struct {
		name  string
		jail  string
		want  []string // diagnostics, each a prefix
		count int      // successregexes decoded, when no error
	}{
		{
			name:  "decoded",
			jail:  `  successregex = ["Login: user=<(?P<user>[^>]*)>, rip=<HOST>,", "sasl_username=(?P<user>\\S+) from <HOST>"]`,
			count: 2,
		},
		{
			name: "without HOST",
			jail: `  successregex = ["Login: user=<(?P<user>[^>]*)>"]`,
			want: []string{`smtpban.hcl:5:19: Missing <HOST>: a successregex must capture the client address with <HOST>: "Login: user=<(?P<user>[^>]*)>"`},
		},
		{
			name: "invalid",
			jail: `  successregex = ["Login: (<HOST>"]`,
			want: []string{"smtpban.hcl:5:19: Invalid regular expression: successregex: missing closing ): `Login: (<HOST>`"},
		},
		{
			name:  "without user: a warning",
			jail:  `  successregex = ["Login: rip=<HOST>,"]`,
			want:  []string{`smtpban.hcl:5:19: warning: Successregex without user: a successregex clears the failures of the user it captures with (?P<user>...); this one captures none`},
			count: 1,
		},
		{
			name: "not a list",
			jail: `  successregex = "Login: rip=<HOST>,"`,
			want: []string{"smtpban.hcl:5:18: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := writeConfig(t, map[string]string{"smtpban.hcl": testSource +
				"jail \"a\" {\n  source = \"log\"\n  failregex = [\"auth failed from <HOST>\"]\n" + tt.jail + "\n  programs = [\"dovecot\"]\n}\n"})
			c, ds := Load(main)
			got := relative(ds, main)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("diagnostic %d:\n got  %s\n want %s...", i, got[i], tt.want[i])
				}
			}
			if ds.HasErrors() {
				return
			}
			if n := len(c.Jails[0].Successregex); n != tt.count {
				t.Fatalf("%d successregexes, want %d", n, tt.count)
			}
			// The decoded patterns work: a success hit from the matcher.
			if tt.count == 2 {
				l := logline.Decode(logline.Syslog, "mx1 dovecot: Login: user=<bob>, rip=192.0.2.8, lip=x", time.Now())
				hs := jails.NewMatcher(c.Jails).Match("", &l, nil)
				if len(hs) != 1 || !hs[0].Success || hs[0].User != "bob" || hs[0].Addr.String() != "192.0.2.8" {
					t.Errorf("hits %+v, want one success of bob from 192.0.2.8", hs)
				}
			}
		})
	}
}
