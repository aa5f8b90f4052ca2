package jails

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"unsafe"
)

// pileKey is a second key type: its hash sends every key to one of three
// homes, so that probe runs are long and deletes shift entries back.
type pileKey uint64

func (k pileKey) hash(seed *[2]uint64, jail uint16) uint64 {
	h := mum(uint64(k)^seed[0], uint64(jail)^seed[1]^0xa0761d6478bd642f)
	return h&^0xffffff | uint64(k%3)
}

// prefixKey is the i-th of some IPv4 and IPv6 prefixes, of two lengths.
func prefixKey(i int) wkey {
	a := floodAddr(i)
	p, _ := a.Prefix(a.BitLen() - 8*(i%2))
	return makeKey(p)
}

// TestWindowLayout: a window holds no pointers (the GC never scans the
// slab) and, with a prefix key, is 48 bytes.
func TestWindowLayout(t *testing.T) {
	if n := unsafe.Sizeof(window[wkey]{}); n != 48 {
		t.Errorf("window[wkey] is %d bytes, want 48", n)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[window[wkey]](), reflect.TypeFor[window[pileKey]](), reflect.TypeFor[event]()} {
		if p := pointerIn(typ); p != "" {
			t.Errorf("%v holds a %s", typ, p)
		}
	}
}

// pointerIn names a kind in typ that the GC would have to scan, or "".
func pointerIn(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.Struct:
		for i := range typ.NumField() {
			if p := pointerIn(typ.Field(i).Type); p != "" {
				return p
			}
		}
		return ""
	case reflect.Array:
		return pointerIn(typ.Elem())
	case reflect.Pointer, reflect.UnsafePointer, reflect.Slice, reflect.Map, reflect.String,
		reflect.Interface, reflect.Chan, reflect.Func:
		return typ.Kind().String()
	}
	return ""
}

func TestWindowTable(t *testing.T) {
	t.Run("wkey", func(t *testing.T) { testWindowTable(t, prefixKey) })
	t.Run("pileKey", func(t *testing.T) { testWindowTable(t, func(i int) pileKey { return pileKey(i) }) })
}

// testWindowTable runs random inserts, updates, deletes and expiries on a
// table of two jails against a map, checking after each step the index,
// the heap, the shard lists and the per-jail counts.
func testWindowTable[K windowKey](t *testing.T, key func(int) K) {
	type ref struct {
		jail uint16
		k    K
	}
	const maxKeys = 300
	var wt windowTable[K]
	wt.init(maxKeys, [2]uint64{rand.Uint64(), rand.Uint64()})
	wt.addJail(100)
	wt.addJail(1000)
	model := map[ref][]event{}
	rng := rand.New(rand.NewPCG(1, 2))
	now := int64(0)
	for step := range 20_000 {
		now += int64(rng.IntN(3))
		r := ref{jail: uint16(rng.IntN(2)), k: key(rng.IntN(600))}
		h := r.k.hash(&wt.seed, r.jail)
		idx := wt.find(r.jail, r.k, h)
		if _, ok := model[r]; ok != (idx >= 0) {
			t.Fatalf("step %d: find %v = %d, model has it: %v", step, r, idx, ok)
		}
		switch op := rng.IntN(10); {
		case op < 6: // a failure
			evs := append([]event(nil), model[r]...)
			evs = append(evs, event{t: now, user: uint32(step), pass: uint32(rng.IntN(4))})
			if len(evs) > 5 {
				evs = evs[1:]
			}
			if idx < 0 {
				if len(model) == maxKeys {
					// A window that expires first goes.
					fd := int64(1 << 62)
					for m, mevs := range model {
						fd = min(fd, mevs[len(mevs)-1].t+wt.span[m.jail])
					}
					top := wt.slot(wt.heap[0])
					if d := wt.deadline(top); d != fd {
						t.Fatalf("step %d: heap top deadline %d, want %d", step, d, fd)
					}
					delete(model, ref{jail: top.jail, k: top.key})
				}
				idx = wt.create(r.jail, r.k, h)
			}
			wt.set(idx, h, evs)
			model[r] = evs
		case op < 8: // a delete
			if wt.remove(r.jail, r.k) != (idx >= 0) {
				t.Fatalf("step %d: remove %v disagrees with find", step, r)
			}
			delete(model, r)
		case op < 9: // expiry
			n := wt.expire(now - 500)
			for m, mevs := range model {
				if mevs[len(mevs)-1].t+wt.span[m.jail] < now-500 {
					delete(model, m)
					n--
				}
			}
			if n != 0 {
				t.Fatalf("step %d: expire dropped %d more than the model", step, n)
			}
		default: // read back
			if idx >= 0 {
				if got := wt.loadEvents(idx); !reflect.DeepEqual(got, model[r]) {
					t.Fatalf("step %d: events %v, want %v", step, got, model[r])
				}
			}
		}
		if step%25 == 0 { // (a walk of every shard is slow)
			checkWindowTable(t, &wt, len(model))
		}
		if step%1000 == 0 {
			for m := range model {
				if wt.find(m.jail, m.k, m.k.hash(&wt.seed, m.jail)) < 0 {
					t.Fatalf("step %d: %v lost", step, m)
				}
			}
		}
	}
	if wt.evicted == 0 || len(wt.index) <= 64 {
		t.Errorf("evicted %d, index %d: the test never filled the table", wt.evicted, len(wt.index))
	}
	wt.forgetChanges()
	wt.eachShard(false, func(r shardRef, _ int32) { t.Errorf("shard %v changed after forgetChanges", r) })
}

// checkWindowTable checks the heap order, the index and the shard lists.
func checkWindowTable[K windowKey](t *testing.T, wt *windowTable[K], live int) {
	t.Helper()
	if wt.live != live || len(wt.heap) != live || wt.perJail[0]+wt.perJail[1] != live {
		t.Fatalf("live %d heap %d perJail %v, want %d", wt.live, len(wt.heap), wt.perJail, live)
	}
	for i, idx := range wt.heap {
		if int(wt.slot(idx).heapIdx) != i {
			t.Fatalf("heap[%d] = slot %d with heapIdx %d", i, idx, wt.slot(idx).heapIdx)
		}
		if i > 0 && wt.less(i, (i-1)/2) {
			t.Fatalf("heap[%d] before its parent", i)
		}
	}
	entries := 0
	for i, v := range wt.index {
		if (v == 0) != (wt.tags[i] == 0) {
			t.Fatalf("index %d: entry %d tag %d", i, v, wt.tags[i])
		}
		if v != 0 {
			entries++
		}
	}
	linked := 0
	wt.eachShard(true, func(r shardRef, first int32) {
		for v := first; v != 0; v = wt.slot(v - 1).next {
			w := wt.slot(v - 1)
			if h := w.key.hash(&wt.seed, w.jail); w.jail != r.jail || shardOf(h) != r.shard {
				t.Fatalf("slot %d of shard %v is in %d/%d", v-1, r, w.jail, shardOf(h))
			}
			linked++
		}
	})
	if entries != live || linked != live {
		t.Fatalf("%d index entries, %d linked, want %d", entries, linked, live)
	}
}
