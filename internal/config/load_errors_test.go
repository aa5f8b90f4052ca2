package config

import (
	"strings"
	"testing"
)

// TestLoadErrors checks each kind of problem is reported at the exact
// file:line:col of the value at fault, with its summary: each want entry is
// a prefix of one diagnostic's String(), and there are no others.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name:  "syntax error",
			files: map[string]string{"smtpban.hcl": "state_dir = \"/x\"\njail \"a\" {\n  source = \"log\"\n"},
			want:  []string{"smtpban.hcl:2:10: Unclosed configuration block"},
		},
		{
			name:  "invalid escape in a regex string",
			files: map[string]string{"smtpban.hcl": testSource + `jail "a" {` + "\n" + `  source = "log"` + "\n" + `  failregex = ["\d <HOST>"]` + "\n}\n"},
			want:  []string{"smtpban.hcl:4:17: Invalid escape sequence"},
		},
		{
			name:  "unknown attribute",
			files: map[string]string{"smtpban.hcl": "state_dir = \"/x\"\nstatedir = \"/y\"\n"},
			want:  []string{`smtpban.hcl:2:1: Unsupported argument: An argument named "statedir" is not expected here.`},
		},
		{
			name:  "unknown block",
			files: map[string]string{"smtpban.hcl": "webhook \"x\" {\n}\n"},
			want:  []string{"smtpban.hcl:1:1: Unsupported block type"},
		},
		{
			name:  "unknown attribute in a jail",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  max_retry = 3\n  programs = [\"p\"]\n}\n"},
			want:  []string{"smtpban.hcl:5:3: Unsupported argument"},
		},
		{
			name:  "wrong type",
			files: map[string]string{"smtpban.hcl": "state_dir = [\"/x\"]\n"},
			want:  []string{"smtpban.hcl:1:13: Incorrect value type: state_dir must be a string, not tuple"},
		},
		{
			name:  "number expected",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  maxretry = \"five\"\n  programs = [\"p\"]\n}\n"},
			want:  []string{"smtpban.hcl:5:14: Incorrect value type: maxretry must be a number, not string"},
		},
		{
			name:  "list expected",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = \"<HOST>\"\n  programs = [\"p\"]\n}\n"},
			want:  []string{"smtpban.hcl:4:15: Invalid expression: failregex must be a list"},
		},
		{
			name: "bad regex, at its element",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n" +
				"  failregex = [\n    \"fine <HOST>\",\n    \"broken (<HOST>\",\n  ]\n  ignoreregex = [\"a[\"]\n  programs = [\"p\"]\n}\n"},
			want: []string{
				"smtpban.hcl:6:5: Invalid regular expression: failregex: missing closing ): `broken (<HOST>`",
				"smtpban.hcl:8:18: Invalid regular expression: ignoreregex: missing closing ]: `[`",
			},
		},
		{
			name:  "failregex without HOST",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\", \"auth failed\"]\n  programs = [\"p\"]\n}\n"},
			want:  []string{`smtpban.hcl:4:26: Missing <HOST>: a failregex must capture the client address with <HOST>: "auth failed"`},
		},
		{
			name:  "missing failregex",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  programs = [\"p\"]\n}\n"},
			want:  []string{`smtpban.hcl:2:10: Missing required argument: The argument "failregex" is required`},
		},
		{
			name:  "empty failregex",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = []\n  programs = [\"p\"]\n}\n"},
			want:  []string{"smtpban.hcl:4:15: Missing failregex"},
		},
		{
			name:  "unknown source",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"mail\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n"},
			want:  []string{`smtpban.hcl:3:12: Unknown source: jail "a" reads source "mail", which no source block defines; defined: log`},
		},
		{
			name: "unknown source in sources list and in a disabled jail",
			files: map[string]string{"smtpban.hcl": testSource +
				"jail \"a\" {\n  sources = [\"log\", \"journal\"]\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n" +
				"jail \"b\" {\n  enabled = false\n  source = \"exim\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n"},
			want: []string{
				"smtpban.hcl:3:21: Unknown source",
				`smtpban.hcl:9:12: warning: Unknown source: jail "b" reads source "exim"`,
			},
		},
		{
			name:  "missing source",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n"},
			want:  []string{"smtpban.hcl:2:1: Missing source"},
		},
		{
			name:  "source and sources",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  sources = [\"log\"]\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n"},
			want:  []string{"smtpban.hcl:4:13: Conflicting arguments"},
		},
		{
			name: "bad CIDR, global and per jail",
			files: map[string]string{"smtpban.hcl": "ignore = [\"192.0.2.0/24\", \"10.0.0.0/33\", \"2001:db8::/48\"]\n" + testSource +
				"jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  ignore = [\"office\"]\n  programs = [\"p\"]\n}\n"},
			want: []string{
				`smtpban.hcl:1:27: Invalid CIDR: ignore: "10.0.0.0/33" is neither an address nor a CIDR prefix`,
				`smtpban.hcl:6:13: Invalid CIDR: ignore: "office"`,
			},
		},
		{
			name: "bad durations",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n" +
				"  findtime = \"10x\"\n  bantime = \"0\"\n  bantime_increment {\n    factor = 2\n    max = \"1mo\"\n  }\n  programs = [\"p\"]\n}\n"},
			want: []string{
				`smtpban.hcl:5:14: Invalid duration: findtime: invalid duration "10x": unknown unit "x"`,
				`smtpban.hcl:6:13: Invalid duration: bantime is "0"; it must be longer than 0`,
				`smtpban.hcl:9:11: Invalid duration: max: invalid duration "1mo"`,
			},
		},
		{
			name: "increment max below bantime, factor below 1",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n" +
				"  bantime = \"2h\"\n  bantime_increment {\n    factor = 0.5\n    max = \"1h\"\n  }\n  programs = [\"p\"]\n}\n"},
			want: []string{
				"smtpban.hcl:7:14: Invalid factor",
				"smtpban.hcl:8:11: Invalid duration: max (1h0m0s) is shorter than bantime (2h0m0s)",
			},
		},
		{
			name:  "bad key",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  key = \"ip/99\"\n  programs = [\"p\"]\n}\n"},
			want:  []string{`smtpban.hcl:5:9: Invalid key: key "ip/99": IPv4 prefix length 99 is outside 8..32`},
		},
		{
			name: "key wider than the firewall adds",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  key = \"ip/8\"\n  programs = [\"p\"]\n}\n" +
				"firewall \"nftables\" {\n  min_prefix_v4 = 16\n}\n"},
			want: []string{`smtpban.hcl:5:9: Key wider than the firewall allows: jail "a" counts on`},
		},
		{
			name: "widen wider than the firewall adds, and not wider than the key",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  key = \"ip6/64\"\n  programs = [\"p\"]\n  widen {\n    after = 3\n    ip6 = 24\n    ip4 = 32\n  }\n}\n" +
				"firewall \"nftables\" {\n  min_prefix_v6 = 32\n}\n"},
			want: []string{
				"smtpban.hcl:9:11: Widen wider than the firewall allows: jail \"a\" widens IPv6 bans to /24, but the firewall's min_prefix_v6 is 32",
				"smtpban.hcl:10:11: Invalid ip4: ip4 is 32; it must be a whole number from 8 to 31",
			},
		},
		{
			name:  "widen without a prefix, after below 2",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n  widen {\n    after = 1\n  }\n}\n"},
			want: []string{
				"smtpban.hcl:6:3: Missing widen prefix",
				"smtpban.hcl:7:13: Invalid after: after is 1; it must be a whole number from 2 to 65536",
			},
		},
		{
			name: "maxretry below 1",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  maxretry = 0\n  programs = [\"p\"]\n}\n" +
				"jail \"b\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  maxretry = 2.5\n  programs = [\"p\"]\n}\n"},
			want: []string{
				"smtpban.hcl:5:14: Invalid maxretry: maxretry is 0; it must be a whole number, at least 1",
				"smtpban.hcl:11:14: Invalid maxretry: maxretry is 2.5",
			},
		},
		{
			name: "duplicate jail across files cites the first",
			files: map[string]string{
				"smtpban.hcl":       testSource + "jail \"sasl\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n",
				"jails.d/extra.hcl": "\n\njail \"sasl\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n",
			},
			want: []string{`jails.d/extra.hcl:3:6: Duplicate jail: jail "sasl" is already defined at smtpban.hcl:2:6`},
		},
		{
			name:  "duplicate source",
			files: map[string]string{"smtpban.hcl": testSource + "source \"journal\" \"log\" {\n  match = [\"SYSLOG_IDENTIFIER=postfix/smtpd\"]\n  trust = [\"_SYSTEMD_UNIT=postfix@-.service\"]\n}\n"},
			want:  []string{`smtpban.hcl:2:18: Duplicate source: source "log" is already defined at smtpban.hcl:1:15`},
		},
		{
			name:  "unknown source kind",
			files: map[string]string{"smtpban.hcl": "source \"syslog\" \"log\" {\n  path = \"/x\"\n}\n"},
			want:  []string{`smtpban.hcl:1:8: Unknown source kind: source "log" has kind "syslog"`},
		},
		{
			name:  "bad journal match",
			files: map[string]string{"smtpban.hcl": "source \"journal\" \"j\" {\n  match = [\"_SYSTEMD_UNIT=postfix.service\", \"postfix/smtpd\"]\n  trust = [\"_SYSTEMD_UNIT=postfix@-.service\"]\n}\n"},
			want:  []string{`smtpban.hcl:2:45: Invalid journal match: "postfix/smtpd"`},
		},
		{
			name:  "unknown firewall kind",
			files: map[string]string{"smtpban.hcl": "firewall \"iptables\" {\n}\n"},
			want:  []string{`smtpban.hcl:1:10: Unknown firewall kind: firewall "iptables": expected "nftables" or "dryrun"`},
		},
		{
			name:  "duplicate firewall",
			files: map[string]string{"smtpban.hcl": "firewall \"dryrun\" {}\nfirewall \"nftables\" {}\n"},
			want:  []string{"smtpban.hcl:2:10: Duplicate firewall: a firewall is already defined at smtpban.hcl:1:10"},
		},
		{
			name: "bad firewall values",
			files: map[string]string{"smtpban.hcl": "firewall \"nftables\" {\n  table = \"smt ban\"\n  ports = [25, 70000]\n" +
				"  min_prefix_v6 = 129\n  resync = \"soon\"\n}\n"},
			want: []string{
				"smtpban.hcl:2:11: Invalid table name",
				"smtpban.hcl:3:16: Invalid port: port is 70000; it must be a whole number from 1 to 65535",
				"smtpban.hcl:4:19: Invalid min_prefix_v6",
				"smtpban.hcl:5:12: Invalid duration",
			},
		},
		{
			name:  "dryrun takes no settings",
			files: map[string]string{"smtpban.hcl": "firewall \"dryrun\" {\n  table = \"x\"\n}\n"},
			want:  []string{"smtpban.hcl:2:3: Unsupported argument"},
		},
		{
			name:  "include matches nothing",
			files: map[string]string{"smtpban.hcl": "include = [\"jails.d/*.hcl\", \"more/*.hcl\"]\n", "jails.d/a.hcl": ""},
			want:  []string{"smtpban.hcl:1:29: warning: Include matches nothing"},
		},
		{
			name:  "bad include pattern",
			files: map[string]string{"smtpban.hcl": "include = [\"[\"]\n"},
			want:  []string{"smtpban.hcl:1:12: Invalid include pattern"},
		},
		{
			name: "global setting in an included file",
			files: map[string]string{
				"smtpban.hcl":   "",
				"jails.d/a.hcl": "\nstate_dir = \"/x\"\nfirewall \"dryrun\" {}\n",
			},
			want: []string{
				"jails.d/a.hcl:2:1: Unsupported argument",
				"jails.d/a.hcl:3:1: Unsupported block type",
			},
		},
		{
			name:  "variables are not allowed",
			files: map[string]string{"smtpban.hcl": "state_dir = dir\n"},
			want:  []string{"smtpban.hcl:1:13: Variables not allowed"},
		},
		{
			name:  "bad jail name",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a b\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"p\"]\n}\n"},
			want:  []string{`smtpban.hcl:2:6: Invalid jail name: "a b"`},
		},
		{
			name:  "missing programs",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n}\n"},
			want:  []string{`smtpban.hcl:2:1: Missing programs: jail "a" needs programs = [...]`},
		},
		{
			name:  "empty programs",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = []\n}\n"},
			want:  []string{`smtpban.hcl:5:14: Missing programs: jail "a" reads no program`},
		},
		{
			name:  "a program glob of stars only matches every program",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"dovecot\", \"*\"]\n}\n"},
			want:  []string{`smtpban.hcl:5:26: Invalid program: "*" matches every program`},
		},
		{
			name:  "a program glob with a pid is no ident",
			files: map[string]string{"smtpban.hcl": testSource + "jail \"a\" {\n  source = \"log\"\n  failregex = [\"<HOST>\"]\n  programs = [\"postfix/smtpd[1]\"]\n}\n"},
			want:  []string{`smtpban.hcl:5:15: Invalid program: "postfix/smtpd[1]": a program (syslog ident) holds no space, '[', ']' or ':'`},
		},
		{
			name:  "unknown file format",
			files: map[string]string{"smtpban.hcl": "source \"file\" \"log\" {\n  path   = \"/var/log/mail.log\"\n  format = \"json\"\n}\n"},
			want:  []string{`smtpban.hcl:3:12: Invalid format: format "json": expected "syslog", "dovecot" or "exim"`},
		},
		{
			name:  "journal source without trust",
			files: map[string]string{"smtpban.hcl": "source \"journal\" \"j\" {\n  match = [\"_SYSTEMD_UNIT=postfix@-.service\"]\n}\n"},
			want:  []string{`smtpban.hcl:1:1: Missing trust: journal source "j" needs trust = ["_SYSTEMD_UNIT=..."]`},
		},
		{
			name:  "empty trust",
			files: map[string]string{"smtpban.hcl": "source \"journal\" \"j\" {\n  match = [\"_SYSTEMD_UNIT=postfix@-.service\"]\n  trust = []\n}\n"},
			want:  []string{`smtpban.hcl:3:11: Missing trust: source "j" trusts no entry`},
		},
		{
			name:  "trust in a field the sender writes",
			files: map[string]string{"smtpban.hcl": "source \"journal\" \"j\" {\n  match = [\"SYSLOG_IDENTIFIER=postfix/smtpd\"]\n  trust = [\"_SYSTEMD_UNIT=postfix@-.service\", \"SYSLOG_IDENTIFIER=postfix/smtpd\"]\n}\n"},
			want:  []string{`smtpban.hcl:3:47: Invalid trust: "SYSLOG_IDENTIFIER=postfix/smtpd": expected _FIELD=value`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := writeConfig(t, tt.files)
			c, ds := Load(main)
			got := relative(ds, main)
			if ds.HasErrors() != (c == nil) {
				t.Errorf("Load returned config %v with HasErrors() = %v", c != nil, ds.HasErrors())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("diagnostic %d:\n got  %s\n want %s...", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestLoadAllErrorsAtOnce checks that problems in several files and
// blocks are all reported by one Load, in file and position order.
func TestLoadAllErrorsAtOnce(t *testing.T) {
	main := writeConfig(t, map[string]string{
		"smtpban.hcl": `ignore = ["nope"]
source "file" "log" { path = "/var/log/mail.log" }
jail "a" {
  source    = "log"
  failregex = ["(<HOST>"]
  findtime  = "1y"
  programs  = ["p"]
}
firewall "pf" {}
`,
		"jails.d/b.hcl": `jail "b" {
  source    = "missing"
  failregex = ["no host here"]
  key       = "ip6/200"
  maxretry  = -1
  programs  = ["p"]
}
jail "a" {
  source    = "log"
  failregex = ["<HOST>"]
  programs  = ["p"]
}
`,
	})
	c, ds := Load(main)
	if c != nil {
		t.Fatal("Load returned a config despite errors")
	}
	want := []string{
		"smtpban.hcl:1:11: Invalid CIDR",
		"smtpban.hcl:5:16: Invalid regular expression",
		"smtpban.hcl:6:15: Invalid duration",
		"smtpban.hcl:9:10: Unknown firewall kind",
		"jails.d/b.hcl:2:15: Unknown source",
		"jails.d/b.hcl:3:16: Missing <HOST>",
		"jails.d/b.hcl:4:15: Invalid key",
		"jails.d/b.hcl:5:15: Invalid maxretry",
		"jails.d/b.hcl:8:6: Duplicate jail: jail \"a\" is already defined at smtpban.hcl:3:6",
	}
	got := relative(ds, main)
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("diagnostic %d:\n got  %s\n want %s...", i, got[i], want[i])
		}
	}
	// The one formatter: Error() is every String(), one per line.
	if n := strings.Count(ds.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d", n, len(want))
	}
}

func TestLoadMissingFile(t *testing.T) {
	c, ds := Load("/nonexistent/smtpban.hcl")
	if c != nil || len(ds) != 1 {
		t.Fatalf("Load = %v, %v; want one diagnostic", c, ds)
	}
	if got, want := ds[0].String(), "/nonexistent/smtpban.hcl: Cannot read config file: open /nonexistent/smtpban.hcl: no such file or directory"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
