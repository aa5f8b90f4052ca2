package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		err  bool
	}{
		{"zero", "0", 0, false},
		{"seconds", "90s", 90 * time.Second, false},
		{"go units", "1h30m", 90 * time.Minute, false},
		{"fraction", "1.5h", 90 * time.Minute, false},
		{"day", "1d", 24 * time.Hour, false},
		{"week", "1w", 7 * 24 * time.Hour, false},
		{"day and hours", "1d12h", 36 * time.Hour, false},
		{"week day hour", "1w1d1h", (8*24 + 1) * time.Hour, false},
		{"half day", "0.5d", 12 * time.Hour, false},
		{"micro", "5µs", 5 * time.Microsecond, false},
		{"negative", "-1d", -24 * time.Hour, false},
		{"empty", "", 0, true},
		{"no unit", "10", 0, true},
		{"unknown unit", "10x", 0, true},
		{"month is not a unit", "1mo", 0, true},
		{"unit only", "d", 0, true},
		{"two dots", "1.2.3d", 0, true},
		{"sign only", "-", 0, true},
		{"overflow days", "200000000000d", 0, true},
		{"overflow sum", "2562047h2562047h", 0, true},
		{"space", "1 d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
