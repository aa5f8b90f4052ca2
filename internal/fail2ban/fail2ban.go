// Package fail2ban reads the bans fail2ban keeps in its SQLite database
// (/var/lib/fail2ban/fail2ban.sqlite3), so that a host moving to smtpban
// keeps them. It reads the file directly: see sqlite.go.
package fail2ban

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultPath is where Debian's fail2ban keeps its database (dbfile in
// fail2ban.conf).
const DefaultPath = "/var/lib/fail2ban/fail2ban.sqlite3"

// Ban is one row of fail2ban's bips table: the latest ban of an address
// in a jail (the bans table keeps every one; bips, since fail2ban 0.11,
// the one that counts).
type Ban struct {
	ID   string // what fail2ban banned: usually an address, maybe a prefix
	Jail string
	At   time.Time // timeofban
	// For is the ban's length (bantime); Permanent when fail2ban's
	// bantime was -1. A bantime of -2 (unknown, in a database upgraded
	// from 0.10) is taken as fail2ban's default, 10 minutes.
	For       time.Duration
	Permanent bool
	Count     int // bancount: the n-th ban of this address (bantime.increment)
}

// defaultBanTime is fail2ban's bantime when a jail sets none.
const defaultBanTime = 10 * time.Minute

// Left is how long the ban still runs at now; 0 if it is over. A
// permanent ban has no end: Left returns 0 and Active true.
func (b Ban) Left(now time.Time) time.Duration {
	if b.Permanent {
		return 0
	}
	return max(0, b.At.Add(b.For).Sub(now))
}

// Active says whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool { return b.Permanent || b.Left(now) > 0 }

// Prefix parses the banned ID as an address (a /32 or /128) or a prefix.
func (b Ban) Prefix() (netip.Prefix, error) {
	if a, err := netip.ParseAddr(b.ID); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	if p, err := netip.ParsePrefix(b.ID); err == nil {
		return p.Masked(), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", b.ID)
}

// Read returns every row of the bips table of the fail2ban database at
// path, ended bans too, ordered by jail, then time of ban.
func Read(path string) ([]Ban, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open fail2ban database: %w", err)
	}
	defer f.Close()
	db, err := openSQLite(f)
	if err != nil {
		return nil, fmt.Errorf("fail2ban database %s: %w", path, err)
	}
	root, cols, err := db.table("bips")
	if err != nil {
		return nil, fmt.Errorf("fail2ban database %s: %w (fail2ban before 0.11 kept no bips table: upgrade it once, or ban by hand)", path, err)
	}
	idx := map[string]int{}
	for _, c := range []string{"ip", "jail", "timeofban", "bantime", "bancount"} {
		i := slices.Index(cols, c)
		if i < 0 {
			return nil, fmt.Errorf("fail2ban database %s: table bips has no column %s (columns %s)", path, c, strings.Join(cols, ", "))
		}
		idx[c] = i
	}
	var bans []Ban
	err = db.scan(root, func(rec []any) error {
		get := func(c string) any {
			if i := idx[c]; i < len(rec) {
				return rec[i]
			}
			return nil // added by ALTER TABLE after this row was written
		}
		id, _ := get("ip").(string)
		jail, _ := get("jail").(string)
		at, ok1 := get("timeofban").(int64)
		bt, ok2 := get("bantime").(int64)
		count, ok3 := get("bancount").(int64)
		if id == "" || jail == "" || !ok1 || !ok2 {
			return fmt.Errorf("%w: a bips row without ip, jail, timeofban or bantime: %v", errCorrupt, rec)
		}
		if !ok3 {
			count = 1
		}
		b := Ban{ID: id, Jail: jail, At: time.Unix(at, 0), For: time.Duration(bt) * time.Second, Count: int(count)}
		switch {
		case bt == -1:
			b.Permanent, b.For = true, 0
		case bt < 0:
			b.For = defaultBanTime
		}
		bans = append(bans, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fail2ban database %s: read bips: %w", path, err)
	}
	slices.SortStableFunc(bans, func(a, b Ban) int {
		if c := strings.Compare(a.Jail, b.Jail); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	return bans, nil
}
