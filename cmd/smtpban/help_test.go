package main

import (
	"strings"
	"testing"
)

// TestHelp: asking for help prints to stdout and succeeds; every command
// has one line in the list and a help of its own; a mistyped command
// gets the nearest one suggested, on stderr, as a usage error.
func TestHelp(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"-h", []string{"-h"}, exitOK, "usage: smtpban [-config FILE]", ""},
		{"--help", []string{"--help"}, exitOK, "'smtpban help COMMAND'", ""},
		{"help", []string{"help"}, exitOK, "exit codes: 0 ok", ""},
		{"help ban", []string{"help", "ban"}, exitOK, "usage: smtpban ban [-jail J] [-for DUR] [-json] ADDR|PREFIX\n\nban by hand", ""},
		{"help ban flags", []string{"help", "ban"}, exitOK, "  -for duration\n", ""},
		{"ban -h", []string{"ban", "-h"}, exitOK, "usage: smtpban ban ", ""},
		{"help help", []string{"help", "help"}, exitOK, "usage: smtpban help [COMMAND]", ""},
		{"help unknown", []string{"help", "bna"}, exitUsage, "", `unknown command "bna"; did you mean "ban"?`},
		{"transposed", []string{"stauts"}, exitUsage, "", `unknown command "stauts"; did you mean "status"?`},
		{"typo", []string{"unbam", "192.0.2.1"}, exitUsage, "", `did you mean "unban"?`},
		{"prefix", []string{"rep", "x.log"}, exitUsage, "", `did you mean "replay"?`},
		{"nothing near", []string{"frobnicate"}, exitUsage, "", "unknown command \"frobnicate\"\n'smtpban help' lists the commands"},
		{"flag mistake", []string{"ban", "-bogus"}, exitUsage, "", "flag provided but not defined: -bogus\nusage: smtpban ban "},
		{"top flag mistake", []string{"-bogus"}, exitUsage, "", "usage: smtpban [-config FILE]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.out == "" && r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if !strings.Contains(r.stdout, tc.out) {
				t.Errorf("stdout %q, want it to contain %q", r.stdout, tc.out)
			}
			if tc.errs == "" && r.stderr != "" {
				t.Errorf("stderr %q, want nothing", r.stderr)
			}
			if !strings.Contains(r.stderr, tc.errs) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tc.errs)
			}
		})
	}

	list := cli(t, "help").stdout
	for _, c := range commands() {
		if n := strings.Count(list, "\n  "+c.name+" "); n != 1 {
			t.Errorf("help lists %q on %d lines, want 1:\n%s", c.name, n, list)
		}
		r := cli(t, "help", c.name)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "usage: smtpban "+c.name+" ") || r.stderr != "" {
			t.Errorf("help %s: exit %d\nstdout: %s\nstderr: %s", c.name, r.code, r.stdout, r.stderr)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"status", "bans", "ban", "unban", "allow", "reload", "check", "replay", "version"}
	for typed, want := range map[string]string{
		"statsu": "status", "stat": "status", "bna": "ban", "unbna": "unban", "alow": "allow",
		"relaod": "reload", "chek": "check", "ver": "version", "re": "", "xyz": "", "": "",
	} {
		if got := suggest(typed, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", typed, got, want)
		}
	}
}
