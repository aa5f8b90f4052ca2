package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// banRecord is the stored form of a Ban. It is separate from Ban so that the
// on-disk field names stay fixed whatever Ban grows into.
type banRecord struct {
	Prefix   netip.Prefix `json:"prefix"`
	Jail     string       `json:"jail"`
	Since    time.Time    `json:"since"`
	Until    time.Time    `json:"until,omitzero"`
	Failures int          `json:"failures,omitempty"`
	Lines    []string     `json:"lines,omitempty"`
	Origin   string       `json:"origin,omitempty"`
	Count    int          `json:"count"`
}

func encodeBan(b Ban) ([]byte, error) {
	return json.Marshal(banRecord(b))
}

func decodeBan(v []byte) (Ban, error) {
	var r banRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Ban{}, fmt.Errorf("decode ban: %w", err)
	}
	return Ban(r), nil
}

// prefixKey is the bucket key of a prefix: its binary form (address bytes
// then the bit length), so that a /32 and the address's /24 are distinct.
func prefixKey(p netip.Prefix) []byte {
	k, _ := p.MarshalBinary() // cannot fail for a valid prefix
	return k
}

func keyPrefix(k []byte) (netip.Prefix, error) {
	var p netip.Prefix
	if err := p.UnmarshalBinary(k); err != nil {
		return netip.Prefix{}, fmt.Errorf("decode prefix key %x: %w", k, err)
	}
	return p, nil
}

// unixNanos is t in Unix nanoseconds, clamped to what int64 can hold
// (years 1678 to 2262) so a far-future ban still sorts last.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// expiryKey orders by Until: big-endian nanoseconds with the sign bit
// flipped, so that byte order is time order, then the prefix key so that
// two bans expiring at the same instant keep distinct keys.
func expiryKey(until time.Time, p netip.Prefix) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+17), uint64(unixNanos(until))^(1<<63))
	return append(k, prefixKey(p)...)
}

func splitExpiryKey(k []byte) (time.Time, netip.Prefix, error) {
	if len(k) < 8 {
		return time.Time{}, netip.Prefix{}, fmt.Errorf("expiry key %x: too short", k)
	}
	n := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	p, err := keyPrefix(k[8:])
	return time.Unix(0, n).UTC(), p, err
}

// history is what escalation needs to know about a prefix.
type history struct {
	count int
	last  time.Time
}

func encodeHistory(h history) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(h.count))
	return binary.BigEndian.AppendUint64(v, uint64(unixNanos(h.last)))
}

func decodeHistory(v []byte) (history, error) {
	if len(v) != 16 {
		return history{}, fmt.Errorf("decode history: %d bytes, want 16", len(v))
	}
	return history{
		count: int(binary.BigEndian.Uint64(v)),
		last:  time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
	}, nil
}

var errShortWindow = errors.New("truncated window record")

// windowDecoder reads windows out of a chunk. Every string and slice it
// returns is a copy: the chunk is bbolt memory, valid only inside the tx.
type windowDecoder struct {
	b   []byte
	err error
}

func (d *windowDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortWindow
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *windowDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShortWindow
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *windowDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShortWindow
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// count reads a slice length and bounds it by the bytes left (every element
// takes at least one byte) so garbage cannot ask for a huge allocation.
func (d *windowDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShortWindow
		return 0
	}
	return int(n)
}

func (d *windowDecoder) next() (Window, error) {
	var w Window
	w.Jail = string(d.bytes())
	pk := d.bytes()
	if d.err == nil {
		if err := w.Key.UnmarshalBinary(pk); err != nil {
			return Window{}, fmt.Errorf("decode window key: %w", err)
		}
	}
	if n := d.count(); n > 0 {
		w.Times = make([]time.Time, n)
		var prev int64
		for i := range w.Times {
			prev += d.varint()
			w.Times[i] = time.Unix(0, prev).UTC()
		}
	}
	if n := d.count(); n > 0 {
		w.Lines = make([]string, n)
		for i := range w.Lines {
			w.Lines[i] = string(d.bytes())
		}
	}
	if d.err != nil {
		return Window{}, fmt.Errorf("decode window: %w", d.err)
	}
	return w, nil
}

// decodeWindows appends every window of one chunk to dst.
func decodeWindows(dst []Window, chunk []byte) ([]Window, error) {
	d := windowDecoder{b: chunk}
	for len(d.b) > 0 {
		w, err := d.next()
		if err != nil {
			return dst, err
		}
		dst = append(dst, w)
	}
	return dst, nil
}

// AppendWindows appends the shard value of ws (one jail's windows; Jail
// is not stored, the shard's key names it): for each window its prefix in
// binary form, then its failures, each as the time's delta from the
// previous (zig-zag varint, the first from 0) and the user and
// fingerprint hashes as uvarints (1 byte each when none). A window of one
// failure takes about 18 bytes.
func AppendWindows(dst []byte, ws []Window) []byte {
	for _, w := range ws {
		dst = binary.AppendUvarint(dst, uint64(w.Key.Addr().BitLen()/8+1))
		dst, _ = w.Key.AppendBinary(dst)
		dst = binary.AppendUvarint(dst, uint64(len(w.Times)))
		var prev int64
		for i, t := range w.Times {
			n := unixNanos(t)
			dst = binary.AppendVarint(dst, n-prev)
			prev = n
			dst = binary.AppendUvarint(dst, uint64(at(w.Users, i)))
			dst = binary.AppendUvarint(dst, uint64(at(w.Passes, i)))
		}
	}
	return dst
}

func at(s []uint32, i int) uint32 {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// shardKey is a shard's key in bucketShards: the shard number, big-endian,
// then the jail's name.
func shardKey(jail string, n uint16) []byte {
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(jail)), n), jail...)
}

// decodeShard appends the windows of one shard to dst. Like decodeWindows,
// it copies everything out of the bbolt memory.
func decodeShard(dst []Window, k, v []byte) ([]Window, error) {
	if len(k) < 3 {
		return dst, fmt.Errorf("shard key %x: too short", k)
	}
	jail := string(k[2:])
	d := windowDecoder{b: v}
	for len(d.b) > 0 {
		w := Window{Jail: jail}
		pk := d.bytes()
		if d.err == nil {
			if err := w.Key.UnmarshalBinary(pk); err != nil {
				return dst, fmt.Errorf("decode window key: %w", err)
			}
		}
		// Each failure takes at least 3 bytes.
		n := d.count()
		if n > 0 && n <= len(d.b)/3 {
			w.Times = make([]time.Time, n)
			var prev int64
			for i := range n {
				prev += d.varint()
				w.Times[i] = time.Unix(0, prev).UTC()
				u, p := d.uvarint(), d.uvarint()
				if u > math.MaxUint32 || p > math.MaxUint32 {
					d.err = errors.New("hash out of range")
				}
				if (u != 0 || p != 0) && w.Users == nil {
					w.Users, w.Passes = make([]uint32, n), make([]uint32, n)
				}
				if w.Users != nil {
					w.Users[i], w.Passes[i] = uint32(u), uint32(p)
				}
			}
		} else if n > 0 {
			d.err = errShortWindow
		}
		if d.err != nil {
			return dst, fmt.Errorf("decode window: %w", d.err)
		}
		dst = append(dst, w)
	}
	return dst, nil
}

// decodeBanJailUntil reads only the jail and Until of a stored ban. It
// finds the two keys in the JSON text, which is safe because a quote
// inside a string is always escaped, so `"jail":"` occurs unescaped only as
// the key (banRecord has no nested objects); anything unusual (an escape
// in the jail's name, a time that does not parse) goes through
// json.Unmarshal. About 13 times faster than decoding the whole ban.
func decodeBanJailUntil(v []byte) (string, time.Time, error) {
	if jail, ok := jsonStringField(v, `"jail":"`); ok {
		until, ok := jsonStringField(v, `"until":"`)
		if !ok && !bytes.Contains(v, []byte(`"until":`)) {
			return jail, time.Time{}, nil // omitted: zero
		}
		if t, err := time.Parse(time.RFC3339Nano, until); ok && err == nil {
			return jail, t, nil
		}
	}
	var r struct {
		Jail  string    `json:"jail"`
		Until time.Time `json:"until"`
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return "", time.Time{}, fmt.Errorf("decode ban: %w", err)
	}
	return r.Jail, r.Until, nil
}

// jsonStringField returns the string after key (which ends in the value's
// opening quote) up to its closing quote, if it has no escapes.
func jsonStringField(v []byte, key string) (string, bool) {
	i := bytes.Index(v, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := v[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
}
