package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"smtpban/internal/logline"
	"strings"
	"syscall"
)

// readChunk is how much one read asks for.
const readChunk = 256 << 10

// tailFile is one open log file and how far it has been read.
type tailFile struct {
	f    *os.File
	name string
	ino  uint64
	// head holds the file's first bytes (up to fingerprintMax) as we saw
	// them; if the file stops starting with them, it was truncated and
	// rewritten under us.
	head     []byte
	headHash uint64
	readOff  int64 // next byte to read
	lineOff  int64 // just after the last complete line
	partial  []byte
	skipping bool // inside a line already known to be too long
	buf      []byte
	rc       syscall.RawConn // for pread; made on first use
	headBuf  []byte          // scratch for headIntact
}

func openTail(path string, off int64) (*tailFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log file: %w", err)
	}
	tf := &tailFile{f: f, name: path, ino: inode(fi), readOff: off, lineOff: off}
	if err := tf.loadHead(); err != nil {
		f.Close()
		return nil, err
	}
	return tf, nil
}

// loadHead reads the first bytes, up to the current offset's worth and at
// most fingerprintMax, so the fingerprint covers only what is already settled.
func (tf *tailFile) loadHead() error {
	n := min(int64(fingerprintMax), tf.readOff)
	b := make([]byte, n)
	got, err := tf.f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read head of %s: %w", tf.name, err)
	}
	tf.setHead(b[:got])
	return nil
}

func (tf *tailFile) setHead(b []byte) {
	tf.head = b
	tf.headHash = fingerprint(b)
}

// headIntact reports whether the file still starts with the bytes we saw.
func (tf *tailFile) headIntact() (bool, error) {
	if len(tf.head) == 0 {
		return true, nil
	}
	if cap(tf.headBuf) < len(tf.head) {
		tf.headBuf = make([]byte, fingerprintMax)
	}
	b := tf.headBuf[:len(tf.head)]
	n, err := tf.pread(b, 0)
	if err != nil {
		return false, fmt.Errorf("read head of %s: %w", tf.name, err)
	}
	return bytes.Equal(b[:n], tf.head), nil
}

func (tf *tailFile) pos() filePos {
	return filePos{Inode: tf.ino, Offset: tf.lineOff, FPLen: len(tf.head), FPHash: tf.headHash}
}

// reset starts the file over from its first byte.
func (tf *tailFile) reset() {
	tf.readOff, tf.lineOff = 0, 0
	tf.partial, tf.skipping = nil, false
	tf.setHead(nil)
}

// drain reads tf to its current end, passing complete lines on. A truncation
// found on the way (smaller than what we read, or a different head) restarts
// it from the top, after the rest of the old content, when a copy of it can
// be found (copytruncate).
func (r *fileRun) drain(ctx context.Context, tf *tailFile) error {
	if tf.buf == nil {
		tf.buf = make([]byte, readChunk)
	}
	for {
		n, err := tf.pread(tf.buf, tf.readOff)
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", tf.name, tf.readOff, err)
		}
		if n == 0 {
			fi, err := tf.f.Stat()
			if err != nil {
				return fmt.Errorf("stat %s: %w", tf.name, err)
			}
			if fi.Size() < tf.readOff {
				if err := r.truncated(ctx, tf, fi.Size()); err != nil {
					return err
				}
				continue
			}
			r.behindSince.Store(0)
			return nil
		}
		// Checked after the read: if the head still matches, what we just
		// read is old content, not the start of a rewritten file.
		ok, err := tf.headIntact()
		if err != nil {
			return err
		}
		if !ok {
			if err := r.truncated(ctx, tf, -1); err != nil {
				return err
			}
			continue
		}
		if r.behindSince.Load() == 0 {
			r.behindSince.Store(r.now().UnixNano())
		}
		chunk := tf.buf[:n]
		if l := int64(len(tf.head)); l < fingerprintMax && tf.readOff <= l && l < tf.readOff+int64(n) {
			take := min(int64(fingerprintMax)-l, tf.readOff+int64(n)-l)
			start := l - tf.readOff
			tf.setHead(append(bytes.Clone(tf.head), chunk[start:start+take]...))
		}
		tf.readOff += int64(n)
		if err := r.lines(ctx, tf, chunk); err != nil {
			return err
		}
		if n < len(tf.buf) {
			// A short read is the end of the file for now; a truncation
			// after it shows at the next wake-up (a read at our offset
			// finds nothing, or the head changed).
			r.behindSince.Store(0)
			return nil
		}
	}
}

// pread is one read at off; a short count is the end of the file.
func (tf *tailFile) pread(b []byte, off int64) (int, error) {
	if tf.rc == nil {
		rc, err := tf.f.SyscallConn()
		if err != nil {
			return 0, err
		}
		tf.rc = rc
	}
	var n int
	var rerr error
	err := tf.rc.Read(func(fd uintptr) bool {
		n, rerr = preadAt(int(fd), b, off)
		return true
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// lines splits a chunk read at tf.readOff-len(chunk) into lines and sends
// them on.
func (r *fileRun) lines(ctx context.Context, tf *tailFile, chunk []byte) error {
	if err := r.split(ctx, tf, chunk); err != nil {
		return err
	}
	return r.send(ctx)
}

func (r *fileRun) split(ctx context.Context, tf *tailFile, chunk []byte) error {
	base := tf.readOff - int64(len(chunk))
	r.expect = bytes.Count(chunk, []byte{'\n'})
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			if tf.skipping {
				return nil
			}
			if len(tf.partial)+len(chunk) > MaxLineBytes {
				// Too long already: drop it now to keep memory bounded.
				tf.partial, tf.skipping = nil, true
				r.skipped.Add(1)
				return nil
			}
			tf.partial = append(tf.partial, chunk...)
			return nil
		}
		line := chunk[:i]
		base += int64(i) + 1
		chunk = chunk[i+1:]
		tf.lineOff = base
		if tf.skipping {
			tf.skipping = false
			r.expect--
			continue
		}
		if len(tf.partial) > 0 {
			tf.partial = append(tf.partial, line...)
			line = tf.partial
		}
		err := r.emit(ctx, tf, line)
		r.expect--
		tf.partial = tf.partial[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// emit adds one line to the batch, or skips and counts it. A full batch is
// sent at once.
func (r *fileRun) emit(ctx context.Context, tf *tailFile, line []byte) error {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > MaxLineBytes {
		r.skipped.Add(1)
		return nil
	}
	if len(r.batch) == 0 {
		// Sized for the rest of the chunk: one allocation for the lines
		// and one for their positions, whatever the batch's length.
		n := min(max(r.expect, 1), MaxBatch)
		r.batch = make([]Line, 0, n)
		r.posBuf = make([]byte, 0, n*posLen)
		r.batchAt = r.now()
	}
	start := len(r.posBuf)
	r.posBuf = tf.pos().appendTo(r.posBuf)
	pos := r.posBuf[start:len(r.posBuf):len(r.posBuf)]
	r.batch = append(r.batch, Line{Source: r.name, Line: logline.Decode(r.format, logline.CleanBytes(line), r.batchAt), Pos: pos})
	r.lastIno, r.lastOff = tf.ino, tf.lineOff
	if len(r.batch) == MaxBatch {
		return r.send(ctx)
	}
	return nil
}

// send passes the batch on, if there is one.
func (r *fileRun) send(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	// Counted first: whoever sees the lines delivered sees them counted.
	r.read.Add(uint64(len(r.batch)))
	r.posIno.Store(r.lastIno)
	r.posOff.Store(r.lastOff)
	b := r.batch
	r.batch, r.posBuf = nil, nil
	r.deliver(b)
	return ctx.Err()
}

// flushPartial passes on a last line without its newline, for a file that
// will not grow any more (rotated away or truncated).
func (r *fileRun) flushPartial(ctx context.Context, tf *tailFile) error {
	if tf.skipping || len(tf.partial) == 0 {
		tf.partial, tf.skipping = nil, false
		return nil
	}
	line := tf.partial
	tf.partial = nil
	tf.lineOff = tf.readOff
	r.expect = 1
	if err := r.emit(ctx, tf, line); err != nil {
		return err
	}
	return r.send(ctx)
}

// truncated handles a file cut under us (size is its new size, or -1 when
// the head changed). The bytes between our position and the truncation are
// gone from this file; logrotate's copytruncate left them in a copy, which we
// read from our position to its end before starting this file over.
func (r *fileRun) truncated(ctx context.Context, tf *tailFile, size int64) error {
	r.log.Info("log file truncated; reading it from the start", "size", size, "offset", tf.lineOff)
	p := tf.pos()
	if p.Offset > 0 {
		if cp, name := findRotated(tf.name, p); cp != nil && cp.ino != tf.ino {
			r.log.Info("reading the rest of the truncated content from its copy", "copy", name)
			err := r.drain(ctx, cp)
			if err == nil {
				err = r.flushPartial(ctx, cp)
			}
			cp.f.Close()
			if err != nil {
				return err
			}
			tf.reset()
			return nil
		}
	}
	if err := r.flushPartial(ctx, tf); err != nil {
		return err
	}
	tf.reset()
	return nil
}

// headHash reports whether the file at path starts with n bytes hashing to h.
func headHash(path string, n int, h uint64) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, n)
	got, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("read head of %s: %w", path, err)
	}
	return got == n && fingerprint(b) == h, nil
}

// rotatedNames lists where logrotate may have put the old file: name.1
// (plain or delaycompress) and name-DATE (dateext). Compressed ones cannot
// be read from an offset: findCompressed looks at those.
func rotatedNames(path string) []string {
	names := []string{path + ".1", path + ".0"}
	more, _ := filepath.Glob(path + "-*")
	for _, m := range more {
		if !strings.HasSuffix(m, ".gz") && !strings.HasSuffix(m, ".xz") &&
			!strings.HasSuffix(m, ".bz2") && !strings.HasSuffix(m, ".zst") {
			names = append(names, m)
		}
	}
	return names
}

// findRotated finds the file that p was a position in, now under a rotated
// name: the same inode (rename) or a copy starting with the same bytes
// (copytruncate), at least as long as p's offset. It is opened at p's offset.
func findRotated(path string, p filePos) (*tailFile, string) {
	var copyName string
	for _, name := range rotatedNames(path) {
		fi, err := os.Stat(name)
		if err != nil || fi.Size() < p.Offset {
			continue
		}
		if ok, _ := headHash(name, p.FPLen, p.FPHash); !ok {
			continue
		}
		if inode(fi) == p.Inode {
			if tf, err := openTail(name, p.Offset); err == nil {
				return tf, name
			}
		}
		if copyName == "" {
			copyName = name
		}
	}
	if copyName != "" {
		if tf, err := openTail(copyName, p.Offset); err == nil {
			return tf, copyName
		}
	}
	return nil, ""
}

// lineStartBefore is where the line that holds offset end starts: starting
// "at the end" of a file whose writer is mid-line would otherwise pass on the
// rest of that line as if it were a line of its own.
func lineStartBefore(path string, end int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		return end
	}
	defer f.Close()
	n := min(end, int64(MaxLineBytes)+1)
	b := make([]byte, n)
	got, err := f.ReadAt(b, end-n)
	if int64(got) != n || (err != nil && err != io.EOF) {
		return end
	}
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		if n == end {
			return 0 // one unfinished line from the start
		}
		return end // longer than any line we pass on: skip it
	}
	return end - n + int64(i) + 1
}
