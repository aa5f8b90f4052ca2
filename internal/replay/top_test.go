package replay

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestTop compares top with sorting every address, on maps with many
// ties, fewer addresses than asked for, and none.
func TestTop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 5, 10, 11, 300} {
		m := map[addrKey]int{}
		for range size {
			m[netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(r.IntN(256))}).As16()] = 1 + r.IntN(4)
		}
		all := make([]addrKey, 0, len(m))
		for a := range m {
			all = append(all, a)
		}
		slices.SortFunc(all, func(a, b addrKey) int {
			if m[a] != m[b] {
				return m[b] - m[a]
			}
			return addrOf(a).Compare(addrOf(b))
		})
		want := all[:min(10, len(all))]
		if got := top(m, 10); !slices.Equal(got, want) {
			t.Errorf("%d addresses: top %v, want %v", len(m), got, want)
		}
	}
}
