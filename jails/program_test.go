package jails

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, program string
		want          bool
	}{
		{"postfix*/*smtpd", "postfix/smtpd", true},
		{"postfix*/*smtpd", "postfix/submission/smtpd", true},
		{"postfix*/*smtpd", "postfix/smtps/smtpd", true},
		{"postfix*/*smtpd", "postfix-out/smtpd", true},
		{"postfix*/*smtpd", "postfix/smtpd2", false},
		{"postfix*/*smtpd", "postfix/postscreen", false},
		{"postfix*/*smtpd", "xpostfix/smtpd", false},
		{"postfix*/*smtpd", "postfix", false},
		{"postfix*/*smtpd", "", false},
		{"dovecot", "dovecot", true},
		{"dovecot", "Dovecot", false},
		{"dovecot", "dovecot2", false},
		{"dovecot", "dovecot/x", false},
		{"exim?", "exim4", true},
		{"exim?", "exim", false},
		{"exim?", "exim42", false},
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"", "", true},
		{"", "x", false},
		{"a**b", "ab", true},
		{"a*b*c", "abxbxc", true},
		{"a*b*c", "abxbxcx", false},
		{"*smtpd", "smtpd/smtpd", true},
		// A '*' in the program is still matched by a star of the glob.
		{"*", "*x", true},
		{"a*", "a*b", true},
		{"postfix*/*smtpd", "postfix*/smtpd", true},
		{"a*c", "a*c", true},
		{"a?c", "a*c", true},
		{"a\\*", "a\\x", true}, // no escapes: '\' is itself
	}
	for _, tt := range tests {
		if got := GlobMatch(tt.glob, tt.program); got != tt.want {
			t.Errorf("GlobMatch(%q, %q) = %v, want %v", tt.glob, tt.program, got, tt.want)
		}
	}
}

// FuzzGlobMatch compares GlobMatch with a plain recursive matcher.
func FuzzGlobMatch(f *testing.F) {
	f.Add("postfix*/*smtpd", "postfix/submission/smtpd")
	f.Add("*", "*x")
	f.Add("a*?b", "a**b")
	f.Fuzz(func(t *testing.T, glob, program string) {
		if len(glob) > 12 || len(program) > 24 {
			return // the reference is exponential
		}
		if got, want := GlobMatch(glob, program), refGlob(glob, program); got != want {
			t.Errorf("GlobMatch(%q, %q) = %v, reference %v", glob, program, got, want)
		}
	})
}

func refGlob(g, p string) bool {
	if g == "" {
		return p == ""
	}
	switch g[0] {
	case '*':
		for i := 0; i <= len(p); i++ {
			if refGlob(g[1:], p[i:]) {
				return true
			}
		}
		return false
	case '?':
		return p != "" && refGlob(g[1:], p[1:])
	}
	return p != "" && p[0] == g[0] && refGlob(g[1:], p[1:])
}

func TestOnlyStars(t *testing.T) {
	for glob, want := range map[string]bool{"*": true, "**": true, "": true, "*?": false, "postfix*": false} {
		if got := OnlyStars(glob); got != want {
			t.Errorf("OnlyStars(%q) = %v, want %v", glob, got, want)
		}
	}
}
