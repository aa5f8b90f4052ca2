package daemon

import (
	"smtpban/jails"
	"smtpban/state"
)

// A failure window has two spellings, jails.Window (the counter's) and
// state.Window (the store's), so that neither package knows the other;
// these are the one place they meet.

func toState(w jails.Window) state.Window {
	return state.Window{Jail: w.Jail, Key: w.Key, Times: w.Times, Users: w.Users, Passes: w.Passes}
}

// fromState also carries the lines a schema-1 database kept, from which
// the counter derives the hashes.
func fromState(w state.Window) jails.Window {
	return jails.Window{Jail: w.Jail, Key: w.Key, Times: w.Times, Users: w.Users, Passes: w.Passes, Lines: w.Lines}
}
