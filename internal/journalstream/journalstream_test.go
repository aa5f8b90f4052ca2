package journalstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"smtpban/internal/journalstream"
)

func text(w io.Writer) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: journalstream.DropTime})
}

func TestPrefix(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(journalstream.NewHandler(&buf, text))
	l.Debug("looked", "n", 1)
	l.Info("ban", "jail", "postfix-sasl", "addr", "203.0.113.7/32")
	l.Warn("ban skipped", "reason", "allow list")
	l.Error("checkpoint", "err", "disk full")
	l.Log(context.Background(), slog.LevelError+4, "worse")
	l.With("source", "mail").WithGroup("g").Warn("journalctl exited", "after", "1s")
	want := `<7>level=DEBUG msg=looked n=1
<6>level=INFO msg=ban jail=postfix-sasl addr=203.0.113.7/32
<4>level=WARN msg="ban skipped" reason="allow list"
<3>level=ERROR msg=checkpoint err="disk full"
<3>level=ERROR+4 msg=worse
<4>level=WARN msg="journalctl exited" source=mail g.after=1s
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestJSONKeepsAttributes: the JSON handler's record follows the prefix
// whole.
func TestJSONKeepsAttributes(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(journalstream.NewHandler(&buf, func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }))
	l.Error("bans", "err", "netlink: no buffer space", "n", 3)
	line, ok := strings.CutPrefix(buf.String(), "<3>")
	if !ok {
		t.Fatalf("no <3> prefix: %q", buf.String())
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("not JSON after the prefix: %v: %q", err, line)
	}
	if r["msg"] != "bans" || r["err"] != "netlink: no buffer space" || r["n"] != 3.0 {
		t.Errorf("record = %v", r)
	}
}

// TestConcurrent: records logged at once from many goroutines keep their
// own priority, one whole line each.
func TestConcurrent(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(journalstream.NewHandler(&buf, text))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if (g+i)%2 == 0 {
					l.Error("e", "g", g)
				} else {
					l.With("k", "v").Info("i", "g", g)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, ln := range lines {
		if !strings.HasPrefix(ln, "<3>level=ERROR msg=e ") && !strings.HasPrefix(ln, "<6>level=INFO msg=i k=v ") {
			t.Fatalf("line %q lost its priority", ln)
		}
	}
}

func TestConnected(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  string
		want bool
	}{
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false}, // stderr redirected since
		{"", false},
		{"junk", false},
	} {
		t.Setenv("JOURNAL_STREAM", tc.env)
		if got := journalstream.Connected(f); got != tc.want {
			t.Errorf("JOURNAL_STREAM=%q: Connected = %v, want %v", tc.env, got, tc.want)
		}
	}
}
