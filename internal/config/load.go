package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"smtpban/jails"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Defaults for what the main file leaves out.
const (
	DefaultStateDir = "/var/lib/smtpban"
	DefaultSocket   = "/run/smtpban/smtpband.sock"
	// DefaultInclude is used when the main file has no include attribute;
	// unlike an explicit include it may match nothing without a warning.
	// `include = []` turns it off.
	DefaultInclude = "jails.d/*.hcl"
)

// The bounds of max_windows: below a thousand a handful of scanners evict
// a real brute force; above 2^28 windows (~20 GB) is a typo.
const (
	MinMaxWindows = 1000
	MaxMaxWindows = 1 << 28
)

// maxFileBytes bounds what one config file may hold: a config is small,
// and a glob that matches something huge must not exhaust memory.
const maxFileBytes = 4 << 20

var mainSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "state_dir"},
		{Name: "socket"},
		{Name: "socket_group"},
		{Name: "metrics"},
		{Name: "include"},
		{Name: "ignore"},
		{Name: "max_windows"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "source", LabelNames: []string{"kind", "name"}},
		{Type: "jail", LabelNames: []string{"name"}},
		{Type: "firewall", LabelNames: []string{"kind"}},
		{Type: "account", LabelNames: []string{"pattern"}},
		{Type: "accounts"},
		{Type: "policy"},
		{Type: "cluster", LabelNames: []string{"kind"}},
	},
}

// Included files hold jails and the sources they read, nothing global.
var includeSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "source", LabelNames: []string{"kind", "name"}},
		{Type: "jail", LabelNames: []string{"name"}},
	},
}

// loader gathers the config and every problem across all files.
type loader struct {
	cfg   *Config
	diags Diagnostics
	files []string // loaded, main first, as named in diagnostics

	sourceDefs map[string]hcl.Range // name label of the first definition
	jailDefs   map[string]hcl.Range
	firewall   *hcl.Range
	cluster    *hcl.Range // the cluster block's label, once seen
	// clusterJails are the ranges of the cluster's jails elements.
	clusterJails []hcl.Range
	refs         []sourceRef
	defs         []*jailDef // the jails kept, for checks across blocks

	syntaxErrors bool // some file could not be decoded

	accountDefs     map[string]hcl.Range // account blocks by pattern
	accountsAt      *hcl.Range
	accountSourceAt []hcl.Range
	policyAt        *hcl.Range
}

// sourceRef is a jail's use of a source name, checked once every file is in.
type sourceRef struct {
	jail    *jailDef
	name    string
	subject hcl.Range
}

// Load reads the main config file at path and the files it includes, and
// validates all of it. It returns a Config only when there are no errors;
// the Diagnostics hold every error and warning found, in every file.
//
// Jail files are found through `include` (globs relative to the main
// file's directory, default "jails.d/*.hcl"). They may hold jail and
// source blocks. Without a firewall block the firewall is nftables with
// its defaults: whoever installs smtpban wants bans applied; "dryrun" must
// be asked for.
func Load(path string) (*Config, Diagnostics) {
	l := &loader{
		cfg: &Config{
			File:       path,
			StateDir:   DefaultStateDir,
			Socket:     DefaultSocket,
			MaxWindows: jails.DefaultMaxKeys,
			Firewall:   defaultFirewall("nftables"),
		},
		sourceDefs:  map[string]hcl.Range{},
		jailDefs:    map[string]hcl.Range{},
		accountDefs: map[string]hcl.Range{},
	}
	l.loadMain(path)
	l.checkRefs()
	l.checkAccounts()
	l.checkKeys()
	l.checkClusterJails()
	l.cfg.Files = l.files
	sortDiagnostics(l.diags, l.files)
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	return l.cfg, l.diags
}

// parse reads and parses one file; nil when it could not.
func (l *loader) parse(name string, from hcl.Range) hcl.Body {
	src, err := readFile(name)
	if err != nil {
		if from.Filename == "" {
			from = hcl.Range{Filename: name}
		}
		l.errorf(from, "Cannot read config file", "%v", err)
		return nil
	}
	l.files = append(l.files, name)
	f, hds := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	l.diags = append(l.diags, fromHCL(hds)...)
	if hds.HasErrors() || f == nil {
		// What hcl recovers after a syntax error is partial: decoding it
		// would add errors that only repeat this one.
		l.syntaxErrors = true
		return nil
	}
	return f.Body
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	src, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(src) > maxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxFileBytes)
	}
	return src, nil
}

func (l *loader) loadMain(path string) {
	body := l.parse(path, hcl.Range{})
	if body == nil {
		return
	}
	content, hds := body.Content(mainSchema)
	l.diags = append(l.diags, fromHCL(hds)...)

	attrs := content.Attributes
	if a, ok := attrs["state_dir"]; ok {
		if s, ok := l.nonEmpty(a.Expr, "state_dir"); ok {
			l.cfg.StateDir = s
		}
	}
	if a, ok := attrs["socket"]; ok {
		if s, ok := l.nonEmpty(a.Expr, "socket"); ok {
			l.cfg.Socket = s
		}
	}
	if a, ok := attrs["socket_group"]; ok {
		l.cfg.SocketGroup = l.group(a.Expr, "socket_group")
	}
	if a, ok := attrs["metrics"]; ok {
		l.cfg.Metrics = l.listenAddr(a.Expr, "metrics")
	}
	if a, ok := attrs["ignore"]; ok {
		l.cfg.Ignore = l.prefixes(a.Expr, "ignore")
	}
	if a, ok := attrs["max_windows"]; ok {
		l.cfg.MaxWindows, _ = l.integer(a.Expr, "max_windows", MinMaxWindows, MaxMaxWindows)
	}
	l.blocks(content.Blocks)
	l.includes(path, attrs["include"])
}

func (l *loader) blocks(bs hcl.Blocks) {
	for _, b := range bs {
		switch b.Type {
		case "source":
			l.source(b)
		case "jail":
			l.jail(b)
		case "firewall":
			l.firewallBlock(b)
		case "account":
			l.accountBlock(b)
		case "accounts":
			l.accountsBlock(b)
		case "policy":
			l.policyBlock(b)
		case "cluster":
			l.clusterBlock(b)
		}
	}
}

// includes loads the jail files that the include globs match, each once,
// in glob order and then name order.
func (l *loader) includes(mainPath string, attr *hcl.Attribute) {
	dir := filepath.Dir(mainPath)
	globs := []string{DefaultInclude}
	var ranges []hcl.Range
	if attr != nil {
		var ok bool
		globs, ranges, ok = l.strList(attr.Expr, "include")
		_ = ok // the good elements are still worth loading
	}
	seen := map[string]bool{filepath.Clean(mainPath): true}
	for i, g := range globs {
		pattern := g
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		var subject hcl.Range
		if ranges != nil {
			subject = ranges[i]
		}
		if err != nil { // only filepath.ErrBadPattern
			l.errorf(subject, "Invalid include pattern", "%q: %v", g, err)
			continue
		}
		if len(matches) == 0 {
			if ranges != nil {
				l.warnf(subject, "Include matches nothing", "no file matches %q", pattern)
			}
			continue
		}
		for _, m := range matches {
			if seen[filepath.Clean(m)] {
				continue
			}
			seen[filepath.Clean(m)] = true
			l.loadInclude(m, subject)
		}
	}
}

func (l *loader) loadInclude(name string, from hcl.Range) {
	body := l.parse(name, from)
	if body == nil {
		return
	}
	content, hds := body.Content(includeSchema)
	for i := range hds {
		// Say why a global setting is refused here.
		if hds[i].Summary == "Unsupported argument" || hds[i].Summary == "Unsupported block type" {
			hds[i].Detail += " Included files hold only jail and source blocks; global settings belong in the main file."
		}
	}
	l.diags = append(l.diags, fromHCL(hds)...)
	l.blocks(content.Blocks)
}

// defined records the first definition of a name, or reports a duplicate
// citing it.
func (l *loader) defined(defs map[string]hcl.Range, what, name string, at hcl.Range) bool {
	if first, ok := defs[name]; ok {
		l.errorf(at, "Duplicate "+what, "%s %q is already defined at %s", what, name, pos(first))
		return false
	}
	defs[name] = at
	return true
}

// durationOr is duration with a default for a missing attribute.
func (l *loader) durationOr(attrs hcl.Attributes, name string, def time.Duration) (time.Duration, bool) {
	a, ok := attrs[name]
	if !ok {
		return def, true
	}
	return l.duration(a.Expr, name)
}
