package jails

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync"

	"smtpban/jails/internal/backtrack"
)

// HostTag is the placeholder a failregex uses for the client address.
const HostTag = "<HOST>"

// hostGroup prefixes the names of the capture groups <HOST> expands to.
// Users are unlikely to pick it for their own groups.
const hostGroup = "smtpban_host"

// The <HOST> expansion is deliberately permissive: it also accepts host
// names, so that a line whose "address" is garbage (unknown[unknown],
// a hostname) still matches and is counted as a bad host instead of
// silently not matching. net/netip decides what is an address.
const (
	hostIPv4 = `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`
	hostIPv6 = `(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?`
	hostName = `[0-9A-Za-z_](?:[0-9A-Za-z_.-]*[0-9A-Za-z_])?`
	hostAddr = hostIPv4 + `|` + hostIPv6 + `|` + hostName
)

// Names of the capture groups a pattern may use besides <HOST>.
const (
	// GroupUser captures the account name the client gave.
	GroupUser = "user"
	// GroupCount captures how many attempts one line stands for
	// (Dovecot's "auth failed, 3 attempts").
	GroupCount = "count"
	// GroupPass captures a fingerprint of the password tried (Dovecot's
	// auth_verbose_passwords = sha1:6): repeats count once.
	GroupPass = "pass"
)

// MaxCount bounds what a (?P<count>...) group may claim: the counter caps
// it further at the jail's maxretry.
const MaxCount = 1 << 16

// Pattern is a compiled failregex, successregex or ignoreregex.
type Pattern struct {
	expr     string
	slow     func() *regexp.Regexp // compiled on first use: most patterns never need it
	fast     *backtrack.Regexp     // same matches as slow, faster; nil if it cannot take the expression
	hosts    []int                 // capture group indexes of the <HOST> expansions
	user     int                   // capture group index of (?P<user>...), or -1
	count    int                   // capture group index of (?P<count>...), or -1
	pass     int                   // capture group index of (?P<pass>...), or -1
	literals []string              // at least one must occur in a matching line; nil: no prefilter
}

// CompileFailregex compiles a failregex: it must contain <HOST>.
func CompileFailregex(expr string) (*Pattern, error) {
	if !strings.Contains(expr, HostTag) {
		return nil, fmt.Errorf("failregex has no %s: %q", HostTag, expr)
	}
	return compile(expr, true)
}

// CompileSuccessregex compiles a successregex (a successful login): it
// must contain <HOST>, and needs (?P<user>...) to clear anything.
func CompileSuccessregex(expr string) (*Pattern, error) {
	if !strings.Contains(expr, HostTag) {
		return nil, fmt.Errorf("successregex has no %s: %q", HostTag, expr)
	}
	return compile(expr, true)
}

// CompileIgnoreregex compiles an ignoreregex: <HOST> is allowed, not needed.
func CompileIgnoreregex(expr string) (*Pattern, error) {
	return compile(expr, false)
}

// MustCompileFailregex is CompileFailregex for tests and constants.
func MustCompileFailregex(expr string) *Pattern {
	p, err := CompileFailregex(expr)
	if err != nil {
		panic(err)
	}
	return p
}

// compile compiles expr; submatches says how the pattern will be run:
// for its captures (failregex, successregex: match) or only for whether
// it matches (ignoreregex: matchString).
func compile(expr string, submatches bool) (*Pattern, error) {
	// Check the expression as the user wrote it first (<HOST> is valid
	// regex syntax as literal text), so that a syntax error quotes the
	// user's own fragment rather than our expansion.
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, regexError(err)
	}
	// Anchored at the message's start: what follows the server's fixed
	// text may be the client's, and a pattern that could start there
	// would let a client write the whole line it matches.
	expanded := "^(?:" + expandHost(expr) + ")"
	tree, err := syntax.Parse(expanded, syntax.Perl)
	if err != nil {
		return nil, regexError(err)
	}
	p := &Pattern{expr: expr, user: -1, count: -1, pass: -1}
	for i, name := range tree.CapNames() {
		switch {
		case strings.HasPrefix(name, hostGroup):
			p.hosts = append(p.hosts, i)
		case name == GroupUser && p.user < 0:
			p.user = i
		case name == GroupCount && p.count < 0:
			p.count = i
		case name == GroupPass && p.pass < 0:
			p.pass = i
		}
	}
	// The fast matcher builds just the way the pattern is run. An
	// expression it does not handle keeps to regexp alone.
	if fast, err := backtrack.CompileParsed(expanded, tree, submatches); err == nil {
		p.fast = fast
	}
	// regexp.Compile parses as above and cannot fail where that did not;
	// its compile is most of a pattern's start-up cost, and only lines
	// over the fast matcher's budget need it.
	p.slow = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expanded) })
	p.literals = requiredLiterals(tree.Simplify())
	return p, nil
}

// regexError turns a regexp/syntax error into "what: `fragment`", without
// the "error parsing regexp" preamble the config layer would repeat.
func regexError(err error) error {
	var se *syntax.Error
	if errors.As(err, &se) {
		if se.Expr == "" {
			return errors.New(se.Code.String())
		}
		return fmt.Errorf("%s: `%s`", se.Code, se.Expr)
	}
	return err
}

// expandHost replaces each <HOST> with a pair of alternative captures:
// bracketed ([addr], brackets not captured) or bare.
func expandHost(expr string) string {
	var b strings.Builder
	n := 0
	for {
		i := strings.Index(expr, HostTag)
		if i < 0 {
			b.WriteString(expr)
			return b.String()
		}
		b.WriteString(expr[:i])
		name := hostGroup + strconv.Itoa(n)
		fmt.Fprintf(&b, `(?:\[(?P<%sb>%s)\]|(?P<%s>%s))`, name, hostAddr, name, hostAddr)
		expr = expr[i+len(HostTag):]
		n++
	}
}

// String returns the expression as written, with <HOST> unexpanded.
func (p *Pattern) String() string { return p.expr }

// Literals returns the substrings of which at least one occurs in every
// line the pattern matches (the prefilter), or nil if there is none useful.
func (p *Pattern) Literals() []string { return append([]string(nil), p.literals...) }

// Captures reports whether the pattern has the named group (GroupUser,
// GroupCount, GroupPass).
func (p *Pattern) Captures(name string) bool {
	switch name {
	case GroupUser:
		return p.user >= 0
	case GroupCount:
		return p.count >= 0
	case GroupPass:
		return p.pass >= 0
	}
	return false
}

// matchResult says what a pattern made of a line.
type matchResult int

const (
	noMatch matchResult = iota
	badHost             // matched, but the captured host is not an address
	matched
)

// capture is what a matching pattern took from a line; the strings share
// the line's memory.
type capture struct {
	addr  netip.Addr
	user  string
	pass  string
	count int // 0 when the pattern has no count group
}

// maxFastCaps is how many capture positions match keeps on its stack:
// the shipped patterns need 12 at most.
const maxFastCaps = 24

// match runs the pattern on line, once: the fast matcher where it can,
// else FindStringSubmatchIndex, which allocates only on a match (a first
// MatchString to rule lines out measured slower, not faster).
func (p *Pattern) match(line string) (capture, matchResult) {
	if len(p.hosts) == 0 {
		if p.matchString(line) {
			return capture{}, matched
		}
		return capture{}, noMatch
	}
	var buf [maxFastCaps]int
	loc, ok := p.fastMatch(line, buf[:])
	if !ok {
		loc = p.slow().FindStringSubmatchIndex(line)
	}
	if loc == nil {
		return capture{}, noMatch
	}
	var c capture
	c.user = submatch(line, loc, p.user)
	c.pass = submatch(line, loc, p.pass)
	if p.count >= 0 {
		c.count = parseCount(submatch(line, loc, p.count))
	}
	for _, g := range p.hosts {
		if loc[2*g] < 0 {
			continue
		}
		a, err := netip.ParseAddr(line[loc[2*g]:loc[2*g+1]])
		if err != nil {
			return c, badHost
		}
		c.addr = a.Unmap().WithZone("")
		return c, matched
	}
	return c, badHost
}

// fastMatch runs the fast matcher with buf for its captures. It returns
// the submatch positions (nil: no match), or !ok if the caller must ask
// regexp: no fast matcher, too many captures for buf, or a line costing
// the backtracker more steps than its budget.
func (p *Pattern) fastMatch(line string, buf []int) (loc []int, ok bool) {
	if p.fast == nil {
		return nil, false
	}
	n := 2 * (p.fast.NumSubexp() + 1)
	if n > len(buf) {
		return nil, false
	}
	matched, ok := p.fast.Match(line, buf[:n])
	if !ok || !matched {
		return nil, ok
	}
	return buf[:n], true
}

// matchString reports whether the pattern matches line, with the fast
// matcher where it can.
func (p *Pattern) matchString(line string) bool {
	if p.fast != nil {
		if m, ok := p.fast.MatchString(line); ok {
			return m
		}
	}
	return p.slow().MatchString(line)
}

// parseCount reads the leading digits of s, saturating at MaxCount. A
// count that is missing or 0 still stands for the failure the line
// reports: 1.
func parseCount(s string) int {
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = min(n*10+int(s[i]-'0'), MaxCount)
	}
	return max(n, 1)
}

// submatch returns capture group i of a match, "" if absent.
func submatch(line string, loc []int, i int) string {
	if i < 0 || loc[2*i] < 0 {
		return ""
	}
	return line[loc[2*i]:loc[2*i+1]]
}
