package fail2ban

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// A read-only reader of the SQLite 3 file format (sqlite.org/fileformat2.html),
// as much as reading whole tables takes: the header, table b-trees
// (interior and leaf pages), overflow chains and records. fail2ban keeps
// its journal in memory (PRAGMA journal_mode = MEMORY): the main file is
// the whole database, with no WAL beside it. Indexes, WITHOUT ROWID tables,
// free pages and writing are left out.

// errCorrupt marks a file that is not a well-formed SQLite database.
var errCorrupt = errors.New("not a well-formed SQLite 3 database")

type sqliteFile struct {
	r        io.ReaderAt
	pageSize int
	usable   int    // page size less the reserved bytes at each page's end
	pages    uint32 // from the file's size
}

func openSQLite(f *os.File) (*sqliteFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var h [100]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errCorrupt, err)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return nil, fmt.Errorf("%w: no SQLite header", errCorrupt)
	}
	ps := int(binary.BigEndian.Uint16(h[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("%w: page size %d", errCorrupt, ps)
	}
	if enc := binary.BigEndian.Uint32(h[56:]); enc > 1 {
		return nil, fmt.Errorf("text encoding %d (UTF-16) is not supported; fail2ban writes UTF-8", enc)
	}
	usable := ps - int(h[20])
	if usable < 480 {
		return nil, fmt.Errorf("%w: usable page size %d", errCorrupt, usable)
	}
	return &sqliteFile{r: f, pageSize: ps, usable: usable, pages: uint32(st.Size() / int64(ps))}, nil
}

func (db *sqliteFile) page(n uint32) ([]byte, error) {
	if n == 0 || n > db.pages {
		return nil, fmt.Errorf("%w: page %d of %d", errCorrupt, n, db.pages)
	}
	b := make([]byte, db.pageSize)
	if _, err := db.r.ReadAt(b, int64(n-1)*int64(db.pageSize)); err != nil {
		return nil, fmt.Errorf("read page %d: %w", n, err)
	}
	return b, nil
}

// scan calls fn with each record of the table b-tree rooted at root, in
// rowid order.
func (db *sqliteFile) scan(root uint32, fn func(rec []any) error) error {
	// Depth-first; a page seen twice is a loop in a corrupt file.
	seen := map[uint32]bool{}
	var walk func(n uint32, depth int) error
	walk = func(n uint32, depth int) error {
		if seen[n] || depth > 64 {
			return fmt.Errorf("%w: page %d reached twice", errCorrupt, n)
		}
		seen[n] = true
		b, err := db.page(n)
		if err != nil {
			return err
		}
		hdr := 0
		if n == 1 {
			hdr = 100 // the file header comes first on page 1
		}
		kind := b[hdr]
		cells := int(binary.BigEndian.Uint16(b[hdr+3:]))
		switch kind {
		case 0x05: // interior table page: child pointers, then the right-most
			ptrs := hdr + 12
			if ptrs+2*cells > len(b) {
				return fmt.Errorf("%w: page %d: %d cells", errCorrupt, n, cells)
			}
			for i := range cells {
				off := int(binary.BigEndian.Uint16(b[ptrs+2*i:]))
				if off+4 > len(b) {
					return fmt.Errorf("%w: page %d: cell at %d", errCorrupt, n, off)
				}
				if err := walk(binary.BigEndian.Uint32(b[off:]), depth+1); err != nil {
					return err
				}
			}
			return walk(binary.BigEndian.Uint32(b[hdr+8:]), depth+1)
		case 0x0d: // leaf table page: records
			ptrs := hdr + 8
			if ptrs+2*cells > len(b) {
				return fmt.Errorf("%w: page %d: %d cells", errCorrupt, n, cells)
			}
			for i := range cells {
				off := int(binary.BigEndian.Uint16(b[ptrs+2*i:]))
				payload, err := db.cellPayload(b, off)
				if err != nil {
					return fmt.Errorf("page %d cell %d: %w", n, i, err)
				}
				rec, err := decodeRecord(payload)
				if err != nil {
					return fmt.Errorf("page %d cell %d: %w", n, i, err)
				}
				if err := fn(rec); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("%w: page %d is of type %#x, not a table page", errCorrupt, n, kind)
	}
	return walk(root, 0)
}

// cellPayload returns a leaf table cell's payload, following its overflow
// chain.
func (db *sqliteFile) cellPayload(b []byte, off int) ([]byte, error) {
	if off >= len(b) {
		return nil, errCorrupt
	}
	size, n := varint(b[off:])
	if n == 0 || size > uint64(db.pages)*uint64(db.usable) {
		return nil, fmt.Errorf("%w: payload of %d bytes in a file of %d pages", errCorrupt, size, db.pages)
	}
	off += n
	if _, n = varint(b[off:]); n == 0 { // the rowid
		return nil, fmt.Errorf("%w: rowid", errCorrupt)
	}
	off += n
	p := int(size)
	// How much stays on the page (the file format's "X", "M" and "K").
	local := p
	if x := db.usable - 35; p > x {
		m := (db.usable-12)*32/255 - 23
		k := m + (p-m)%(db.usable-4)
		local = m
		if k <= x {
			local = k
		}
	}
	if off+local > len(b) {
		return nil, fmt.Errorf("%w: payload past the page", errCorrupt)
	}
	out := make([]byte, 0, p)
	out = append(out, b[off:off+local]...)
	if local == p {
		return out, nil
	}
	if off+local+4 > len(b) {
		return nil, fmt.Errorf("%w: overflow pointer past the page", errCorrupt)
	}
	next := binary.BigEndian.Uint32(b[off+local:])
	for hops := uint32(0); len(out) < p; hops++ {
		if next == 0 || hops > db.pages {
			return nil, fmt.Errorf("%w: overflow chain ends early", errCorrupt)
		}
		ov, err := db.page(next)
		if err != nil {
			return nil, err
		}
		next = binary.BigEndian.Uint32(ov)
		out = append(out, ov[4:4+min(db.usable-4, p-len(out))]...)
	}
	return out, nil
}

// varint decodes SQLite's big-endian variable-length integer (1 to 9
// bytes); n is 0 if b ends first.
func varint(b []byte) (v uint64, n int) {
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// decodeRecord decodes a record: NULL as nil, integers as int64, reals as
// float64, text as string, blobs as []byte.
func decodeRecord(p []byte) ([]any, error) {
	hlen, n := varint(p)
	if n == 0 || hlen > uint64(len(p)) || int(hlen) < n {
		return nil, fmt.Errorf("%w: record header", errCorrupt)
	}
	types := p[n:hlen]
	body := p[hlen:]
	var rec []any
	for len(types) > 0 {
		t, n := varint(types)
		if n == 0 {
			return nil, fmt.Errorf("%w: serial type", errCorrupt)
		}
		types = types[n:]
		size := 0
		switch {
		case t <= 4:
			size = int(t)
		case t == 5:
			size = 6
		case t == 6, t == 7:
			size = 8
		case t >= 12:
			size = int((t - 12) / 2)
		}
		if size > len(body) {
			return nil, fmt.Errorf("%w: value past the record", errCorrupt)
		}
		v := body[:size]
		body = body[size:]
		switch {
		case t == 0:
			rec = append(rec, nil)
		case t <= 6:
			var x int64
			for _, c := range v {
				x = x<<8 | int64(c)
			}
			if size > 0 && size < 8 && v[0]&0x80 != 0 { // sign-extend
				x -= 1 << (8 * size)
			}
			rec = append(rec, x)
		case t == 7:
			rec = append(rec, math.Float64frombits(binary.BigEndian.Uint64(v)))
		case t == 8, t == 9:
			rec = append(rec, int64(t-8))
		case t >= 12 && t%2 == 0:
			rec = append(rec, append([]byte(nil), v...))
		case t >= 13:
			rec = append(rec, string(v))
		default:
			return nil, fmt.Errorf("%w: serial type %d", errCorrupt, t)
		}
	}
	return rec, nil
}

// table finds a table's root page and column names in sqlite_schema.
func (db *sqliteFile) table(name string) (root uint32, cols []string, err error) {
	err = db.scan(1, func(rec []any) error {
		if len(rec) < 5 || rec[0] != "table" || rec[1] != name {
			return nil
		}
		r, ok := rec[3].(int64)
		sql, ok2 := rec[4].(string)
		if !ok || !ok2 || r <= 0 {
			return fmt.Errorf("%w: schema entry of %s", errCorrupt, name)
		}
		root, cols = uint32(r), columns(sql)
		return nil
	})
	if err == nil && root == 0 {
		err = fmt.Errorf("no table %s", name)
	}
	return root, cols, err
}

// columns lists the column names of a CREATE TABLE statement, leaving out
// table constraints.
func columns(sql string) []string {
	i, j := strings.Index(sql, "("), strings.LastIndex(sql, ")")
	if i < 0 || j < i {
		return nil
	}
	var cols []string
	depth, start := 0, i+1
	body := sql[:j]
	for k := i + 1; k <= j; k++ {
		if k < j {
			switch body[k] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		def := strings.Fields(sql[start:k])
		start = k + 1
		if len(def) == 0 {
			continue
		}
		switch strings.ToUpper(def[0]) {
		case "PRIMARY", "FOREIGN", "UNIQUE", "CHECK", "CONSTRAINT":
			continue
		}
		cols = append(cols, strings.Trim(def[0], "\"`[]"))
	}
	return cols
}
