package replay_test

import (
	"context"
	"io"
	"os"
	"testing"

	"smtpban/internal/replay"
)

func TestProfReplay(t *testing.T) {
	path := os.Getenv("PROF_LOG")
	if path == "" {
		t.Skip()
	}
	c := loadShipped(t)
	for i := 0; i < 3; i++ {
		if err := replay.Run(context.Background(), replay.Options{Config: c, Files: []string{path}, Out: io.Discard}); err != nil {
			t.Fatal(err)
		}
	}
}
