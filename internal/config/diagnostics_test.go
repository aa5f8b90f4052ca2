package config

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestDiagnosticString(t *testing.T) {
	at := hcl.Range{Filename: "a.hcl", Start: hcl.Pos{Line: 3, Column: 7, Byte: 20}}
	tests := []struct {
		name string
		d    Diagnostic
		want string
	}{
		{"error", Diagnostic{Summary: "Invalid duration", Detail: "bad", Subject: at}, "a.hcl:3:7: Invalid duration: bad"},
		{"warning", Diagnostic{Severity: SeverityWarning, Summary: "Include matches nothing", Detail: "x", Subject: at}, "a.hcl:3:7: warning: Include matches nothing: x"},
		{"no detail", Diagnostic{Summary: "Oops", Subject: at}, "a.hcl:3:7: Oops"},
		{"file only", Diagnostic{Summary: "Cannot read config file", Detail: "gone", Subject: hcl.Range{Filename: "a.hcl"}}, "a.hcl: Cannot read config file: gone"},
		{"no file", Diagnostic{Summary: "Oops", Detail: "d"}, "Oops: d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDiagnosticsErrorAndFilters(t *testing.T) {
	ds := Diagnostics{
		{Severity: SeverityWarning, Summary: "W"},
		{Summary: "E", Subject: hcl.Range{Filename: "f", Start: hcl.Pos{Line: 1, Column: 2}}},
	}
	if got, want := ds.Error(), "warning: W\nf:1:2: E"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !ds.HasErrors() {
		t.Error("HasErrors() = false with an error")
	}
	if ds[:1].HasErrors() {
		t.Error("HasErrors() = true with only a warning")
	}
	if len(ds.Errs()) != 1 || ds.Errs()[0].Summary != "E" {
		t.Errorf("Errs() = %v", ds.Errs())
	}
	if len(ds.Warnings()) != 1 || ds.Warnings()[0].Summary != "W" {
		t.Errorf("Warnings() = %v", ds.Warnings())
	}
}
