package state

import (
	"cmp"
	"encoding/binary"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// testWindows makes n windows of three failures, with user and
// fingerprint hashes on every other one.
func testWindows(n int) []Window {
	ws := make([]Window, n)
	for i := range ws {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		}
		ws[i] = Window{Jail: "postfix-sasl", Key: netip.PrefixFrom(a, a.BitLen())}
		for j := range 3 {
			ws[i].Times = append(ws[i].Times, t0.Add(time.Duration(i)*time.Millisecond+time.Duration(j)*7*time.Second))
		}
		if i%2 == 1 {
			ws[i].Users = []uint32{uint32(i), 0, 0xffffffff}
			ws[i].Passes = []uint32{0, 7, 0xfffffffe}
		}
	}
	return ws
}

// sortWindows orders windows by jail and key: shards come back in any order.
func sortWindows(ws []Window) []Window {
	slices.SortFunc(ws, func(a, b Window) int {
		return cmp.Or(strings.Compare(a.Jail, b.Jail), a.Key.Addr().Compare(b.Key.Addr()), cmp.Compare(a.Key.Bits(), b.Key.Bits()))
	})
	return ws
}

func TestCheckpoint(t *testing.T) {
	s := mustOpen(t)
	steps := []struct {
		name     string
		c        Checkpoint
		wantPos  map[string]string
		wantWins int
	}{
		{
			name:     "first",
			c:        Checkpoint{Positions: map[string][]byte{"mail.log": []byte("ino=1 off=10")}, Windows: testWindows(3000)},
			wantPos:  map[string]string{"mail.log": "ino=1 off=10"},
			wantWins: 3000,
		},
		{
			name:     "another source is added, windows replaced by fewer",
			c:        Checkpoint{Positions: map[string][]byte{"journal": []byte("s=abc")}, Windows: testWindows(5)},
			wantPos:  map[string]string{"mail.log": "ino=1 off=10", "journal": "s=abc"},
			wantWins: 5,
		},
		{
			// The 7 given windows are ignored: the 5 saved ones stay.
			name:     "only positions move, windows kept",
			c:        Checkpoint{Positions: map[string][]byte{"mail.log": []byte("ino=1 off=50")}, Windows: testWindows(7), KeepWindows: true},
			wantPos:  map[string]string{"mail.log": "ino=1 off=50", "journal": "s=abc"},
			wantWins: 5,
		},
		{
			name:     "a position moves, no windows left",
			c:        Checkpoint{Positions: map[string][]byte{"mail.log": []byte("ino=1 off=99")}},
			wantPos:  map[string]string{"mail.log": "ino=1 off=99", "journal": "s=abc"},
			wantWins: 0,
		},
	}
	var held map[string][]byte
	for _, st := range steps {
		if err := s.Checkpoint(st.c); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		s = reopen(t, s)
		pos, err := s.Positions()
		if err != nil {
			t.Fatal(err)
		}
		if len(pos) != len(st.wantPos) {
			t.Errorf("%s: positions %q, want %q", st.name, pos, st.wantPos)
		}
		for k, v := range st.wantPos {
			if string(pos[k]) != v {
				t.Errorf("%s: position %s = %q, want %q", st.name, k, pos[k], v)
			}
		}
		if held == nil {
			held = pos
		}
		ws, err := s.Windows()
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(sortWindows(st.c.Windows[:st.wantWins]), sortWindows(ws)); st.wantWins > 0 && d != "" {
			t.Errorf("%s: windows (-want +got):\n%s", st.name, d)
		}
		if len(ws) != st.wantWins {
			t.Errorf("%s: %d windows, want %d", st.name, len(ws), st.wantWins)
		}
	}
	// Values were copied out of their transactions: later writes and
	// reopenings did not change what an earlier read returned.
	if got := string(held["mail.log"]); got != "ino=1 off=10" {
		t.Errorf("an earlier Positions result changed to %q", got)
	}
}

// TestCheckpointShards saves windows a shard at a time, the way the
// daemon does, and checks after each reopening that the saved windows are
// exactly the model's: changed shards replaced, emptied ones gone, the
// others untouched, Replace dropping everything else.
func TestCheckpointShards(t *testing.T) {
	s := mustOpen(t)
	ws := testWindows(40)
	shard := func(jail string, n uint16, idx ...int) Shard {
		var g []Window
		for _, i := range idx {
			w := ws[i]
			w.Jail = jail
			g = append(g, w)
		}
		return Shard{Jail: jail, N: n, Value: AppendWindows(nil, g)}
	}
	model := map[string][]int{} // "jail/n" -> windows
	apply := func(replace bool, shs ...Shard) {
		t.Helper()
		if replace {
			clear(model)
		}
		for _, sh := range shs {
			k := fmt.Sprintf("%s/%d", sh.Jail, sh.N)
			delete(model, k)
			if len(sh.Value) > 0 {
				var idx []int
				d, _ := decodeShard(nil, shardKey(sh.Jail, sh.N), sh.Value)
				for _, w := range d {
					idx = append(idx, slices.IndexFunc(ws, func(x Window) bool { return x.Key == w.Key }))
				}
				model[k] = idx
			}
		}
		if err := s.Checkpoint(Checkpoint{Positions: map[string][]byte{"mail.log": []byte(fmt.Sprint(len(model)))}, Shards: shs, Replace: replace, KeepWindows: true}); err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s)
		var want []Window
		for k, idx := range model {
			jail, _, _ := strings.Cut(k, "/")
			for _, i := range idx {
				w := ws[i]
				w.Jail = jail
				want = append(want, w)
			}
		}
		got, err := s.Windows()
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(sortWindows(want), sortWindows(got)); len(want)+len(got) > 0 && d != "" {
			t.Fatalf("windows (-want +got):\n%s", d)
		}
	}
	apply(false, shard("a", 0, 0, 1, 2), shard("a", 1, 3), shard("b", 0, 4, 5))      // added
	apply(false, shard("a", 1, 3, 6))                                                // one shard changed, others kept
	apply(false, shard("a", 0), shard("b", 0, 5))                                    // emptied; shrunk
	apply(false)                                                                     // nothing changed
	apply(true, shard("c", 9, 10, 11), shard("a", 1, 12))                            // replaced
	apply(false, shard("c", 9, 10, 11, 13), shard("c", 8191, 14), shard("d", 2, 15)) // grown, new jails
}

// TestCheckpointUpgradesSchema1 opens a schema-1 database: its windows
// (with lines, no hashes) read back, and the first Replace drops them.
func TestCheckpointUpgradesSchema1(t *testing.T) {
	s := mustOpen(t)
	old := []Window{{Jail: "j", Key: pfx("192.0.2.1"), Times: []time.Time{t0, t0.Add(time.Second)}, Lines: []string{"one", "two"}}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1)); err != nil {
			return err
		}
		return tx.Bucket(bucketWindows).Put(binary.BigEndian.AppendUint32(nil, 0), appendWindow(nil, old[0]))
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got, err := s.Windows()
	if err != nil || diff(old, got) != "" {
		t.Fatalf("schema-1 windows read back as %+v, %v (-want +got):\n%s", got, err, diff(old, got))
	}
	now := testWindows(2)
	if err := s.Checkpoint(Checkpoint{Windows: now}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got, err = s.Windows()
	if err != nil || diff(sortWindows(now), sortWindows(got)) != "" {
		t.Fatalf("after a replacing checkpoint: %+v, %v", got, err)
	}
}

func TestHashKey(t *testing.T) {
	s := mustOpen(t)
	k1, err := s.HashKey()
	if err != nil || k1 == [16]byte{} {
		t.Fatalf("HashKey = %x, %v", k1, err)
	}
	s = reopen(t, s)
	if k2, err := s.HashKey(); err != nil || k2 != k1 {
		t.Fatalf("after reopening HashKey = %x, %v; want %x", k2, err, k1)
	}
	if k3, _ := mustOpen(t).HashKey(); k3 == k1 {
		t.Error("two databases made the same key")
	}
}

func TestShardCodec(t *testing.T) {
	ws := testWindows(6)
	ws = append(ws, Window{Jail: "postfix-sasl", Key: pfx("2001:db8::/64"), Times: []time.Time{time.Date(1969, 7, 20, 20, 17, 0, 1, time.UTC)}})
	b := AppendWindows(nil, ws)
	k := shardKey("postfix-sasl", 77)
	got, err := decodeShard(nil, k, b)
	if err != nil || diff(ws, got) != "" {
		t.Fatalf("round trip: %v (-want +got):\n%s", err, diff(ws, got))
	}
	for n := 1; n < len(b); n++ {
		if ws, err := decodeShard(nil, k, b[:n]); err == nil && len(ws) == len(got) {
			t.Fatalf("decoding %d of %d bytes gave every window back", n, len(b))
		}
	}
}

func FuzzDecodeShard(f *testing.F) {
	f.Add(AppendWindows(nil, testWindows(2)))
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := decodeShard(nil, []byte("\x00\x01j"), b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same windows.
		if ws2, err := decodeShard(nil, []byte("\x00\x01j"), AppendWindows(nil, ws)); err != nil || diff(ws, ws2) != "" {
			t.Fatalf("re-encoding changed the windows: %v", err)
		}
	})
}

func TestWindowCodec(t *testing.T) {
	long := strings.Repeat("x", 70<<10)
	tests := []struct {
		name string
		w    Window
	}{
		{"empty", Window{}},
		{"ipv4 no times", Window{Jail: "j", Key: pfx("192.0.2.1")}},
		{"ipv6 prefix", Window{Jail: "dovecot", Key: pfx("2001:db8::/64"), Times: []time.Time{t0}}},
		{"times out of order and before 1970", Window{Jail: "j", Key: pfx("192.0.2.0/24"), Times: []time.Time{
			t0, t0.Add(-time.Hour), time.Date(1969, 7, 20, 20, 17, 0, 1, time.UTC), t0.Add(time.Nanosecond)}}},
		{"lines with binary and a long one", Window{Jail: "j", Key: pfx("::1"), Times: []time.Time{t0, t0},
			Lines: []string{"", "a\x00b\xff", long}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendWindow(nil, tt.w)
			got, err := decodeWindows(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("decoded %d windows, want 1", len(got))
			}
			if d := diff(tt.w, got[0]); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
			// Every strict prefix of a record is an error, never a panic
			// or a wrong window.
			for n := range len(b) {
				if ws, err := decodeWindows(nil, b[:n]); err == nil && n > 0 {
					t.Fatalf("decoding %d of %d bytes gave %v, want an error", n, len(b), ws)
				}
			}
		})
	}
}

func FuzzDecodeWindows(f *testing.F) {
	f.Add(appendWindow(nil, testWindows(1)[0]))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := decodeWindows(nil, b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		var re []byte
		for _, w := range ws {
			re = appendWindow(re, w)
		}
		if ws2, err := decodeWindows(nil, re); err != nil || diff(ws, ws2) != "" {
			t.Fatalf("re-encoding changed the windows: %v", err)
		}
	})
}

func TestExpiryKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), // clamped
		time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, -1),
		time.Unix(0, 0),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), // clamped
	}
	for i := 1; i < len(times); i++ {
		a := expiryKey(times[i-1], pfx("255.255.255.255"))
		b := expiryKey(times[i], pfx("0.0.0.0/0"))
		if string(a) >= string(b) {
			t.Errorf("key of %v does not sort before key of %v", times[i-1], times[i])
		}
	}
	until, p, err := splitExpiryKey(expiryKey(t0, pfx("2001:db8::/48")))
	if err != nil || !until.Equal(t0) || p != pfx("2001:db8::/48") {
		t.Errorf("splitExpiryKey = %v, %v, %v", until, p, err)
	}
}

// appendWindow appends w in the schema-1 form that decodeWindows reads:
// varint lengths, the prefix in its binary form, times as the first
// Unix-nanosecond value then deltas, then the lines. Only tests write it
// now, to make the databases an upgrade starts from.
func appendWindow(dst []byte, w Window) []byte {
	dst = appendString(dst, w.Jail)
	// The length of what AppendBinary writes: address bytes (none for the
	// zero prefix), then the bit length.
	dst = binary.AppendUvarint(dst, uint64(w.Key.Addr().BitLen()/8+1))
	dst, _ = w.Key.AppendBinary(dst)
	dst = binary.AppendUvarint(dst, uint64(len(w.Times)))
	var prev int64
	for _, t := range w.Times {
		n := unixNanos(t)
		dst = binary.AppendVarint(dst, n-prev)
		prev = n
	}
	dst = binary.AppendUvarint(dst, uint64(len(w.Lines)))
	for _, l := range w.Lines {
		dst = appendString(dst, l)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
