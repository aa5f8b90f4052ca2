package config

import (
	"strings"
	"testing"
)

// TestFail2banSyntaxWarns checks that fail2ban's filter syntax pasted into
// a pattern is named in a warning at the pattern, and that patterns of
// smtpban's own syntax (<HOST>, named groups, literal percent signs) draw
// none. Such a pattern still loads: it is valid regex, it just never matches.
func TestFail2banSyntaxWarns(t *testing.T) {
	tests := []struct {
		name, attr, pattern string
		want                string // prefix of the one diagnostic; "" for none
	}{
		{"prefix_line interpolation", "failregex", `^%(__prefix_line)sSASL LOGIN authentication failed from <HOST>`,
			`smtpban.hcl:5:16: warning: fail2ban syntax: this failregex never matches as written: %(__prefix_line)s is fail2ban's interpolation`},
		{"bare __prefix_line", "failregex", `__prefix_line auth failed from <HOST>`,
			`smtpban.hcl:5:16: warning: fail2ban syntax: this failregex never matches as written: __prefix_line`},
		{"F-USER tag", "failregex", `auth failed, user=<F-USER>\S+</F-USER> from <HOST>`,
			`smtpban.hcl:5:16: warning: fail2ban syntax: this failregex never matches as written: <F-USER> is fail2ban's capture tag; write (?P<user>...) instead`},
		{"other interpolation", "ignoreregex", `%(known/ignoreregex)s`,
			`smtpban.hcl:5:18: warning: fail2ban syntax: this ignoreregex never matches as written: %(known/ignoreregex)s`},
		{"ADDR tag", "successregex", `Login: user=<(?P<user>[^>]*)>, rip=<ADDR>, x=<HOST>`,
			`smtpban.hcl:5:19: warning: fail2ban syntax: this successregex never matches as written: <ADDR> is fail2ban's address tag`},
		{"own syntax", "failregex", `auth failed, 100% sure, user=(?P<user>\S+) from <HOST>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.attr != "failregex" {
				extra = "  failregex = [\"auth failed from <HOST>\"]\n"
			}
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(tt.pattern)
			main := writeConfig(t, map[string]string{"smtpban.hcl": testSource +
				"jail \"a\" {\n  source = \"log\"\n  programs = [\"dovecot\"]\n  " + tt.attr + " = [\"" + q + "\"]\n" + extra + "}\n"})
			_, ds := Load(main)
			got := relative(ds, main)
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("got diagnostics, want none:\n%s", strings.Join(got, "\n"))
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Fatalf("got:\n%s\nwant one diagnostic starting:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}
