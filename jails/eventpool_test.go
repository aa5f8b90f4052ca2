package jails

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEventPool drives the pool with random stores and releases for many
// owners and checks each owner reads back exactly what it stored last:
// blocks must never overlap, whatever reuse and resizing happened.
func TestEventPool(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var p eventPool
	type owner struct {
		off  int32
		want []event
	}
	owners := make([]owner, 200)
	for i := range owners {
		owners[i].off = -1
	}
	for step := range 100000 {
		o := &owners[r.IntN(len(owners))]
		if o.off >= 0 && r.IntN(4) == 0 {
			p.release(o.off, len(o.want))
			o.off, o.want = -1, nil
		} else {
			evs := make([]event, 1+r.IntN(20))
			for i := range evs {
				evs[i] = event{t: int64(step), user: r.Uint32(), pass: uint32(i)}
			}
			o.off = p.set(o.off, len(o.want), evs)
			o.want = evs
		}
		if step%1000 == 0 {
			for i, o := range owners {
				if o.off < 0 {
					continue
				}
				if got := p.get(o.off, len(o.want)); !slices.Equal(got, o.want) {
					t.Fatalf("step %d: owner %d reads %v, stored %v", step, i, got, o.want)
				}
			}
		}
	}
	for _, o := range owners {
		if o.off >= 0 {
			p.release(o.off, len(o.want))
		}
	}
	if p.used != 0 || p.evs != nil {
		t.Fatalf("after every release: %d blocks used, %d events kept", p.used, len(p.evs))
	}
}
