package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes files (name -> content, "smtpban.hcl" the main file)
// into a fresh directory and returns the main file's path.
func writeConfig(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return filepath.Join(dir, "smtpban.hcl")
}

// relative formats ds with the temporary directory cut from file names.
func relative(ds Diagnostics, main string) []string {
	dir := filepath.Dir(main) + string(filepath.Separator)
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = strings.ReplaceAll(d.String(), dir, "")
	}
	return out
}

// mustLoad loads files and fails on any diagnostic, warnings included.
func mustLoad(tb testing.TB, files map[string]string) *Config {
	tb.Helper()
	main := writeConfig(tb, files)
	c, ds := Load(main)
	if len(ds) > 0 || c == nil {
		tb.Fatalf("Load: %v\n%s", c, strings.Join(relative(ds, main), "\n"))
	}
	return c
}

// source is a minimal valid source block for configs under test.
const testSource = `source "file" "log" { path = "/var/log/mail.log" }` + "\n"
