package source

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// compressedNames lists where logrotate may have put the old file once
// gzip-compressed (compress without delaycompress): name.N.gz and
// name-DATE.gz (dateext).
func compressedNames(path string) []string {
	names, _ := filepath.Glob(path + ".[0-9]*.gz")
	dated, _ := filepath.Glob(path + "-*.gz")
	return append(names, dated...)
}

// gzipTail is the rest of a compressed rotated file from a saved position.
type gzipTail struct {
	name string
	f    *os.File
	r    io.Reader // the content from the position on
	head []byte    // the content's first p.FPLen bytes, which identify it
}

func (g *gzipTail) Close() error { return g.f.Close() }

// findCompressed finds, among the compressed rotated files, the one p was a
// position in: its content starts with the same bytes and is at least as
// long as p's offset. A file can only be read from its start, so the
// check skips (decompresses) up to the offset.
func findCompressed(path string, p filePos) *gzipTail {
	if p.FPLen == 0 {
		return nil // no bytes to tell one file from another
	}
	for _, name := range compressedNames(path) {
		if g, err := openGzipAt(name, p); err == nil {
			return g
		}
	}
	return nil
}

var errNotTheFile = errors.New("not the file of the saved position")

func openGzipAt(name string, p filePos) (*gzipTail, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	g, err := gzipAt(f, p)
	if err != nil {
		f.Close()
		return nil, err
	}
	g.name = name
	return g, nil
}

func gzipAt(f *os.File, p filePos) (*gzipTail, error) {
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	head := make([]byte, p.FPLen)
	if _, err := io.ReadFull(zr, head); err != nil {
		return nil, err
	}
	if fingerprint(head) != p.FPHash {
		return nil, errNotTheFile
	}
	var r io.Reader = zr
	if p.Offset < int64(len(head)) {
		r = io.MultiReader(bytes.NewReader(head[p.Offset:]), zr)
	} else if n, err := io.CopyN(io.Discard, zr, p.Offset-int64(len(head))); err != nil {
		return nil, fmt.Errorf("%w: %d bytes, saved offset %d", errNotTheFile, int64(len(head))+n, p.Offset)
	}
	return &gzipTail{f: f, r: r, head: head}, nil
}

// catchUpCompressed passes on the lines of g, the rest of the file p was a
// position in, with positions in that file: stopped half-way, the next
// start finds the same compressed file and goes on from there.
func (r *fileRun) catchUpCompressed(ctx context.Context, g *gzipTail, p filePos) error {
	tf := &tailFile{name: g.name, ino: p.Inode, readOff: p.Offset, lineOff: p.Offset, buf: make([]byte, readChunk)}
	tf.head, tf.headHash = g.head, p.FPHash
	for {
		n, err := g.r.Read(tf.buf)
		if n > 0 {
			tf.readOff += int64(n)
			if err := r.lines(ctx, tf, tf.buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return r.flushPartial(ctx, tf)
		}
		if err != nil {
			// A damaged or cut stream: its unfinished last line is dropped.
			return fmt.Errorf("read %s: %w", g.name, err)
		}
	}
}
