package source

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"smtpban/internal/logline"
)

const benchLines = 200_000

// benchFile writes a log of realistic Postfix lines (~110 bytes each).
func benchFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "mail.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range benchLines {
		fmt.Fprintf(w, "Nov 24 16:04:04 mx1 postfix/smtpd[%d]: warning: unknown[192.0.2.%d]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n", 1000+i%5000, i%250)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

// BenchmarkFileRead reads a whole file through File (from a resume position
// at offset 0) and, as the baseline, with bufio.Scanner, alone and with the
// same cleaning, decoding and channel hand-off.
func BenchmarkFileRead(b *testing.B) {
	path := benchFile(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	start := filePos{Inode: fi.Sys().(*syscall.Stat_t).Ino, FPHash: fingerprint(nil)}.encode()
	report := func(b *testing.B, lines int) {
		b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
		b.SetBytes(fi.Size()) // one op reads the whole file
	}

	b.Run("File", func(b *testing.B) {
		b.ReportAllocs()
		total := 0
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan []Line, 16)
			src := NewFile(FileConfig{Name: "bench", Path: path, Resume: start, Poll: time.Hour})
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, toChan(ctx, out)) }()
			n := 0
			for b := range out {
				n += len(b)
				if n >= benchLines {
					break
				}
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			total += n
		}
		report(b, total)
	})

	b.Run("Scanner", func(b *testing.B) {
		b.ReportAllocs()
		total := 0
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			s := bufio.NewScanner(f)
			n := 0
			for s.Scan() {
				_ = s.Text()
				n++
			}
			f.Close()
			if n != benchLines {
				b.Fatalf("scanned %d lines", n)
			}
			total += n
		}
		report(b, total)
	})

	b.Run("ScannerChannel", func(b *testing.B) {
		b.ReportAllocs()
		total := 0
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			out := make(chan Line, 1024)
			go func() {
				s := bufio.NewScanner(f)
				for s.Scan() {
					// The same cleaning and decoding as File's.
					l := logline.Decode(logline.Syslog, logline.CleanBytes(s.Bytes()), time.Now())
					out <- Line{Source: "bench", Line: l}
				}
				close(out)
			}()
			n := 0
			for range out {
				n++
			}
			f.Close()
			if n != benchLines {
				b.Fatalf("scanned %d lines", n)
			}
			total += n
		}
		report(b, total)
	})
}
