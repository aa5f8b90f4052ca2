package jails

import (
	"math"
	"testing"
	"time"
)

func TestBanDuration(t *testing.T) {
	tests := []struct {
		name  string
		inc   Increment
		prior int
		want  time.Duration
	}{
		{"first ban", Increment{Factor: 2, Max: 24 * time.Hour}, 0, time.Hour},
		{"second ban doubles", Increment{Factor: 2, Max: 24 * time.Hour}, 1, 2 * time.Hour},
		{"fourth ban", Increment{Factor: 2, Max: 24 * time.Hour}, 3, 8 * time.Hour},
		{"capped", Increment{Factor: 2, Max: 24 * time.Hour}, 5, 24 * time.Hour},
		{"no cap", Increment{Factor: 3}, 2, 9 * time.Hour},
		{"factor 1 does not escalate", Increment{Factor: 1, Max: 24 * time.Hour}, 4, time.Hour},
		{"factor 0 does not escalate", Increment{}, 4, time.Hour},
		{"fractional factor", Increment{Factor: 1.5}, 2, 2*time.Hour + 15*time.Minute},
		{"negative prior is first", Increment{Factor: 2}, -1, time.Hour},
		{"huge prior capped", Increment{Factor: 2, Max: 7 * 24 * time.Hour}, 10000, 7 * 24 * time.Hour},
		{"huge prior, no cap, no overflow", Increment{Factor: 2}, 10000, time.Duration(math.MaxInt64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &Jail{BanTime: time.Hour, Increment: tt.inc}
			if got := j.BanDuration(tt.prior); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
