package jails

import "math/bits"

// eventPool keeps the failures of windows that have several, in blocks
// of 1<<class events inside one slice. The slice has no pointers, so the
// garbage collector never scans it, and once it has grown an update
// allocates nothing: a map of slices cost replay 4% in map assignments
// and allocations. The owner keeps a block's offset and length; blocks
// given back are reused by class, and the whole slice is dropped once no
// block is in use.
type eventPool struct {
	evs  []event
	free [32][]int32 // offsets of free blocks, by class
	used int         // blocks in use
}

// blockClass is the smallest class whose block holds n (at least 1)
// events.
func blockClass(n int) int { return bits.Len(uint(n - 1)) }

// get returns the n events of the block at off. They alias the pool: a
// later set or release may overwrite them.
func (p *eventPool) get(off int32, n int) []event {
	return p.evs[off : int(off)+n]
}

// set stores evs (not empty, not aliasing the pool) in the block at off
// holding n events, or in a new block if off is -1 or the block is of
// another class (it is then released), and returns where they are.
func (p *eventPool) set(off int32, n int, evs []event) int32 {
	class := blockClass(len(evs))
	if off >= 0 && blockClass(n) != class {
		p.release(off, n)
		off = -1
	}
	if off < 0 {
		off = p.alloc(class)
	}
	copy(p.evs[off:], evs)
	return off
}

func (p *eventPool) alloc(class int) int32 {
	p.used++
	if free := p.free[class]; len(free) > 0 {
		off := free[len(free)-1]
		p.free[class] = free[:len(free)-1]
		return off
	}
	off := int32(len(p.evs))
	p.evs = append(p.evs, make([]event, 1<<class)...)
	return off
}

// release gives back the block at off, which holds n events.
func (p *eventPool) release(off int32, n int) {
	p.used--
	if p.used == 0 {
		*p = eventPool{}
		return
	}
	class := blockClass(n)
	p.free[class] = append(p.free[class], off)
}
