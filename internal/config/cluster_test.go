package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testJail = `jail "postfix-sasl" {
  source = "log"
  failregex = ["<HOST>"]
  programs = ["p"]
}
`

func TestClusterBlock(t *testing.T) {
	c := mustLoad(t, map[string]string{"smtpban.hcl": testSource + testJail + `
cluster "etcd" {
  endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
  prefix    = "/mail/bans/"
  host_name = "mx1"
  username  = "smtpban"
  password  = "secret"
  jails     = ["postfix-sasl"]
}
`})
	cl := c.Cluster
	if cl == nil {
		t.Fatal("no cluster")
	}
	if !slices.Equal(cl.Endpoints, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}) ||
		cl.Prefix != "/mail/bans/" || cl.HostName != "mx1" || cl.Username != "smtpban" ||
		cl.Password != "secret" || !slices.Equal(cl.Jails, []string{"postfix-sasl"}) {
		t.Errorf("cluster = %+v", cl)
	}

	c = mustLoad(t, map[string]string{"smtpban.hcl": testSource + `cluster "etcd" { endpoints = ["http://127.0.0.1:2379"] }` + "\n"})
	if c.Cluster.Prefix != DefaultClusterPrefix || c.Cluster.Jails != nil || c.Cluster.HostName != "" {
		t.Errorf("defaults: %+v", c.Cluster)
	}
	if c := mustLoad(t, map[string]string{"smtpban.hcl": testSource}); c.Cluster != nil {
		t.Errorf("no cluster block, but Cluster = %+v", c.Cluster)
	}
}

func TestClusterTLS(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "mx1.pem", "mx1-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := mustLoad(t, map[string]string{"smtpban.hcl": testSource + `cluster "etcd" {
  endpoints = ["https://10.0.0.1:2379"]
  tls {
    ca   = "` + dir + `/ca.pem"
    cert = "` + dir + `/mx1.pem"
    key  = "` + dir + `/mx1-key.pem"
  }
}
`})
	if tl := c.Cluster.TLS; tl == nil || tl.CA != dir+"/ca.pem" || tl.Cert != dir+"/mx1.pem" || tl.Key != dir+"/mx1-key.pem" {
		t.Errorf("tls = %+v", c.Cluster.TLS)
	}
}

func TestClusterErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"kind", `cluster "consul" {` + "\n" + `  endpoints = ["http://a:1"]` + "\n}\n",
			[]string{`smtpban.hcl:2:9: Unknown cluster kind: cluster "consul": expected "etcd"`}},
		{"no endpoints", "cluster \"etcd\" {\n  prefix = \"/x/\"\n}\n",
			[]string{`smtpban.hcl:2:16: Missing required argument: The argument "endpoints" is required`}},
		{"bad endpoint", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\", \"10.0.0.1\"]\n}\n",
			[]string{`smtpban.hcl:3:30: Invalid etcd endpoint: "10.0.0.1"`}},
		{"empty endpoints", "cluster \"etcd\" {\n  endpoints = []\n}\n",
			[]string{`smtpban.hcl:3:15: No etcd endpoints`}},
		{"prefix", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n  prefix = \"smtpban\"\n}\n",
			[]string{`smtpban.hcl:4:12: Invalid cluster prefix`}},
		{"host name", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n  host_name = \"mx 1\"\n}\n",
			[]string{`smtpban.hcl:4:15: Invalid host name`}},
		{"unknown jail", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n  jails = [\"postfix-sasl\", \"nope\"]\n}\n",
			[]string{`smtpban.hcl:4:28: Unknown jail: cluster jails: no jail named "nope"`}},
		{"password alone", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n  password = \"x\"\n}\n",
			[]string{`smtpban.hcl:4:14: Password without username`}},
		{"tls file", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n  tls {\n    ca = \"/nonexistent/ca.pem\"\n  }\n}\n",
			[]string{`smtpban.hcl:5:10: Cannot read TLS file`}},
		{"duplicate", "cluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n}\ncluster \"etcd\" {\n  endpoints = [\"http://a:1\"]\n}\n",
			[]string{`smtpban.hcl:5:9: Duplicate cluster: a cluster is already defined at smtpban.hcl:2:9`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := writeConfig(t, map[string]string{"smtpban.hcl": testSource + tt.body, "jails.d/j.hcl": testJail})
			_, ds := Load(main)
			got := relative(ds, main)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("diagnostic %d:\n got %s\nwant %s...", i, got[i], w)
				}
			}
		})
	}
}
