package account

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// Timers for Run; zero values are the defaults.
type Timers struct {
	Save   time.Duration // how often changed accounts are saved; default 1s
	Expire time.Duration // default 10s
}

// Run saves changed accounts, expires old counts, and does the slow work
// of a trip (state, bans, hook) until ctx is done; it saves once more on
// the way out.
func (w *Watch) Run(ctx context.Context, t Timers) error {
	save := time.NewTicker(orDefault(t.Save, time.Second))
	defer save.Stop()
	expire := time.NewTicker(orDefault(t.Expire, 10*time.Second))
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			w.drainJobs(context.WithoutCancel(ctx))
			if err := w.Save(); err != nil {
				w.log.Error("save accounts", "err", err)
			}
			return nil
		case j := <-w.jobs:
			w.do(ctx, j)
		case <-save.C:
			if err := w.Save(); err != nil {
				w.log.Error("save accounts", "err", err)
			}
		case <-expire.C:
			w.Expire()
		}
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// drainJobs does the jobs still queued at shutdown: a hold whose bans
// were decided must not be lost.
func (w *Watch) drainJobs(ctx context.Context) {
	for {
		select {
		case j := <-w.jobs:
			w.do(ctx, j)
		default:
			return
		}
	}
}

// do: the alert is kept first, then the addresses banned, then the hook
// told.
func (w *Watch) do(ctx context.Context, j job) {
	var v []byte
	if j.alert != nil {
		var err error
		if v, err = json.Marshal(j.alert); err != nil {
			w.log.Error("encode alert", "err", err)
			return
		}
		if w.store != nil {
			if err := w.store.PutAlert(j.alert.Time, j.alert.User, v); err != nil {
				w.log.Error("save alert", "user", j.alert.User, "err", err)
			}
		}
	}
	if len(j.ban) > 0 && w.banner != nil {
		w.mu.Lock()
		d := w.set.BanTime
		w.mu.Unlock()
		banned, err := w.banner.BanAccount(ctx, j.ban, d)
		w.banned.Add(uint64(len(banned)))
		if err != nil {
			w.log.Warn("ban account's addresses", "addresses", len(j.ban), "banned", len(banned), "err", err)
		}
	}
	if j.alert != nil {
		// The hold is saved now, not at the next tick: a crash right
		// after a trip must not release the account.
		if err := w.Save(); err != nil {
			w.log.Error("save accounts", "err", err)
		}
		w.runHook(ctx, v)
	}
}

func (w *Watch) runHook(ctx context.Context, alert []byte) {
	w.mu.Lock()
	argv, timeout := w.set.Hook, w.set.HookTimeout
	w.mu.Unlock()
	if len(argv) == 0 {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(append(alert, '\n'))
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.log.Error("account hook", "hook", argv[0], "err", err, "output", string(out))
		return
	}
	w.log.Info("account hook ran", "hook", argv[0])
}

// Save writes the accounts changed since the last save, in one
// transaction. The records are encoded under mu, written outside it.
func (w *Watch) Save() error {
	if w.store == nil {
		return nil
	}
	w.mu.Lock()
	put := map[string][]byte{}
	for u, a := range w.accounts {
		if !a.dirty {
			continue
		}
		v, err := json.Marshal(a)
		if err != nil {
			w.mu.Unlock()
			return fmt.Errorf("encode account %q: %w", u, err)
		}
		put[u] = v
		a.dirty = false
	}
	del := w.deleted
	w.deleted = nil
	w.mu.Unlock()
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	if err := w.store.PutAccounts(put, del); err != nil {
		// Saved next time: mark them changed again.
		w.mu.Lock()
		for u := range put {
			if a := w.accounts[u]; a != nil {
				a.dirty = true
			}
		}
		w.deleted = append(w.deleted, del...)
		w.mu.Unlock()
		return fmt.Errorf("save %d accounts: %w", len(put), err)
	}
	return nil
}

// Restore loads the saved accounts. A record that cannot be read is
// skipped and logged: one bad record must not keep the daemon from
// starting.
func (w *Watch) Restore() (int, error) {
	if w.store == nil {
		return 0, nil
	}
	recs, err := w.store.Accounts()
	if err != nil {
		return 0, fmt.Errorf("load accounts: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for u, v := range recs {
		a := &acct{}
		if err := json.Unmarshal(v, a); err != nil || len(u) > MaxUser {
			w.log.Warn("skipping unreadable account record", "user", u, "err", err)
			continue
		}
		for _, s := range a.Sends {
			a.last = max(a.last, s.T)
		}
		a.last = max(a.last, a.Created, a.HeldAt)
		w.accounts[u] = a
		n++
	}
	w.held = 0
	for _, a := range w.accounts {
		if a.Held {
			w.held++
		}
	}
	return n, nil
}
