// Package replay runs a config's jails over log files offline: which lines
// match, and which bans the jails would have made. No daemon, no root, no
// firewall; each line's own timestamp drives the counters.
package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"text/tabwriter"
	"time"
	"unsafe"

	"smtpban/firewall"
	"smtpban/internal/ban"
	"smtpban/internal/config"
	"smtpban/internal/logline"
	"smtpban/jails"
	"smtpban/state"
)

// Options say what to replay and how to report it.
type Options struct {
	Config *config.Config
	Jails  []string // jail names to run; empty = every jail, enabled or not
	Files  []string
	JSON   bool // one JSON object per match and per ban
	Out    io.Writer
	// Format is the files' layout (logline.ParseFormat); "" takes the
	// format of the config's file source with the same path, else syslog.
	Format string
}

// maxLine matches what the daemon's sources pass on; longer lines are skipped.
const maxLine = 64 << 10

// Run replays o.Files through the selected jails and writes the report.
func Run(ctx context.Context, o Options) error {
	js, err := selectJails(o.Config.Jails, o.Jails)
	if err != nil {
		return err
	}
	r := &run{
		opts:    o,
		matcher: jails.NewMatcher(js),
		// A replay keeps every window: memory is the user's, correctness is ours.
		counter: untracked(jails.NewCounter(1<<30, js...)),
		stats:   map[string]*jailStats{},
	}
	// The daemon's ban manager, over memory and the dry-run firewall, on
	// the lines' own clock: what replay says would be banned is what the
	// daemon would ban, by construction. The host's own addresses are not
	// known here: a log from elsewhere names other ones.
	fc := o.Config.Firewall
	clock := func() time.Time { return r.clock }
	r.bans = ban.New(ban.Options{
		Store:    ban.NewMemStore(),
		Firewall: firewall.NewDryRun(slog.New(slog.DiscardHandler), clock, firewall.Limits{MinV4: fc.MinPrefixV4, MinV6: fc.MinPrefixV6}),
		Now:      clock,
		OnBan:    r.banned,
	})
	r.bans.SetPolicy(ban.PolicyFor(js, o.Config.Ignore, nil))
	// Buffered: a write per event cost more than matching the lines.
	out := bufio.NewWriterSize(o.Out, 64<<10)
	r.out, r.enc = out, json.NewEncoder(out)
	for _, j := range js {
		r.stats[j.Name] = &jailStats{addrs: map[addrKey]int{}}
		r.order = append(r.order, j.Name)
	}
	for _, f := range o.Files {
		if err = r.file(ctx, f); err != nil {
			break
		}
	}
	// What was found before an error is still written.
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("replay: write: %w", ferr)
	}
	if err != nil || o.JSON {
		return err
	}
	return r.summary()
}

// untracked returns c without change tracking: a replay never checkpoints.
func untracked(c *jails.Counter) *jails.Counter {
	c.Untracked()
	return c
}

func selectJails(all []*jails.Jail, names []string) ([]*jails.Jail, error) {
	if len(names) == 0 {
		return all, nil
	}
	byName := make(map[string]*jails.Jail, len(all))
	for _, j := range all {
		byName[j.Name] = j
	}
	out := make([]*jails.Jail, 0, len(names))
	for _, n := range names {
		j, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("no jail named %q in the config", n)
		}
		out = append(out, j)
	}
	return out, nil
}

// addrKey is an address as a map key: 16 bytes hash faster than a
// netip.Addr, whose zone is a pointer. Hit addresses are unmapped, so an
// IPv4-mapped key can only be an IPv4 address.
type addrKey = [16]byte

func addrOf(k addrKey) netip.Addr { return netip.AddrFrom16(k).Unmap() }

type jailStats struct {
	matched int
	addrs   map[addrKey]int
	bans    []banEvent
}

type banEvent struct {
	Event    string       `json:"event"`
	Jail     string       `json:"jail"`
	IP       netip.Prefix `json:"ip"`
	Time     time.Time    `json:"time"`
	Until    time.Time    `json:"until"`
	Failures int          `json:"failures"`
}

type match struct {
	Event string    `json:"event,omitempty"` // "success" for a login that clears failures
	File  string    `json:"file"`
	Line  int       `json:"line"`
	Jail  string    `json:"jail"`
	IP    string    `json:"ip"`
	User  string    `json:"user,omitempty"`
	Time  time.Time `json:"time"`
}

type run struct {
	opts    Options
	matcher *jails.Matcher
	counter *jails.Counter
	bans    *ban.Manager
	clock   time.Time // the time of the line being replayed
	werr    error     // the first write error of a ban event
	stats   map[string]*jailStats
	order   []string
	out     *bufio.Writer // -json: matches and bans, in order
	enc     *json.Encoder // for bans, which are few
	buf     []byte        // scratch: one match
	skipped int
	lines   int
}

func (r *run) file(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("replay: stat %s: %w", path, err)
	}
	// A syslog stamp has no year: the file's mtime is the reference that
	// infers it, and the time of lines that carry no stamp at all.
	ref := fi.ModTime()
	format, err := r.format(path)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	var hits []jails.Hit
	for n := 1; ; n++ {
		if n%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, errTooLong) {
			r.skipped++
			continue
		}
		if err != nil {
			return fmt.Errorf("replay: read %s: %w", path, err)
		}
		r.lines++
		// The daemon's sources decode with the same function.
		l := logline.Decode(format, logline.Clean(line), ref)
		hits = r.matcher.Match("", &l, hits[:0])
		for _, h := range hits {
			if err := r.hit(path, n, h); err != nil {
				return err
			}
		}
	}
}

// format is the layout path is read with: -format, else that of the
// config's file source reading path, else syslog.
func (r *run) format(path string) (logline.Format, error) {
	if r.opts.Format != "" {
		f, err := logline.ParseFormat(r.opts.Format)
		if err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		return f, nil
	}
	abs, _ := filepath.Abs(path)
	for _, s := range r.opts.Config.Sources {
		if s.Kind != "file" {
			continue
		}
		if sp, _ := filepath.Abs(s.Path); sp == abs {
			return s.Format, nil
		}
	}
	return logline.Syslog, nil
}

func (r *run) hit(path string, n int, h jails.Hit) error {
	if !h.Success {
		st := r.stats[h.Jail.Name]
		st.matched++
		st.addrs[h.Addr.As16()] += h.Failures()
	}
	if r.opts.JSON {
		m := match{File: path, Line: n, Jail: h.Jail.Name, IP: h.Addr.String(), User: h.User, Time: h.Time}
		if h.Success {
			// A successful login is no failure, but it clears some (see
			// jails.Counter), so -json shows it.
			m.Event = "success"
		}
		r.buf = appendMatch(r.buf[:0], m)
		if _, err := r.out.Write(r.buf); err != nil {
			return fmt.Errorf("replay: write: %w", err)
		}
	}
	d, ok := r.counter.Add(h)
	if !ok {
		return nil
	}
	r.clock = d.Time
	if _, err := r.bans.Decide(context.Background(), []jails.Decision{d}); err != nil {
		return fmt.Errorf("replay: ban: %w", err)
	}
	return r.werr
}

// banned records a ban the manager made, and prints it with -json.
func (r *run) banned(s state.Ban) {
	b := banEvent{Event: "ban", Jail: s.Jail, IP: s.Prefix, Time: s.Since, Until: s.Until, Failures: s.Failures}
	if st := r.stats[s.Jail]; st != nil {
		st.bans = append(st.bans, b)
	}
	if r.opts.JSON && r.werr == nil {
		if err := r.enc.Encode(b); err != nil {
			r.werr = fmt.Errorf("replay: write: %w", err)
		}
	}
}

var errTooLong = errors.New("line too long")

// readLine returns the next line without its newline; a line longer than
// maxLine is consumed and reported as errTooLong.
//
// The line shares br's buffer and is valid only until the next read: a
// copy per line cost more than matching most of them. Nothing downstream
// keeps it: matches are written out at once and the counter copies what
// it holds on to.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if err == nil || (errors.Is(err, io.EOF) && len(b) > 0) {
		if len(b) > maxLine {
			return "", errTooLong
		}
		return trimEOL(unsafe.String(unsafe.SliceData(b), len(b))), nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return "", err
	}
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return "", errTooLong
}

func trimEOL(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
	}
	if n := len(s); n > 0 && s[n-1] == '\r' {
		s = s[:n-1]
	}
	return s
}

func (r *run) summary() error {
	w := tabwriter.NewWriter(r.opts.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%d lines read, %d skipped (over %d KiB)\n\n", r.lines, r.skipped, maxLine>>10)
	fmt.Fprintln(w, "JAIL\tMATCHED\tADDRESSES\tBANS")
	for _, name := range r.order {
		st := r.stats[name]
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", name, st.matched, len(st.addrs), len(st.bans))
	}
	for _, name := range r.order {
		st := r.stats[name]
		if st.matched == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: top offenders\n", name)
		fmt.Fprintln(w, "ADDRESS\tFAILURES\tBANS")
		banned := map[netip.Addr]int{}
		for _, b := range st.bans {
			if b.IP.IsSingleIP() {
				banned[b.IP.Addr()]++
			}
		}
		for _, k := range top(st.addrs, 10) {
			a := addrOf(k)
			fmt.Fprintf(w, "%s\t%d\t%d\n", a, st.addrs[k], banned[a])
		}
	}
	return w.Flush()
}

// top returns the n addresses with the most failures, ties by address.
// It keeps the best n while it walks the map: sorting every address, with
// map lookups in the comparison, took longer than the summary's own lines.
func top(m map[addrKey]int, n int) []addrKey {
	type entry struct {
		addr addrKey
		n    int
	}
	before := func(a, b entry) bool {
		if a.n != b.n {
			return a.n > b.n
		}
		return addrOf(a.addr).Less(addrOf(b.addr))
	}
	best := make([]entry, 0, n+1)
	for a, c := range m {
		e := entry{a, c}
		if len(best) == n && !before(e, best[n-1]) {
			continue
		}
		i := sort.Search(len(best), func(i int) bool { return before(e, best[i]) })
		best = slices.Insert(best, i, e)
		if len(best) > n {
			best = best[:n]
		}
	}
	out := make([]addrKey, len(best))
	for i, e := range best {
		out[i] = e.addr
	}
	return out
}
