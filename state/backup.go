package state

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The export format: JSON lines, a header first, then one record per ban,
// allow list entry and ban history entry. It is what `smtpban export`
// writes and `smtpban import` reads, for backups and for moving bans from
// one host to another.

// ExportFormat names the format in the header line.
const ExportFormat = "smtpban-export"

// ExportVersion is the version of the format this package writes; Import
// refuses a newer one.
const ExportVersion = 1

// Record is one line of an export.
type Record struct {
	Type string `json:"type"` // "header", "ban", "allow", "history"
	// header
	Format  string    `json:"format,omitempty"`
	Version int       `json:"version,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// ban, allow and history
	Prefix netip.Prefix `json:"prefix,omitzero"`
	// ban
	Jail     string    `json:"jail,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Until    time.Time `json:"until,omitzero"` // ban, allow; zero: for good
	Failures int       `json:"failures,omitempty"`
	Lines    []string  `json:"lines,omitempty"`
	Origin   string    `json:"origin,omitempty"`
	Count    int       `json:"count,omitempty"` // ban, history
	// history
	Last time.Time `json:"last,omitzero"`
}

// Export writes every ban, the allow list and the ban history to w as
// JSON lines, all read in one transaction: a consistent copy of a running
// daemon's state. Bans expired but not yet swept are left out.
func (s *Store) Export(w io.Writer, now time.Time) (n int, err error) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := enc.Encode(Record{Type: "header", Format: ExportFormat, Version: ExportVersion, Time: now.UTC()}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBans).ForEach(func(k, v []byte) error {
			b, err := decodeBan(v)
			if err != nil {
				return fmt.Errorf("ban %x: %w", k, err)
			}
			if !b.Until.IsZero() && !b.Until.After(now) {
				return nil
			}
			n++
			return enc.Encode(Record{Type: "ban", Prefix: b.Prefix, Jail: b.Jail, Since: b.Since, Until: b.Until,
				Failures: b.Failures, Lines: b.Lines, Origin: b.Origin, Count: b.Count})
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAllow).ForEach(func(k, v []byte) error {
			p, until, err := decodeAllow(k, v)
			if err != nil {
				return err
			}
			n++
			return enc.Encode(Record{Type: "allow", Prefix: p, Until: until})
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketHistory).ForEach(func(k, v []byte) error {
			p, err := keyPrefix(k)
			if err != nil {
				return err
			}
			h, err := decodeHistory(v)
			if err != nil {
				return fmt.Errorf("history %s: %w", p, err)
			}
			n++
			return enc.Encode(Record{Type: "history", Prefix: p, Count: h.count, Last: h.last})
		})
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return n, fmt.Errorf("export state: %w", err)
	}
	return n, nil
}

func decodeAllow(k, v []byte) (netip.Prefix, time.Time, error) {
	p, err := keyPrefix(k)
	if err != nil {
		return p, time.Time{}, err
	}
	if len(v) != 8 {
		return p, time.Time{}, fmt.Errorf("%w: allow entry %s is %d bytes, want 8", ErrCorrupt, p, len(v))
	}
	var until time.Time
	if n := binary.BigEndian.Uint64(v); n != 0 {
		until = time.Unix(0, int64(n)).UTC()
	}
	return p, until, nil
}

// History is one prefix's ban history.
type History struct {
	Prefix netip.Prefix
	Count  int
	Last   time.Time
}

// Merge is what an import brings.
type Merge struct {
	Bans    []Ban
	Allows  map[netip.Prefix]time.Time // zero: for good
	History []History
}

// BadLine is a line of an export that could not be read.
type BadLine struct {
	Line int
	Err  error
}

func (b BadLine) Error() string { return fmt.Sprintf("line %d: %v", b.Line, b.Err) }

// maxExportLine bounds one line of an export (a ban keeps a log line or,
// from older versions, a window's lines).
const maxExportLine = 4 << 20

// ReadExport reads an export. A line that is not a valid record is
// skipped and reported in bad; only an unreadable stream, a missing header
// or a newer format version fail it all.
func ReadExport(r io.Reader) (m Merge, bad []BadLine, err error) {
	m.Allows = map[netip.Prefix]time.Time{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	line, header := 0, false
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			if !header {
				return m, bad, fmt.Errorf("line %d: not an smtpban export: %w", line, err)
			}
			bad = append(bad, BadLine{line, err})
			continue
		}
		if !header {
			if rec.Type != "header" || rec.Format != ExportFormat {
				return m, bad, fmt.Errorf("line %d: not an smtpban export (no %q header)", line, ExportFormat)
			}
			if rec.Version > ExportVersion || rec.Version < 1 {
				return m, bad, fmt.Errorf("line %d: export format version %d, this smtpban reads up to %d", line, rec.Version, ExportVersion)
			}
			header = true
			continue
		}
		if err := addRecord(&m, rec); err != nil {
			bad = append(bad, BadLine{line, err})
		}
	}
	if err := sc.Err(); err != nil {
		return m, bad, fmt.Errorf("read export after line %d: %w", line, err)
	}
	if !header {
		return m, bad, errors.New("empty: not an smtpban export")
	}
	return m, bad, nil
}

func addRecord(m *Merge, r Record) error {
	if r.Type != "header" && !r.Prefix.IsValid() {
		return fmt.Errorf("%s record without a valid prefix", r.Type)
	}
	switch r.Type {
	case "ban":
		b, err := normalize(Ban{Prefix: r.Prefix, Jail: r.Jail, Since: r.Since, Until: r.Until,
			Failures: r.Failures, Lines: r.Lines, Origin: r.Origin, Count: r.Count})
		if err != nil {
			return fmt.Errorf("ban %s: %w", r.Prefix, err)
		}
		if b.Jail == "" {
			return fmt.Errorf("ban %s: no jail", r.Prefix)
		}
		m.Bans = append(m.Bans, b)
	case "allow":
		p := r.Prefix.Masked()
		if old, ok := m.Allows[p]; ok && (old.IsZero() || (!r.Until.IsZero() && old.After(r.Until))) {
			return nil
		}
		m.Allows[p] = r.Until
	case "history":
		if r.Count < 0 {
			return fmt.Errorf("history %s: negative count", r.Prefix)
		}
		m.History = append(m.History, History{Prefix: r.Prefix.Masked(), Count: r.Count, Last: r.Last.UTC()})
	default:
		return fmt.Errorf("unknown record type %q", r.Type)
	}
	return nil
}

// MergeResult says what Merge changed.
type MergeResult struct {
	Bans    []Ban // the bans written (new, or with a later until), as stored
	Kept    int   // bans left alone: the saved one ends as late or later
	Expired int   // bans and allow entries skipped: over already
	Allows  int   // allow entries written
	History int   // history entries raised
}

// Merge writes m in one transaction: a ban is written where none is saved
// or the saved one ends earlier (the later until wins; zero is latest);
// expired bans and allow entries are skipped; an allow entry likewise
// keeps the later end; a history keeps the higher count and the later
// time. Merged bans do not count as new bans in the history: the history
// comes with the export.
func (s *Store) Merge(m Merge, now time.Time) (MergeResult, error) {
	var res MergeResult
	err := s.db.Update(func(tx *bolt.Tx) error {
		bans, expiry := tx.Bucket(bucketBans), tx.Bucket(bucketExpiry)
		for _, b := range m.Bans {
			b, err := normalize(b)
			if err != nil {
				return fmt.Errorf("ban %s: %w", b.Prefix, err)
			}
			if !b.Until.IsZero() && !b.Until.After(now) {
				res.Expired++
				continue
			}
			k := prefixKey(b.Prefix)
			if v := bans.Get(k); v != nil {
				old, err := decodeBan(v)
				if err != nil {
					return err
				}
				if old.Until.IsZero() || (!b.Until.IsZero() && !b.Until.After(old.Until)) {
					res.Kept++
					continue
				}
				if err := expiry.Delete(expiryKey(old.Until, old.Prefix)); err != nil {
					return err
				}
				b.Count = max(b.Count, old.Count)
			}
			b.Count = max(b.Count, 1)
			v, err := encodeBan(b)
			if err != nil {
				return err
			}
			if err := bans.Put(k, v); err != nil {
				return err
			}
			if !b.Until.IsZero() {
				if err := expiry.Put(expiryKey(b.Until, b.Prefix), nil); err != nil {
					return err
				}
			}
			res.Bans = append(res.Bans, b)
		}
		allow := tx.Bucket(bucketAllow)
		for p, until := range m.Allows {
			if !until.IsZero() && !until.After(now) {
				res.Expired++
				continue
			}
			k := prefixKey(p.Masked())
			if v := allow.Get(k); v != nil {
				_, old, err := decodeAllow(k, v)
				if err == nil && (old.IsZero() || (!until.IsZero() && !until.After(old))) {
					continue
				}
			}
			var v [8]byte
			if !until.IsZero() {
				binary.BigEndian.PutUint64(v[:], uint64(until.UnixNano()))
			}
			if err := allow.Put(k, v[:]); err != nil {
				return err
			}
			res.Allows++
		}
		hist := tx.Bucket(bucketHistory)
		for _, h := range m.History {
			k := prefixKey(h.Prefix.Masked())
			old, err := getHistory(tx, k)
			if err != nil {
				return err
			}
			nh := history{count: max(old.count, h.Count), last: later(old.last, h.Last)}
			if nh.count == old.count && nh.last.Equal(old.last) {
				continue
			}
			if err := hist.Put(k, encodeHistory(nh)); err != nil {
				return err
			}
			res.History++
		}
		return nil
	})
	if err != nil {
		return MergeResult{}, fmt.Errorf("merge import: %w", err)
	}
	return res, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
