package state

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// testWindows makes n windows of three failures and three log lines.
func testWindows(n int) []Window {
	ws := make([]Window, n)
	for i := range ws {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		}
		ws[i] = Window{Jail: "postfix-sasl", Key: netip.PrefixFrom(a, a.BitLen())}
		for j := range 3 {
			at := t0.Add(time.Duration(i)*time.Millisecond + time.Duration(j)*7*time.Second)
			ws[i].Times = append(ws[i].Times, at)
			ws[i].Lines = append(ws[i].Lines, fmt.Sprintf(
				"%s mx1 postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
				at.Format(time.Stamp), 1000+j, a))
		}
	}
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
		if d := diff(st.c.Windows[:st.wantWins], ws); st.wantWins > 0 && d != "" {
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
