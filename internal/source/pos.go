package source

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
)

// fingerprintMax is how many leading bytes of a file identify it. Inode
// numbers are reused after a delete, and a truncated file keeps its inode, so
// the inode alone cannot tell "the same file" from "a new file".
const fingerprintMax = 256

// posVersion tags the encoding so that a later format can still read old
// positions saved in the state database.
const posVersion = 1

// posLen is the encoded size: version, inode, offset, fingerprint length and hash.
const posLen = 1 + 8 + 8 + 2 + 8

// filePos is where a file source stands: just after the last line it passed on.
type filePos struct {
	Inode  uint64
	Offset int64
	FPLen  int    // bytes of the file's head covered by FPHash
	FPHash uint64 // FNV-1a 64 of those bytes
}

func fingerprint(head []byte) uint64 {
	h := fnv.New64a()
	h.Write(head)
	return h.Sum64()
}

func (p filePos) encode() []byte {
	return p.appendTo(make([]byte, 0, posLen))
}

// appendTo appends the encoded position to dst.
func (p filePos) appendTo(dst []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, posLen)...)
	b := dst[n:]
	b[0] = posVersion
	binary.BigEndian.PutUint64(b[1:], p.Inode)
	binary.BigEndian.PutUint64(b[9:], uint64(p.Offset))
	binary.BigEndian.PutUint16(b[17:], uint16(p.FPLen))
	binary.BigEndian.PutUint64(b[19:], p.FPHash)
	return dst
}

var errBadPos = errors.New("not a file position")

func decodePos(b []byte) (filePos, error) {
	if len(b) != posLen || b[0] != posVersion {
		return filePos{}, fmt.Errorf("decode position (%d bytes): %w", len(b), errBadPos)
	}
	p := filePos{
		Inode:  binary.BigEndian.Uint64(b[1:]),
		Offset: int64(binary.BigEndian.Uint64(b[9:])),
		FPLen:  int(binary.BigEndian.Uint16(b[17:])),
		FPHash: binary.BigEndian.Uint64(b[19:]),
	}
	if p.Offset < 0 || p.FPLen > fingerprintMax {
		return filePos{}, fmt.Errorf("decode position: offset %d, fingerprint length %d: %w", p.Offset, p.FPLen, errBadPos)
	}
	return p, nil
}

func (p filePos) String() string {
	return fmt.Sprintf("inode %d offset %d fingerprint %016x/%dB", p.Inode, p.Offset, p.FPHash, p.FPLen)
}

// DescribePos renders a file position (Line.Pos of a file source) for people.
// Anything else, such as a journal cursor, is shown as text.
func DescribePos(b []byte) string {
	if p, err := decodePos(b); err == nil {
		return p.String()
	}
	return fmt.Sprintf("%q", b)
}
