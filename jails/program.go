package jails

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"
)

// Programs are the globs over a line's program (its syslog ident or
// SYSLOG_IDENTIFIER) that say which lines a jail reads: "postfix*/*smtpd",
// "dovecot", "exim". '*' is any run of characters, '/' included, and '?'
// one character; everything else is itself.
//
// A jail reads only its programs' lines: another program's message, which
// may quote text a client sent, never reaches its patterns.

// GlobMatch reports whether program matches glob.
func GlobMatch(glob, program string) bool {
	// Iterative with one backtrack point: linear enough for idents.
	g, p := 0, 0
	star, mark := -1, 0
	for p < len(program) {
		switch {
		case g < len(glob) && glob[g] == '*':
			star, mark = g, p
			g++
		case g < len(glob) && (glob[g] == '?' || glob[g] == program[p]):
			g++
			p++
		case star >= 0:
			g, mark = star+1, mark+1
			p = mark
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}

// MatchesAny reports whether program matches one of globs.
func MatchesAny(globs []string, program string) bool {
	for _, g := range globs {
		if GlobMatch(g, program) {
			return true
		}
	}
	return false
}

// OnlyStars reports whether glob matches every program: such a jail would
// read lines any program, or any local user, wrote.
func OnlyStars(glob string) bool { return strings.Trim(glob, "*") == "" }

// programIndex caches, per program seen, which jails of a group read it:
// a line costs one map lookup, not a glob per jail. Programs are few (a
// mail host has a dozen); past maxPrograms new ones are matched each time
// rather than remembered, so a source full of made-up idents costs time,
// not memory.
type programIndex struct {
	masks atomic.Pointer[map[string]uint64] // copied on write: readers take no lock
	mu    sync.Mutex                        // serializes writers
}

const maxPrograms = 1024

func (x *programIndex) mask(program string, jails []mjail) uint64 {
	if p := x.masks.Load(); p != nil {
		if m, ok := (*p)[program]; ok {
			return m
		}
	}
	var m uint64
	for i := range min(len(jails), 64) {
		if MatchesAny(jails[i].jail.Programs, program) {
			m |= 1 << i
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.masks.Load()
	if old != nil && len(*old) >= maxPrograms {
		return m
	}
	next := make(map[string]uint64, 8)
	if old != nil {
		maps.Copy(next, *old)
	}
	// The line's memory may be a reused read buffer.
	next[strings.Clone(program)] = m
	x.masks.Store(&next)
	return m
}
