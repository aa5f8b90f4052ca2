package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary text to Load as a main file: it must never
// panic, and it returns a Config exactly when it reports no error.
func FuzzLoad(f *testing.F) {
	seeds := []string{
		"",
		testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"postfix*/*smtpd\"]\n}\n",
		"jail \"a\" {\n",
		"ignore = [\"1.2.3.4/99\", 5, null]\n",
		"firewall \"nftables\" { ports = [0, 1e99, -1, \"x\"] }\n",
		"jail \"a\" { bantime_increment { factor = 1e400 } bantime_increment {} }\n",
		"source \"journal\" \"j\" { match = [\"A=b\", \"+\"] trust = [\"_A=b\", \"B=c\", 1] files = [] directory = \"d\" }\n",
		"source \"file\" \"f\" { path = \"/x\" format = \"exim\" }\nsource \"file\" \"g\" { path = \"/y\" format = [\"dovecot\"] }\n",
		"include = [\"[\", \"\", \"nothing/*\"]\n",
		"state_dir = \"${x}\"\nsocket = <<EOT\n/a\nEOT\n",
		"jail \"b\" { source = \"\" programs = [\"*\", \"\", \"a b\", null] failregex = [\"(?P<user>\\\\S+) <HOST>\", \"a{1001}<HOST>\"] findtime = \"9999999999999w\" key = \"ip/24,ip6/64\" }\n",
		"\x00\xff{{{[[[\"",
		testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\\n(\"]\n  programs = [\"p\"]\n}\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	// The shipped configs are good seeds too.
	for _, p := range []string{"../../configs/smtpban.hcl", "../../configs/jails.d/postfix.hcl", "../../configs/jails.d/dovecot.hcl"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		main := filepath.Join(t.TempDir(), "smtpban.hcl")
		if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		c, ds := Load(main)
		if (c == nil) != ds.HasErrors() {
			t.Fatalf("config returned: %v, errors: %v", c != nil, ds.HasErrors())
		}
		for _, d := range ds {
			if s := d.String(); s == "" || strings.Contains(s, "\n") {
				t.Fatalf("diagnostic prints as %q", s)
			}
		}
	})
}
