package replay

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendMatchIsEncodingJSON compares appendMatch with json.Encoder on
// matches whose strings hold everything that needs escaping (a user name
// comes from the log, that is from the attacker).
func TestAppendMatchIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"", "alice", "a\"b", `c\d`, "<script>&", "\x00\x1f\t\n", "é", "\u2028\u2029", "\xff\xfe", "日本", "/var/log/mail.log", "2001:db8::1", "x y"}
	str := func() string {
		var s string
		for range r.IntN(4) {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	zones := []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.FixedZone("", -5*3600-30*60)}
	for i := range 3000 {
		m := match{File: str(), Line: r.IntN(1 << 30), Jail: str(), IP: str(), User: str(),
			Time: time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))])}
		if i%3 == 0 {
			m.Event = "success"
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(m); err != nil {
			t.Fatal(err)
		}
		if got := appendMatch(nil, m); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendMatch:\n%s\nencoding/json:\n%s", got, want.Bytes())
		}
	}
}
