package jails

import "math/bits"

// eventPool keeps the earlier failures of windows that have several, in
// blocks of 1<<class events inside one slice. The slice has no pointers,
// so the garbage collector never scans it, and once it has grown an
// update allocates nothing: a map of slices cost replay 4% in map
// assignments and allocations. A block's first event is its header,
// whose t is how many events follow it; blocks given back are reused by
// class, and the whole slice is dropped once no window has a block.
type eventPool struct {
	evs  []event
	free [32][]int32 // offsets of free blocks, by class
	used int         // blocks in use
}

// blockClass is the smallest class whose block holds n events besides
// its header.
func blockClass(n int) int { return bits.Len(uint(n)) }

// get returns the events of the block at off. They alias the pool: a
// later set or release may overwrite them.
func (p *eventPool) get(off int32) []event {
	n := int32(p.evs[off].t)
	return p.evs[off+1 : off+1+n]
}

// set stores evs (not empty) in the block at off, or in a new block if
// off is -1 or too small (off is then released), and returns where
// they are.
func (p *eventPool) set(off int32, evs []event) int32 {
	class := blockClass(len(evs))
	if off >= 0 && int(p.evs[off].user) != class {
		p.release(off)
		off = -1
	}
	if off < 0 {
		off = p.alloc(class)
	}
	p.evs[off] = event{t: int64(len(evs)), user: uint32(class)}
	copy(p.evs[off+1:], evs)
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

// release gives the block at off back.
func (p *eventPool) release(off int32) {
	class := p.evs[off].user
	p.used--
	if p.used == 0 {
		*p = eventPool{}
		return
	}
	p.free[class] = append(p.free[class], off)
}
