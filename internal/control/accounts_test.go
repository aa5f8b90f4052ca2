package control_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"smtpban/internal/account"
	"smtpban/internal/control"
	"smtpban/internal/control/controltest"
)

// accountsFake is the fake daemon with an account watch: one account,
// alice, held.
type accountsFake struct {
	*controltest.Fake
	released []string
}

func (f *accountsFake) Accounts(context.Context) ([]account.Summary, error) {
	return []account.Summary{{User: "alice", MessagesHour: 101, Held: true, HeldWhy: account.LimitMessagesPerHour, Action: "hold"}}, nil
}

func (f *accountsFake) Account(_ context.Context, user string) (account.Detail, error) {
	if user != "alice" {
		return account.Detail{}, fmt.Errorf("%w: no account %q", control.ErrNotFound, user)
	}
	return account.Detail{Summary: account.Summary{User: "alice", Held: true}, HeldIDs: []string{"4Xab"}}, nil
}

func (f *accountsFake) ReleaseAccount(_ context.Context, user string) (account.Release, error) {
	f.released = append(f.released, user)
	return account.Release{User: user, WasHeld: true, QueueIDs: []string{"4Xab"}, Commands: account.PostsuperCommands([]string{"4Xab"})}, nil
}

func TestAccountEndpoints(t *testing.T) {
	ctx := context.Background()
	f := &accountsFake{Fake: newFake()}
	c := control.NewClient(controltest.Serve(t, f, control.ServerOptions{Now: fixedNow}))
	as, err := c.Accounts(ctx)
	if err != nil || len(as) != 1 || as[0].User != "alice" || !as[0].Held || as[0].MessagesHour != 101 {
		t.Errorf("Accounts = %+v, %v", as, err)
	}
	d, err := c.Account(ctx, "alice")
	if err != nil || d.User != "alice" || len(d.HeldIDs) != 1 {
		t.Errorf("Account = %+v, %v", d, err)
	}
	if _, err := c.Account(ctx, "nobody"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Account(nobody) = %v, want ErrNotFound", err)
	}
	r, err := c.ReleaseAccount(ctx, "alice")
	if err != nil || r.Commands[0] != "postsuper -H 4Xab" || len(f.released) != 1 {
		t.Errorf("ReleaseAccount = %+v, %v (released %v)", r, err, f.released)
	}
	if _, err := c.ReleaseAccount(ctx, ""); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("ReleaseAccount(\"\") = %v, want ErrInvalid", err)
	}

	// A daemon without an account watch answers 404, not 500.
	plain := control.NewClient(controltest.Serve(t, newFake(), control.ServerOptions{Now: fixedNow}))
	if _, err := plain.Accounts(ctx); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Accounts without a watch = %v, want ErrNotFound", err)
	}
}
