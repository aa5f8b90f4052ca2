package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
)

// When a branch page is damaged, the leaf pages below it are intact but no
// longer reachable through bbolt. scanLeaves reads the file as plain bytes
// (no map, so nothing can fault) and finds them: every page that names
// itself as a leaf and is not on the freelist. Pages on the freelist hold
// records of earlier transactions (an unbanned address, a ban since
// extended) and are never read: without a readable freelist nothing is
// scanned. A record is taken only where its shape says unambiguously which
// bucket it belongs to: bans (a prefix key and a ban's JSON), history (a
// prefix key and 16 bytes) and allow entries (a prefix key and 8 bytes).
// Windows and positions are left: they are cheap to lose.

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common), read in the
// machine's byte order as bbolt writes it.
const (
	pageHeaderSize   = 16
	leafElementSize  = 16
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	metaFreelistOffs = pageHeaderSize + 32
	metaPgidOffs     = metaFreelistOffs + 8
	metaTxidOffs     = metaPgidOffs + 8
	metaChecksumOffs = metaTxidOffs + 8
)

var errNoFreelist = errors.New("no readable meta page or freelist: orphaned leaf pages not scanned")

// scanLeaves returns, per bucket, the records found on leaf pages that are
// not on the freelist, but for those in have (bucket name, NUL, key: read
// already, not decoded again).
func scanLeaves(path string, have map[string]bool) (map[string][][2][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ps, free, hwm, ok := readMetaFreelist(data)
	if !ok {
		return nil, errNoFreelist
	}
	out := map[string][][2][]byte{}
	for id := uint64(2); id < hwm && (id+1)*ps <= uint64(len(data)); id++ {
		if free[id] {
			continue
		}
		p := data[id*ps:]
		if binary.NativeEndian.Uint64(p) != id || binary.NativeEndian.Uint16(p[8:]) != leafPageFlag {
			continue
		}
		overflow := uint64(binary.NativeEndian.Uint32(p[12:]))
		end := (id + 1 + overflow) * ps
		if end > uint64(len(data)) {
			continue
		}
		leafRecords(data[id*ps:end], have, out)
	}
	return out, nil
}

// leafRecords classifies the records of one leaf page.
func leafRecords(p []byte, have map[string]bool, out map[string][][2][]byte) {
	count := int(binary.NativeEndian.Uint16(p[10:]))
	if pageHeaderSize+count*leafElementSize > len(p) {
		return
	}
	for i := range count {
		e := pageHeaderSize + i*leafElementSize
		flags := binary.NativeEndian.Uint32(p[e:])
		pos := uint64(binary.NativeEndian.Uint32(p[e+4:]))
		ksize := uint64(binary.NativeEndian.Uint32(p[e+8:]))
		vsize := uint64(binary.NativeEndian.Uint32(p[e+12:]))
		start := uint64(e) + pos
		if start+ksize+vsize > uint64(len(p)) {
			continue
		}
		k, v := p[start:start+ksize], p[start+ksize:start+ksize+vsize]
		if flags&bucketLeafFlag != 0 {
			continue // a bucket; an inline one is small and read by the walk
		}
		if _, err := keyPrefix(k); err != nil {
			continue
		}
		name := bucketBans
		switch len(v) {
		case 16:
			name = bucketHistory
		case 8:
			name = bucketAllow
		}
		if have[string(name)+"\x00"+string(k)] {
			continue
		}
		if bytes.Equal(name, bucketBans) {
			if _, err := decodeBan(v); err != nil {
				continue
			}
		}
		out[string(name)] = append(out[string(name)], [2][]byte{bytes.Clone(k), bytes.Clone(v)})
	}
}

// readMetaFreelist picks the newer valid meta page and reads its freelist:
// the page size, the free page ids and the high water mark.
func readMetaFreelist(data []byte) (ps uint64, free map[uint64]bool, hwm uint64, ok bool) {
	var best []byte
	var bestTx uint64
	for _, size := range []uint64{uint64(os.Getpagesize()), 4096, 16384, 65536} {
		for m := range uint64(2) {
			off := m * size
			if m == 0 {
				off = 0
			}
			if off+metaChecksumOffs+8 > uint64(len(data)) {
				continue
			}
			meta := data[off:]
			if binary.NativeEndian.Uint32(meta[pageHeaderSize:]) != boltMagic ||
				uint64(binary.NativeEndian.Uint32(meta[metaPageSizeOffs:])) != size {
				continue
			}
			h := fnv.New64a()
			h.Write(meta[pageHeaderSize:metaChecksumOffs])
			if h.Sum64() != binary.NativeEndian.Uint64(meta[metaChecksumOffs:]) {
				continue
			}
			if tx := binary.NativeEndian.Uint64(meta[metaTxidOffs:]); best == nil || tx > bestTx {
				best, bestTx, ps = meta, tx, size
			}
		}
		if best != nil {
			break
		}
	}
	if best == nil {
		return 0, nil, 0, false
	}
	hwm = binary.NativeEndian.Uint64(best[metaPgidOffs:])
	fl := binary.NativeEndian.Uint64(best[metaFreelistOffs:])
	if fl >= hwm || (fl+1)*ps > uint64(len(data)) {
		return 0, nil, 0, false
	}
	p := data[fl*ps:]
	if binary.NativeEndian.Uint64(p) != fl || binary.NativeEndian.Uint16(p[8:]) != freelistPageFlag {
		return 0, nil, 0, false
	}
	n, idx := uint64(binary.NativeEndian.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xFFFF {
		n = binary.NativeEndian.Uint64(p[idx:])
		idx += 8
	}
	if idx+n*8 > uint64(len(data))-fl*ps {
		return 0, nil, 0, false
	}
	free = make(map[uint64]bool, n)
	for i := range n {
		free[binary.NativeEndian.Uint64(p[idx+i*8:])] = true
	}
	return ps, free, hwm, true
}
