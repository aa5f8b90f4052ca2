// Package jailstest reads the jails shipped in configs/jails.d for tests
// of the packages internal/config builds on (jails, internal/backtrack),
// which cannot import it: their regexes as written, <HOST> unexpanded.
package jailstest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Jail is one shipped jail's name and expressions.
type Jail struct {
	Name         string
	File         string
	Failregex    []string
	Ignoreregex  []string
	Successregex []string
}

// Read returns every jail block of dir/*.hcl, enabled or not, in the
// order of the files.
func Read(dir string) ([]Jail, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.hcl in %s", dir)
	}
	var out []Jail
	for _, name := range files {
		js, err := readFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, js...)
	}
	return out, nil
}

func readFile(name string) ([]Jail, error) {
	src, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read shipped jails: %w", err)
	}
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %w", name, diags)
	}
	var out []Jail
	for _, blk := range f.Body.(*hclsyntax.Body).Blocks {
		if blk.Type != "jail" || len(blk.Labels) == 0 {
			continue
		}
		j := Jail{Name: blk.Labels[0], File: name}
		for attr, dst := range map[string]*[]string{"failregex": &j.Failregex, "ignoreregex": &j.Ignoreregex, "successregex": &j.Successregex} {
			a, ok := blk.Body.Attributes[attr]
			if !ok {
				continue
			}
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				return nil, fmt.Errorf("%s: jail %s: %s: %w", name, j.Name, attr, diags)
			}
			for it := v.ElementIterator(); it.Next(); {
				_, s := it.Element()
				*dst = append(*dst, s.AsString())
			}
		}
		out = append(out, j)
	}
	return out, nil
}
