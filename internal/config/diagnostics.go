package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Severity says whether a Diagnostic stops the config from loading.
type Severity uint8

const (
	SeverityError Severity = iota
	SeverityWarning
)

// Diagnostic is one problem found in the config, at the value that causes
// it (for a list, the element).
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	// Subject is where the problem is. Filename is "" when the problem has
	// no file; Start.Line is 0 when it has a file but no position in it.
	Subject hcl.Range
}

var oneLine = strings.NewReplacer("\n", `\n`, "\r", `\r`)

// Diagnostics are all the problems found in one Load, ordered by file (in
// load order) and position.
type Diagnostics []Diagnostic

// String formats d as "file:line:col: summary: detail", with "warning: "
// before the summary of a warning. Tools and editors read this shape;
// hcl's own "file:line,col-col" they do not.
func (d Diagnostic) String() string {
	var b strings.Builder
	switch {
	case d.Subject.Filename != "" && d.Subject.Start.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	case d.Subject.Filename != "":
		b.WriteString(d.Subject.Filename + ": ")
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": " + d.Detail)
	}
	// One diagnostic, one line, even when a quoted value holds a newline.
	return oneLine.Replace(b.String())
}

// Error formats every diagnostic, one per line, errors and warnings alike.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errs returns the errors only.
func (ds Diagnostics) Errs() Diagnostics { return ds.filter(SeverityError) }

// Warnings returns the warnings only.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(SeverityWarning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// fromHCL converts hcl's diagnostics, keeping their subject (the value or
// token hcl blames).
func fromHCL(hds hcl.Diagnostics) Diagnostics {
	out := make(Diagnostics, 0, len(hds))
	for _, hd := range hds {
		d := Diagnostic{Severity: SeverityError, Summary: hd.Summary, Detail: hd.Detail}
		if hd.Severity == hcl.DiagWarning {
			d.Severity = SeverityWarning
		}
		if hd.Subject != nil {
			d.Subject = *hd.Subject
		}
		// hcl details are full sentences; one line each reads better.
		d.Detail = strings.Join(strings.Fields(d.Detail), " ")
		out = append(out, d)
	}
	return out
}

// sortDiagnostics orders ds by the load order of their files, then by
// position; diagnostics without a file come first.
func sortDiagnostics(ds Diagnostics, files []string) {
	order := func(name string) int {
		if name == "" {
			return -1
		}
		if i := slices.Index(files, name); i >= 0 {
			return i
		}
		return len(files)
	}
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		if c := order(a.Subject.Filename) - order(b.Subject.Filename); c != 0 {
			return c
		}
		if c := strings.Compare(a.Subject.Filename, b.Subject.Filename); c != 0 {
			return c
		}
		return a.Subject.Start.Byte - b.Subject.Start.Byte
	})
}

// pos formats r as file:line:col, for details that cite another place.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
