package config

import (
	"regexp"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"smtpban/internal/logline"
)

var fileSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path", Required: true}, {Name: "format"}},
}

var journalSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "match"},
		{Name: "trust"},
		{Name: "directory"},
		{Name: "files"},
	},
}

// nameRE is what source and jail names may be: they end up in state keys,
// logs and command lines.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// journalMatchRE is a journalctl match, FIELD=value; "+" is journalctl's OR.
var journalMatchRE = regexp.MustCompile(`^(\+|[A-Z_][A-Z0-9_]*=.*)$`)

// trustRE is a trusted-field match: journald sets the fields that begin
// with '_' from the sender's credentials (_SYSTEMD_UNIT, _UID, _COMM...).
var trustRE = regexp.MustCompile(`^_[A-Z0-9_]+=.+$`)

func (l *loader) checkName(what, name string, at hcl.Range) {
	if len(name) > 64 || !nameRE.MatchString(name) {
		l.errorf(at, "Invalid "+what+" name", "%q: use letters, digits, '_', '.' and '-', at most 64", name)
	}
}

func (l *loader) source(b *hcl.Block) {
	kind, name := b.Labels[0], b.Labels[1]
	kindAt, nameAt := b.LabelRanges[0], b.LabelRanges[1]
	l.checkName("source", name, nameAt)
	// Record the name even if the rest is wrong, so that jails using it
	// do not add "unknown source" noise.
	if !l.defined(l.sourceDefs, "source", name, nameAt) {
		return
	}
	s := Source{Kind: kind, Name: name}
	switch kind {
	case "file":
		content, hds := b.Body.Content(fileSourceSchema)
		l.diags = append(l.diags, fromHCL(hds)...)
		if a, ok := content.Attributes["path"]; ok {
			s.Path, _ = l.nonEmpty(a.Expr, "path")
		}
		if a, ok := content.Attributes["format"]; ok {
			if f, ok := l.str(a.Expr, "format"); ok {
				var err error
				if s.Format, err = logline.ParseFormat(f); err != nil {
					l.errorf(a.Expr.Range(), "Invalid format", "%v", err)
				}
			}
		}
	case "journal":
		content, hds := b.Body.Content(journalSourceSchema)
		l.diags = append(l.diags, fromHCL(hds)...)
		attrs := content.Attributes
		if a, ok := attrs["match"]; ok {
			ms, rs, _ := l.strList(a.Expr, "match")
			for i, m := range ms {
				if !journalMatchRE.MatchString(m) {
					l.errorf(rs[i], "Invalid journal match", "%q: expected FIELD=value with FIELD in capitals, e.g. SYSLOG_IDENTIFIER=postfix/smtpd", m)
					continue
				}
				s.Match = append(s.Match, m)
			}
		} else {
			l.warnf(b.DefRange, "Journal source without match", "source %q reads every journal entry of the host; add match = [\"SYSLOG_IDENTIFIER=...\"]", name)
		}
		if a, ok := attrs["trust"]; ok {
			ts, rs, listOK := l.strList(a.Expr, "trust")
			for i, t := range ts {
				if !trustRE.MatchString(t) {
					l.errorf(rs[i], "Invalid trust", "%q: expected _FIELD=value naming a trusted field, e.g. _SYSTEMD_UNIT=postfix@-.service; fields without '_' are written by the sender", t)
					continue
				}
				s.Trust = append(s.Trust, t)
			}
			if listOK && len(ts) == 0 && len(rs) == 0 {
				l.errorf(a.Expr.Range(), "Missing trust", "source %q trusts no entry, so it reads nothing; name the units of the mail services, e.g. [\"_SYSTEMD_UNIT=postfix@-.service\", \"_SYSTEMD_UNIT=dovecot.service\"]", name)
			}
		} else {
			l.errorf(b.DefRange, "Missing trust", "journal source %q needs trust = [\"_SYSTEMD_UNIT=...\"]: any local user can write an entry with any SYSLOG_IDENTIFIER, and only trusted fields say which service wrote it", name)
		}
		if a, ok := attrs["directory"]; ok {
			s.Directory, _ = l.nonEmpty(a.Expr, "directory")
		}
		if a, ok := attrs["files"]; ok {
			s.Files, _, _ = l.strList(a.Expr, "files")
			if d, ok := attrs["directory"]; ok {
				l.errorf(a.Expr.Range(), "Conflicting arguments", "a journal source reads either directory (line %d) or files, not both", d.Range.Start.Line)
			}
		}
	default:
		l.errorf(kindAt, "Unknown source kind", "source %q has kind %q; expected \"file\" or \"journal\"", name, kind)
		return
	}
	l.cfg.Sources = append(l.cfg.Sources, s)
}

// Source returns the source named name, or false.
func (c *Config) Source(name string) (Source, bool) {
	i := slices.IndexFunc(c.Sources, func(s Source) bool { return s.Name == name })
	if i < 0 {
		return Source{}, false
	}
	return c.Sources[i], true
}

// ActiveSources returns the sources that at least one enabled jail reads,
// in definition order: the ones the daemon should open. A shipped jail file
// for a mail server that is not installed defines its log file as a source
// but leaves the jail disabled, and that file is then never waited for.
func (c *Config) ActiveSources() []Source {
	var out []Source
	for _, s := range c.Sources {
		for _, j := range c.Jails {
			if j.Enabled && slices.Contains(j.Sources, s.Name) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}
