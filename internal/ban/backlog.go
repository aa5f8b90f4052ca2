package ban

import "smtpban/jails"

// chunkLen is the most decisions the manager makes in one transaction
// while it is behind: about 10 ms of work here, so that a batch that
// comes in behind a botnet's burst waits for one chunk, not the burst.
const chunkLen = 1024

// backlog holds the submitted batches the manager has not made yet,
// oldest first. When all of it fits in one chunk it is made at once, in
// order, as one transaction. When it does not (a burst), the manager
// takes turns: the newest batch, if it came in since the last turn, then
// a chunk from the oldest end. A late attacker's lines come in the newest
// batch, so his ban waits for one chunk instead of the whole burst, and
// the burst is not starved: every other turn eats into it.
//
// The order only changes between bans of different batches; two bans of
// one key made out of order make one ban that keeps the later end (state
// continues a ban rather than replacing it).
type backlog struct {
	batches []batch
	n       int    // decisions held
	fresh   bool   // the newest batch came in since the last turn
	newest  uint64 // the highest sequence number taken in
	made    uint64 // every batch numbered up to made is made
}

func (b *backlog) push(x batch) {
	b.batches = append(b.batches, x)
	b.n += len(x.ds)
	b.newest = max(b.newest, x.seq)
	b.fresh = true
}

// take returns the decisions to make next (nil: none), and advances made
// past the batches it hands out whole from the oldest end.
func (b *backlog) take(limit int) []jails.Decision {
	var ds []jails.Decision
	switch last := len(b.batches) - 1; {
	case b.n == 0:
		return nil
	case b.n <= limit:
		for _, x := range b.batches {
			ds = append(ds, x.ds...)
		}
		clear(b.batches)
		b.batches = b.batches[:0]
	case b.fresh && last > 0 && len(b.batches[last].ds) <= limit:
		ds = b.batches[last].ds
		b.batches[last] = batch{}
		b.batches = b.batches[:last]
	default:
		i := 0
		for ; i < len(b.batches) && len(ds)+len(b.batches[i].ds) <= limit; i++ {
			ds = append(ds, b.batches[i].ds...)
			b.made = b.batches[i].seq
		}
		if i < len(b.batches) && len(ds) < limit {
			// Part of the next batch: it stays, with the rest.
			k := limit - len(ds)
			ds = append(ds, b.batches[i].ds[:k]...)
			b.batches[i].ds = b.batches[i].ds[k:]
		}
		clear(b.batches[:i])
		b.batches = b.batches[i:]
	}
	b.fresh = false
	b.n -= len(ds)
	if len(b.batches) == 0 {
		b.made = b.newest
	}
	return ds
}
