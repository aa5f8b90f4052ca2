package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWatchState: the state gauges follow what the daemon reports at each
// scrape, and pass the linter.
func TestWatchState(t *testing.T) {
	m := New(Options{Version: "dev"})
	h := StateHealth{Writable: true}
	m.WatchState(func() StateHealth { return h })
	const head = `# HELP smtpban_state_recovered Salvages of a damaged state database not yet acknowledged (smtpban status -ack-recovery).
# TYPE smtpban_state_recovered gauge
# HELP smtpban_state_writable 1 while state takes writes; 0 while it refuses them (disk full, read-only): bans then reach the kernel only and wait to be saved.
# TYPE smtpban_state_writable gauge
`
	for _, tt := range []struct {
		h    StateHealth
		want string
	}{
		{StateHealth{Writable: true}, "smtpban_state_recovered 0\nsmtpban_state_writable 1\n"},
		{StateHealth{Writable: false, Recovered: 1}, "smtpban_state_recovered 1\nsmtpban_state_writable 0\n"},
	} {
		h = tt.h
		if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(head+tt.want), "smtpban_state_recovered", "smtpban_state_writable"); err != nil {
			t.Errorf("%+v: %v", tt.h, err)
		}
	}
	if problems, err := testutil.GatherAndLint(m.Gatherer()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
