// Package replay runs a config's jails over log files offline: which lines
// match, and which bans the jails would have made. No daemon, no root, no
// firewall; each line's own timestamp drives the counters.
package replay

import (
	"bufio"
	"compress/gzip"
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
	"strings"
	"text/tabwriter"
	"time"
	"unsafe"

	"smtpban/firewall"
	"smtpban/internal/ban"
	"smtpban/internal/config"
	"smtpban/internal/logline"
	"smtpban/internal/source"
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
	// Missed reports the lines that hold one of a jail's literals, from a
	// program it reads, and match none of its failregexes: the formats a
	// jail does not know yet.
	Missed bool
	// Stdin is read for a file named "-".
	Stdin io.Reader
	// Journal, if set, is read (after Files) through journalctl as the
	// config's journal source of that name reads it ("" for the only one):
	// its matches and trusted senders.
	Journal *Journal
}

// Journal says which journal entries to replay.
type Journal struct {
	Source  string
	Since   time.Time
	Command string // journalctl; from PATH if empty
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
		r.stats[j.Name] = &jailStats{
			jail:    j,
			addrs:   map[addrKey]int{},
			fail:    make([]int, len(j.Failregex)),
			ignore:  make([]int, len(j.Ignoreregex)),
			success: make([]int, len(j.Successregex)),
		}
		r.order = append(r.order, j.Name)
		if lits, ok := j.Literals(); ok && o.Missed {
			r.missable = append(r.missable, missable{j, lits})
		}
	}
	for _, f := range o.Files {
		if err = r.file(ctx, f); err != nil {
			break
		}
	}
	if err == nil && o.Journal != nil {
		err = r.journal(ctx, *o.Journal)
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
	jail    *jails.Jail
	matched int
	addrs   map[addrKey]int
	bans    []banEvent
	// Lines each pattern decided, by index: failures, lines an
	// ignoreregex voided, successes.
	fail, ignore, success []int
	missed                int
}

// missable is a jail -missed looks at, with its failregexes' literals.
type missable struct {
	jail *jails.Jail
	lits []string
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
	// missable are the jails -missed checks; ignored is the matcher's
	// count of voided lines, to spot the (rare) lines to explain.
	missable []missable
	ignored  uint64
}

// gzipMagic starts every gzip stream: rotated logs (mail.log.2.gz) are
// read through it whatever their name.
var gzipMagic = []byte{0x1f, 0x8b}

func (r *run) file(ctx context.Context, path string) error {
	var in io.Reader
	// A syslog stamp has no year: the file's mtime is the reference that
	// infers it, and the time of lines that carry no stamp at all; now for
	// standard input.
	ref := time.Now()
	if path == "-" {
		if r.opts.Stdin == nil {
			return errors.New("replay: no standard input to read")
		}
		in = r.opts.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("replay: stat %s: %w", path, err)
		}
		ref, in = fi.ModTime(), f
	}
	format, err := r.format(strings.TrimSuffix(path, ".gz"))
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(in, 256<<10)
	if head, _ := br.Peek(len(gzipMagic)); string(head) == string(gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("replay: %s: %w", path, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	return r.replayLines(ctx, path, br, format, ref)
}

// replayLines replays the lines of br, read from path.
func (r *run) replayLines(ctx context.Context, path string, br *bufio.Reader, format logline.Format, ref time.Time) error {
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
		if hits, err = r.line(path, n, &l, hits[:0]); err != nil {
			return err
		}
	}
}

// line runs the jails over one decoded line; hits is scratch space.
func (r *run) line(path string, n int, l *logline.Line, hits []jails.Hit) ([]jails.Hit, error) {
	hits = r.matcher.Match("", l, hits)
	for _, h := range hits {
		if err := r.hit(path, n, h); err != nil {
			return hits, err
		}
	}
	if len(hits) == 0 {
		// Per-pattern counts of ignoreregexes: explain only the rare
		// lines the matcher says an ignoreregex voided.
		if ig := r.matcher.Stats().Ignored; ig != r.ignored {
			r.ignored = ig
			r.countIgnored(l)
		}
	}
	if r.missable != nil {
		if err := r.missed(path, n, l, hits); err != nil {
			return hits, err
		}
	}
	return hits, nil
}

// journal replays the entries of a journal source, read once through
// journalctl with the source's matches and trusted senders.
func (r *run) journal(ctx context.Context, j Journal) error {
	var src *config.Source
	for i, s := range r.opts.Config.Sources {
		if s.Kind == "journal" && (j.Source == "" || s.Name == j.Source) {
			if src != nil {
				return fmt.Errorf("replay: the config has several journal sources (%s, %s): name one", src.Name, s.Name)
			}
			src = &r.opts.Config.Sources[i]
		}
	}
	if src == nil {
		if j.Source != "" {
			return fmt.Errorf("replay: no journal source named %q in the config", j.Source)
		}
		return errors.New("replay: the config has no journal source")
	}
	name := "journal:" + src.Name
	var hits []jails.Hit
	n := 0
	skipped, err := source.ReadJournal(ctx, source.JournalConfig{
		Name: src.Name, Match: src.Match, Trust: src.Trust, Directory: src.Directory, Files: src.Files, Command: j.Command,
	}, j.Since, func(l logline.Line) error {
		n++
		r.lines++
		var err error
		hits, err = r.line(name, n, &l, hits[:0])
		return err
	})
	r.skipped += skipped
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// countIgnored counts, for each jail that voided l with an ignoreregex,
// the ignoreregex that did.
func (r *run) countIgnored(l *logline.Line) {
	for _, name := range r.order {
		st := r.stats[name]
		if len(st.ignore) == 0 {
			continue
		}
		if e := jails.Explain(st.jail, l); e.Verdict == jails.VerdictIgnored {
			st.ignore[e.Deciding.Index]++
		}
	}
}

// missedEvent is a -missed line in -json output.
type missedEvent struct {
	Event string `json:"event"` // "missed"
	File  string `json:"file"`
	Line  int    `json:"line"`
	Jail  string `json:"jail"`
	Text  string `json:"text"`
}

// missed reports l for each jail that reads its program, finds one of its
// literals in it and matches it with none of its failregexes.
func (r *run) missed(path string, n int, l *logline.Line, hits []jails.Hit) error {
	for _, m := range r.missable {
		if slices.ContainsFunc(hits, func(h jails.Hit) bool { return h.Jail == m.jail }) {
			continue
		}
		if !jails.MatchesAny(m.jail.Programs, l.Program) || !slices.ContainsFunc(m.lits, func(s string) bool { return strings.Contains(l.Message, s) }) {
			continue
		}
		e := jails.Explain(m.jail, l)
		if slices.ContainsFunc(e.Patterns, func(p jails.PatternResult) bool { return p.Kind == jails.KindFail && p.Matched }) {
			continue // matched, then voided (bad host, ignoreregex): not unknown
		}
		r.stats[m.jail.Name].missed++
		if r.opts.JSON {
			if err := r.enc.Encode(missedEvent{Event: "missed", File: path, Line: n, Jail: m.jail.Name, Text: l.Raw}); err != nil {
				return fmt.Errorf("replay: write: %w", err)
			}
			continue
		}
		if _, err := fmt.Fprintf(r.out, "missed %s %s:%d: %s\n", m.jail.Name, path, n, l.Raw); err != nil {
			return fmt.Errorf("replay: write: %w", err)
		}
	}
	return nil
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
	st := r.stats[h.Jail.Name]
	if !h.Success {
		st.matched++
		st.addrs[h.Addr.As16()] += h.Failures()
		st.fail[h.Pattern]++
	} else {
		st.success[h.Pattern]++
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
	if r.opts.Missed {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d lines read, %d skipped (over %d KiB)\n\n", r.lines, r.skipped, maxLine>>10)
	missedCol := ""
	if r.opts.Missed {
		missedCol = "\tMISSED"
	}
	fmt.Fprintf(w, "JAIL\tMATCHED\tADDRESSES\tBANS%s\n", missedCol)
	for _, name := range r.order {
		st := r.stats[name]
		label := name
		if !st.jail.Enabled {
			label += " (off)" // replay runs it; the daemon would not
		}
		missed := ""
		if r.opts.Missed {
			missed = fmt.Sprintf("\t%d", st.missed)
			if _, ok := st.jail.Literals(); !ok {
				missed = "\t-"
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d%s\n", label, st.matched, len(st.addrs), len(st.bans), missed)
	}
	r.patternSummary(w)
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

// patternSummary writes, for each jail that matched anything, how many
// lines each of its patterns decided.
func (r *run) patternSummary(w io.Writer) {
	for _, name := range r.order {
		st := r.stats[name]
		if st.matched == 0 && sum(st.ignore) == 0 && sum(st.success) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: lines per pattern\n", name)
		fmt.Fprintln(w, "PATTERN\tLINES\tEXPRESSION")
		for _, k := range []struct {
			kind string
			n    []int
			ps   []*jails.Pattern
		}{{jails.KindFail, st.fail, st.jail.Failregex}, {jails.KindIgnore, st.ignore, st.jail.Ignoreregex}, {jails.KindSuccess, st.success, st.jail.Successregex}} {
			for i, n := range k.n {
				fmt.Fprintf(w, "%s %d\t%d\t%s\n", k.kind, i+1, n, shorten(k.ps[i].String(), 60))
			}
		}
	}
}

func sum(ns []int) int {
	t := 0
	for _, n := range ns {
		t += n
	}
	return t
}

// shorten cuts s to about n bytes for a table, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
