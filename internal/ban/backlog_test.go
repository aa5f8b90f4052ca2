package ban

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"smtpban/jails"
)

// batchOf is a batch of n decisions numbered from first, each keyed by
// its number, so that a test can read back the order they were taken in.
func batchOf(first, n int) batch {
	ds := make([]jails.Decision, n)
	for i := range ds {
		k := first + i
		ds[i].Key = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}), 32)
	}
	return batch{seq: uint64(first + n - 1), ds: ds}
}

func numbers(ds []jails.Decision) []int {
	var out []int
	for _, d := range ds {
		b := d.Key.Addr().As4()
		out = append(out, int(b[1])<<16|int(b[2])<<8|int(b[3]))
	}
	return out
}

func upto(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestBacklogSmallIsOneTurnInOrder: what fits in a chunk is made at once,
// in order, and every batch is made after it.
func TestBacklogSmallIsOneTurnInOrder(t *testing.T) {
	var bl backlog
	bl.push(batchOf(1, 3))
	bl.push(batchOf(4, 2))
	if got := numbers(bl.take(10)); !slices.Equal(got, upto(1, 5)) {
		t.Errorf("took %v, want 1..5", got)
	}
	if bl.made != 5 || bl.n != 0 {
		t.Errorf("made %d, held %d; want 5, 0", bl.made, bl.n)
	}
	if ds := bl.take(10); ds != nil {
		t.Errorf("took %v from an empty backlog", numbers(ds))
	}
}

// TestBacklogLateBatchSkipsTheBurst: behind a burst, a batch that comes in
// is made after the chunk in hand, not after the whole burst, and the
// burst keeps draining from its oldest end; made never passes a batch
// that is not made.
func TestBacklogLateBatchSkipsTheBurst(t *testing.T) {
	var bl backlog
	for i := range 10 { // the burst: 10 batches of 4
		bl.push(batchOf(1+4*i, 4))
	}
	// The burst's newest batch came in with it: it goes first, as any
	// newcomer would, then chunks from the oldest end.
	var turns [][]int
	turns = append(turns, numbers(bl.take(6)))
	turns = append(turns, numbers(bl.take(6)))
	if bl.made != 4 {
		t.Errorf("after the first chunk made = %d, want 4 (batch 5..8 is half made)", bl.made)
	}
	bl.push(batchOf(41, 2)) // the late attacker
	turns = append(turns, numbers(bl.take(6)))
	if bl.made != 4 {
		t.Errorf("after the late batch made = %d, want still 4", bl.made)
	}
	for ds := bl.take(6); ds != nil; ds = bl.take(6) {
		turns = append(turns, numbers(ds))
	}
	want := [][]int{upto(37, 40), upto(1, 6), upto(41, 42), upto(7, 12), upto(13, 18), upto(19, 24), upto(25, 30), upto(31, 36)}
	if fmt.Sprint(turns) != fmt.Sprint(want) {
		t.Errorf("turns\n %v\nwant\n %v", turns, want)
	}
	if bl.made != 42 || bl.n != 0 {
		t.Errorf("made %d, held %d at the end; want 42, 0", bl.made, bl.n)
	}
}
