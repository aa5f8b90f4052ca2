package main

import (
	"regexp"
	"testing"
)

const saslRegex = `postfix[^\s/\[]*/(?:[^\s/\[]+/)?smtpd(?:\[\d+\])?: warning: [^\s\[]*\[<HOST>\]: SASL [-\w]+ authentication failed: [^,]*`

func TestExpandHostCapturesTheAddress(t *testing.T) {
	re := regexp.MustCompile(expandHost(saslRegex))
	line := "Nov 24 19:30:00 mx postfix/submission/smtpd[42]: warning: unknown[2001:db8::7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no match on %q", line)
	}
	got := ""
	for i, name := range re.SubexpNames() {
		if (name == "h0" || name == "h0b") && m[i] != "" {
			got = m[i]
		}
	}
	if got != "2001:db8::7" {
		t.Errorf("host = %q, want 2001:db8::7", got)
	}
}

func TestRequiredLiteral(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{expandHost(saslRegex), "authentication failed:"},
		{`(?:a|b)c`, "c"},
		{`(?i)SASL`, ""},
		{`x+|y`, ""},
	} {
		got, err := requiredLiteral(tc.expr)
		if err != nil {
			t.Fatalf("requiredLiteral(%q): %v", tc.expr, err)
		}
		if got != tc.want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
