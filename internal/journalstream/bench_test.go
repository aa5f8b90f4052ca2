package journalstream_test

import (
	"io"
	"log/slog"
	"testing"

	"smtpban/internal/journalstream"
)

// BenchmarkHandler: a ban's log line through slog's text handler alone
// (the baseline) and with the priority prefix, in the same run.
func BenchmarkHandler(b *testing.B) {
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{
		{"text", slog.NewTextHandler(io.Discard, nil)},
		{"journal", journalstream.NewHandler(io.Discard, func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) })},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := slog.New(bc.h).With("source", "mail")
			b.ReportAllocs()
			for b.Loop() {
				l.Info("ban", "jail", "postfix-sasl", "addr", "203.0.113.7/32", "failures", 5, "until", "2025-11-24T17:00:00Z")
			}
		})
	}
}
