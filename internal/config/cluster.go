package config

import (
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DefaultClusterPrefix is where bans live in etcd unless prefix says.
const DefaultClusterPrefix = "/smtpban/"

// Cluster is a `cluster "etcd" {}` block: the ban list shared with other
// mail hosts. Nil in Config when there is none: the daemon is fully local.
type Cluster struct {
	Kind      string   // "etcd"
	Endpoints []string // URLs, http:// or https://
	Prefix    string   // ends in "/"
	HostName  string   // this host's name in the cluster ("" : the host name)
	TLS       *ClusterTLS
	Username  string
	Password  string
	// Jails whose bans are published; nil: every jail. Manual bans are
	// always published.
	Jails []string
}

// ClusterTLS names the files for TLS to etcd: the CA that signed the
// servers' certificates, and this host's client certificate and key.
type ClusterTLS struct {
	CA, Cert, Key string
}

var clusterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "endpoints", Required: true},
		{Name: "prefix"},
		{Name: "host_name"},
		{Name: "username"},
		{Name: "password"},
		{Name: "jails"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
}

var clusterTLSSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ca"}, {Name: "cert"}, {Name: "key"}},
}

// A host name goes into every ban's value and the status; keep it a name.
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (l *loader) clusterBlock(b *hcl.Block) {
	kind, kindAt := b.Labels[0], b.LabelRanges[0]
	if l.cluster != nil {
		l.errorf(kindAt, "Duplicate cluster", "a cluster is already defined at %s", pos(*l.cluster))
		return
	}
	l.cluster = &kindAt
	if kind != "etcd" {
		l.errorf(kindAt, "Unknown cluster kind", "cluster %q: expected \"etcd\"", kind)
		return
	}
	c := &Cluster{Kind: kind, Prefix: DefaultClusterPrefix}
	content, hds := b.Body.Content(clusterSchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	attrs := content.Attributes
	if a, ok := attrs["endpoints"]; ok {
		eps, ranges, _ := l.strList(a.Expr, "endpoints")
		for i, e := range eps {
			u, err := url.Parse(e)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
				l.errorf(ranges[i], "Invalid etcd endpoint", "%q: expected a URL such as \"https://10.0.0.1:2379\"", e)
				continue
			}
			c.Endpoints = append(c.Endpoints, e)
		}
		if len(eps) == 0 && len(ranges) == 0 {
			l.errorf(a.Expr.Range(), "No etcd endpoints", "endpoints is empty: name at least one etcd member")
		}
	}
	if a, ok := attrs["prefix"]; ok {
		if s, ok := l.nonEmpty(a.Expr, "prefix"); ok {
			if !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/") {
				l.errorf(a.Expr.Range(), "Invalid cluster prefix", "%q: expected a key prefix that starts and ends with \"/\", such as \"/smtpban/\"", s)
			} else {
				c.Prefix = s
			}
		}
	}
	if a, ok := attrs["host_name"]; ok {
		if s, ok := l.str(a.Expr, "host_name"); ok {
			if hostNameRE.MatchString(s) {
				c.HostName = s
			} else {
				l.errorf(a.Expr.Range(), "Invalid host name", "%q: letters, digits, '.', '-' and '_', at most 63", s)
			}
		}
	}
	if a, ok := attrs["username"]; ok {
		c.Username, _ = l.nonEmpty(a.Expr, "username")
	}
	if a, ok := attrs["password"]; ok {
		c.Password, _ = l.str(a.Expr, "password")
		if _, user := attrs["username"]; !user {
			l.errorf(a.Expr.Range(), "Password without username", "set username too, or neither")
		}
	}
	if a, ok := attrs["jails"]; ok {
		js, ranges, _ := l.strList(a.Expr, "jails")
		c.Jails = append([]string{}, js...)
		l.clusterJails = ranges
	}
	for i, tb := range content.Blocks {
		if i > 0 {
			l.errorf(tb.DefRange, "Duplicate tls block", "the cluster already has one at %s", pos(content.Blocks[0].DefRange))
			continue
		}
		c.TLS = l.clusterTLS(tb)
	}
	l.cfg.Cluster = c
}

func (l *loader) clusterTLS(b *hcl.Block) *ClusterTLS {
	content, hds := b.Body.Content(clusterTLSSchema)
	l.diags = append(l.diags, fromHCL(hds)...)
	t := &ClusterTLS{}
	for name, dst := range map[string]*string{"ca": &t.CA, "cert": &t.Cert, "key": &t.Key} {
		a, ok := content.Attributes[name]
		if !ok {
			continue
		}
		s, ok := l.nonEmpty(a.Expr, name)
		if !ok {
			continue
		}
		if _, err := os.Stat(s); err != nil {
			l.errorf(a.Expr.Range(), "Cannot read TLS file", "%s: %v", name, err)
			continue
		}
		*dst = s
	}
	_, cert := content.Attributes["cert"]
	_, key := content.Attributes["key"]
	if cert != key {
		l.errorf(b.DefRange, "Incomplete client certificate", "set cert and key together")
	}
	return t
}

// checkClusterJails reports published jails the config does not define,
// once every file is in.
func (l *loader) checkClusterJails() {
	c := l.cfg.Cluster
	if c == nil || l.syntaxErrors {
		return
	}
	for i, name := range c.Jails {
		if _, ok := l.jailDefs[name]; !ok && i < len(l.clusterJails) {
			l.errorf(l.clusterJails[i], "Unknown jail", "cluster jails: no jail named %q", name)
		}
	}
}
