// Package controltest has a map-based fake control.Daemon and a helper that
// serves it on a socket, for tests of the control API and of smtpban.
package controltest

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"smtpban/internal/control"
)

// Fake is a control.Daemon over plain maps. Set the exported fields before
// serving; Calls records every method called, in order.
type Fake struct {
	Now       func() time.Time
	Jails     []string // known jail names; others are "not found"
	ReloadErr error    // what Reload returns

	mu    sync.Mutex
	bans  []control.Ban
	allow map[netip.Prefix]time.Time
	calls []string
}

var _ control.Daemon = (*Fake)(nil)

// NewFake returns a fake with jails and a clock.
func NewFake(now func() time.Time, jails ...string) *Fake {
	return &Fake{Now: now, Jails: jails, allow: map[netip.Prefix]time.Time{}}
}

// Calls returns the methods called so far.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// AddBan puts b in the ban list as if a jail had made it.
func (f *Fake) AddBan(b control.Ban) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bans = append(f.bans, b)
}

func (f *Fake) called(name string) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.mu.Unlock()
}

func (f *Fake) checkJail(jail string) error {
	if jail == "" || jail == "manual" || slices.Contains(f.Jails, jail) {
		return nil
	}
	return fmt.Errorf("%w: no jail named %q", control.ErrNotFound, jail)
}

// Status reports one JailStatus per known jail.
func (f *Fake) Status(ctx context.Context, jail string) (control.Status, error) {
	f.called("Status")
	if err := f.checkJail(jail); err != nil {
		return control.Status{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.Now()
	st := control.Status{
		Version:  "test",
		Started:  now.Add(-time.Hour),
		Uptime:   time.Hour.String(),
		Firewall: "dryrun",
		Sources:  []control.SourceStatus{{Name: "mail", Kind: "file", Position: "/var/log/mail.log:1234", Lag: "0s", Read: 100, Skipped: 1}},
	}
	for _, j := range f.Jails {
		if jail != "" && j != jail {
			continue
		}
		js := control.JailStatus{Name: j, Enabled: true, Failing: 2, TotalFailures: 10, TotalBanned: 3}
		for _, b := range f.bans {
			if b.Jail == j {
				js.Banned++
				if jail != "" {
					js.BannedList = append(js.BannedList, control.FormatPrefix(b.Prefix))
				}
			}
		}
		st.Jails = append(st.Jails, js)
	}
	return st, nil
}

// Bans lists the bans, of jail if not "".
func (f *Fake) Bans(ctx context.Context, jail string) ([]control.Ban, error) {
	f.called("Bans")
	if err := f.checkJail(jail); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []control.Ban
	for _, b := range f.bans {
		if jail == "" || b.Jail == jail {
			out = append(out, b)
		}
	}
	return out, nil
}

// Ban adds a ban (an hour if d is 0).
func (f *Fake) Ban(ctx context.Context, p netip.Prefix, jail string, d time.Duration) (control.Ban, error) {
	f.called("Ban")
	if err := f.checkJail(jail); err != nil {
		return control.Ban{}, err
	}
	if jail == "" {
		jail = "manual"
	}
	if d == 0 {
		d = time.Hour
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.Now()
	b := control.Ban{Prefix: p, Jail: jail, Since: now, Until: now.Add(d), Count: 1, Origin: "test"}
	f.bans = append(f.bans, b)
	return b, nil
}

// Unban lifts the bans overlapping p (all if all), in jail if not "".
func (f *Fake) Unban(ctx context.Context, p netip.Prefix, jail string, all bool) ([]control.Ban, error) {
	f.called("Unban")
	f.mu.Lock()
	defer f.mu.Unlock()
	var lifted, kept []control.Ban
	for _, b := range f.bans {
		if (jail == "" || b.Jail == jail) && (all || b.Prefix.Overlaps(p)) {
			lifted = append(lifted, b)
		} else {
			kept = append(kept, b)
		}
	}
	f.bans = kept
	return lifted, nil
}

// Allow adds p to the allow list and lifts the bans overlapping it.
func (f *Fake) Allow(ctx context.Context, p netip.Prefix, d time.Duration) ([]control.Ban, error) {
	f.called("Allow")
	f.mu.Lock()
	var until time.Time
	if d > 0 {
		until = f.Now().Add(d)
	}
	f.allow[p] = until
	f.mu.Unlock()
	return f.Unban(ctx, p, "", false)
}

// AllowList lists the allow list, sorted.
func (f *Fake) AllowList(ctx context.Context) ([]control.Allow, error) {
	f.called("AllowList")
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []control.Allow
	for p, u := range f.allow {
		out = append(out, control.Allow{Prefix: p, Until: u})
	}
	slices.SortFunc(out, func(a, b control.Allow) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out, nil
}

// AllowRemove removes p from the allow list.
func (f *Fake) AllowRemove(ctx context.Context, p netip.Prefix) (bool, error) {
	f.called("AllowRemove")
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.allow[p]
	delete(f.allow, p)
	return ok, nil
}

// Reload returns ReloadErr.
func (f *Fake) Reload(ctx context.Context) error {
	f.called("Reload")
	return f.ReloadErr
}

// Serve serves d on a socket in a fresh temporary directory (or at
// opts.Path if set) until the test ends, and returns the socket's path.
func Serve(tb testing.TB, d control.Daemon, opts control.ServerOptions) string {
	tb.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(tb.TempDir(), "s.sock")
	}
	srv := control.NewServer(d, opts)
	if err := srv.Listen(); err != nil {
		tb.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return opts.Path
}
