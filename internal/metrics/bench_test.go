package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkScrape measures one full /metrics answer (gather and encode),
// with a view of 4 sources and 30 jails; the baseline serves only the
// runtime and process collectors plus build_info, which any exporter pays.
func BenchmarkScrape(b *testing.B) {
	view := &fakeView{active: map[string]int{}, windows: 5000}
	for i := range 4 {
		view.sources = append(view.sources, Source{Name: fmt.Sprintf("src%d", i), Read: 1e6, Lag: time.Second})
	}
	full := New(Options{Version: "dev", View: view})
	for i := range 30 {
		j := fmt.Sprintf("jail%d", i)
		view.active[j] = i
		full.InitJail(j, "mx1")
		full.Ban(j, "mx1", time.Millisecond)
		full.Match(j)
	}
	for _, bc := range []struct {
		name string
		m    *Metrics
	}{
		{"baseline", New(Options{Version: "dev"})},
		{"smtpband", full},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := bc.m.Handler(slog.New(slog.DiscardHandler))
			var size int
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
				size = w.Body.Len()
				io.Copy(io.Discard, w.Body)
			}
			if size == 0 {
				b.Fatal("empty scrape")
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}

// BenchmarkMatch is the cost per matched line with metrics on; the
// baseline is metrics off (a nil *Metrics).
func BenchmarkMatch(b *testing.B) {
	on := New(Options{})
	on.InitJail("postfix-sasl", "mx1")
	for _, bc := range []struct {
		name string
		m    *Metrics
	}{{"off", nil}, {"on", on}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.m.Match("postfix-sasl")
			}
		})
	}
}
