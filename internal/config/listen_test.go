package config

import (
	"strings"
	"testing"

	"smtpban/jails"
)

// TestLoadMetricsAndSocketGroup checks the two optional global settings:
// their values when valid, and the exact file:line:col when not.
func TestLoadMetricsAndSocketGroup(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		metrics   string
		group     string
		wantDiags []string // prefixes of the diagnostics, in order; none if empty
	}{
		{name: "neither", src: ""},
		{name: "both", src: "metrics = \"127.0.0.1:9377\"\nsocket_group = \"smtpban\"\n", metrics: "127.0.0.1:9377", group: "smtpban"},
		{name: "metrics off", src: "metrics = \"\"\n"},
		{name: "IPv6 and every interface", src: "metrics = \"[::1]:9377\"\n", metrics: "[::1]:9377"},
		{name: "every interface", src: "metrics = \":9377\"\n", metrics: ":9377"},
		{name: "localhost", src: "metrics = \"localhost:9377\"\n", metrics: "localhost:9377"},
		{name: "numeric gid", src: "socket_group = \"4242\"\n", group: "4242"},
		{
			name:      "metrics without port",
			src:       "state_dir = \"/x\"\nmetrics = \"127.0.0.1\"\n",
			wantDiags: []string{`smtpban.hcl:2:11: Invalid listen address: metrics is "127.0.0.1"; it must be host:port`},
		},
		{
			name:      "metrics port out of range",
			src:       "metrics = \"127.0.0.1:70000\"\n",
			wantDiags: []string{`smtpban.hcl:1:11: Invalid listen address: metrics: port "70000" must be a number from 1 to 65535`},
		},
		{
			name:      "metrics port by service name",
			src:       "metrics = \"127.0.0.1:http\"\n",
			wantDiags: []string{`smtpban.hcl:1:11: Invalid listen address: metrics: port "http"`},
		},
		{
			name:      "metrics host name",
			src:       "metrics = \"mail.example.org:9377\"\n",
			wantDiags: []string{`smtpban.hcl:1:11: Invalid listen address: metrics: host "mail.example.org" must be an IP address`},
		},
		{
			name:      "metrics a bare port",
			src:       "metrics = 9377\n",
			wantDiags: []string{`smtpban.hcl:1:11: Invalid listen address: metrics is "9377"; it must be host:port`},
		},
		{
			name:      "empty group",
			src:       "socket_group = \"\"\n",
			wantDiags: []string{`smtpban.hcl:1:16: Invalid value: socket_group must not be empty`},
		},
		{
			name:      "bad group name",
			src:       "socket_group = \"mail admins\"\n",
			wantDiags: []string{`smtpban.hcl:1:16: Invalid group: socket_group is "mail admins"`},
		},
		{
			name:      "both wrong, both reported",
			src:       "metrics = \"x\"\nsocket_group = \"Root!\"\n",
			wantDiags: []string{`smtpban.hcl:1:11: Invalid listen address`, `smtpban.hcl:2:16: Invalid group`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := writeConfig(t, map[string]string{"smtpban.hcl": tt.src + "include = []\n"})
			cfg, ds := Load(main)
			got := relative(ds, main)
			if len(got) != len(tt.wantDiags) {
				t.Fatalf("diagnostics:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tt.wantDiags), tt.wantDiags)
			}
			for i, w := range tt.wantDiags {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("diagnostic %d = %q, want prefix %q", i, got[i], w)
				}
			}
			if len(tt.wantDiags) > 0 {
				if cfg != nil {
					t.Errorf("Load returned a config despite errors")
				}
				return
			}
			if cfg.Metrics != tt.metrics || cfg.SocketGroup != tt.group {
				t.Errorf("Metrics, SocketGroup = %q, %q; want %q, %q", cfg.Metrics, cfg.SocketGroup, tt.metrics, tt.group)
			}
		})
	}
}

func TestLoadMaxWindows(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		want     int
		wantDiag string
	}{
		{name: "default", src: "", want: jails.DefaultMaxKeys},
		{name: "set", src: "max_windows = 500000\n", want: 500000},
		{name: "too small", src: "state_dir = \"/x\"\nmax_windows = 10\n",
			wantDiag: `smtpban.hcl:2:15: Invalid max_windows: max_windows is 10; it must be a whole number from 1000 to 268435456`},
		{name: "not whole", src: "max_windows = 1e3.5\n", wantDiag: `smtpban.hcl:1:`},
		{name: "a string", src: "max_windows = \"lots\"\n", wantDiag: `smtpban.hcl:1:15: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := writeConfig(t, map[string]string{"smtpban.hcl": tt.src + "include = []\n"})
			cfg, ds := Load(main)
			got := relative(ds, main)
			if tt.wantDiag != "" {
				if len(got) != 1 || !strings.HasPrefix(got[0], tt.wantDiag) {
					t.Fatalf("diagnostics %q, want one starting %q", got, tt.wantDiag)
				}
				return
			}
			if len(got) != 0 || cfg.MaxWindows != tt.want {
				t.Fatalf("MaxWindows %d, diagnostics %q; want %d", cfg.MaxWindows, got, tt.want)
			}
		})
	}
}
