package account

import "net/netip"

// joinMap joins Postfix's smtpd "client=" line, which names the account,
// with qmgr's "from=" line, which counts the recipients, by queue ID.
// Either may come first (two programs, two journals' worth of ordering),
// either may be lost (a held message has no qmgr line until released), and
// queue IDs are reused in time: entries age out after ttl, and past max
// the oldest goes.
type joinMap struct {
	max  int
	ttl  int64
	m    map[string]*joinEntry
	fifo []joinRef // in order of creation, to age out and to evict
	head int
}

type joinEntry struct {
	t        int64 // made at
	user     string
	addr     netip.Addr
	rcpt     int  // qmgr's nrcpt when it came first; -1 none
	rcptDone bool // recipients counted
	policy   bool // the policy service counted the message and its recipients
}

type joinRef struct {
	id string
	t  int64
}

func (j *joinMap) get(id string) (*joinEntry, bool) {
	e, ok := j.m[id]
	return e, ok
}

func (j *joinMap) put(id string, now int64) *joinEntry {
	if j.m == nil {
		j.m = map[string]*joinEntry{}
	}
	for len(j.m) >= j.max && j.head < len(j.fifo) {
		j.drop()
	}
	e := &joinEntry{t: now, rcpt: -1}
	j.m[id] = e
	j.fifo = append(j.fifo, joinRef{id, now})
	return e
}

// drop forgets the oldest entry.
func (j *joinMap) drop() {
	r := j.fifo[j.head]
	j.fifo[j.head] = joinRef{}
	j.head++
	if e, ok := j.m[r.id]; ok && e.t == r.t {
		delete(j.m, r.id)
	}
	if j.head > 1024 && j.head*2 > len(j.fifo) {
		j.fifo = append(j.fifo[:0], j.fifo[j.head:]...)
		j.head = 0
	}
}

// expire forgets entries older than ttl.
func (j *joinMap) expire(now int64) {
	for j.head < len(j.fifo) && j.fifo[j.head].t < now-j.ttl {
		j.drop()
	}
}

func (j *joinMap) len() int { return len(j.m) }
