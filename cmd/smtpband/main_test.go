package main

import (
	"bytes"
	"encoding/json"
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
			l, err := newLogger(&buf, tt.format, tt.level)
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
