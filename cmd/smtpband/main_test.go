package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestNewLogger: -log-format picks text or JSON, -log-level filters, and
// anything else is refused with the flag named.
func TestNewLogger(t *testing.T) {
	tests := []struct {
		name, format, level string
		wantErr             string
		check               func(t *testing.T, out string)
	}{
		{name: "json", format: "json", level: "info", check: func(t *testing.T, out string) {
			var r map[string]any
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("not JSON: %v: %s", err, out)
			}
			if r["msg"] != "ban" || r["jail"] != "postfix-sasl" || r["addr"] != "203.0.113.7/32" || r["level"] != "INFO" {
				t.Errorf("record = %v", r)
			}
		}},
		{name: "text", format: "text", level: "info", check: func(t *testing.T, out string) {
			if !strings.Contains(out, "level=INFO msg=ban jail=postfix-sasl addr=203.0.113.7/32") {
				t.Errorf("text record = %q", out)
			}
		}},
		{name: "level filters", format: "json", level: "warn", check: func(t *testing.T, out string) {
			if out != "" {
				t.Errorf("info logged at level warn: %q", out)
			}
		}},
		{name: "bad format", format: "xml", level: "info", wantErr: `-log-format "xml": want text or json`},
		{name: "bad level", format: "text", level: "loud", wantErr: `-log-level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := newLogger(&buf, tt.format, tt.level, false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Info("ban", "jail", "postfix-sasl", "addr", "203.0.113.7/32")
			tt.check(t, buf.String())
		})
	}
}

// TestFlags: -h prints the flags to stdout and succeeds; a wrong flag
// prints them to stderr and is a usage error; -t tests a config and
// exits, valid or not, without starting anything.
func TestFlags(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.hcl"
	if err := os.WriteFile(bad, []byte("jail \"x\" {\n  maxretry = \"many\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		args              []string
		wantErr           error // nil: success; errAny: some error
		stdout, stderr    string
		notStdout, noErrs bool
	}{
		{name: "help", args: []string{"-h"}, stdout: "usage: smtpband [flags]", noErrs: true},
		{name: "help long", args: []string{"--help"}, stdout: "-t\ttest the config", noErrs: true},
		{name: "unknown flag", args: []string{"-bogus"}, wantErr: errUsage, stderr: "usage: smtpband [flags]", notStdout: true},
		{name: "argument", args: []string{"start"}, wantErr: errUsage, stderr: `takes no arguments, got "start"`, notStdout: true},
		{name: "test shipped config", args: []string{"-t", "-config", "../../configs/smtpban.hcl"}, stdout: "config ../../configs/smtpban.hcl is valid: ", noErrs: true},
		{name: "test bad config", args: []string{"-t", "-config", bad}, wantErr: errAny, notStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("run(%q) = %v", tt.args, err)
			case tt.wantErr == errAny && err == nil, tt.wantErr == errUsage && !errors.Is(err, errUsage):
				t.Fatalf("run(%q) = %v, want %v", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout = %q, want %q in it", out.String(), tt.stdout)
			}
			if tt.notStdout && out.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
			if !strings.Contains(errb.String(), tt.stderr) || (tt.noErrs && errb.Len() > 0) {
				t.Errorf("stderr = %q, want %q", errb.String(), tt.stderr)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestVersion: -version prints the version stamped at build time (make
// sets it with -ldflags; "dev" here) and starts nothing.
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-version"}, &stdout, &stderr); err != nil {
		t.Fatalf("smtpband -version: %v\n%s", err, stderr.String())
	}
	if got, want := stdout.String(), "smtpband dev\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}
