package main

import (
	"context"
	"fmt"

	"smtpban/internal/control"
)

func runReload(ctx context.Context, e *env, args []string) error {
	fs := e.flags("reload")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("reload takes no arguments")
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := e.client().Reload(ctx); err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(control.ReloadResponse{Reloaded: true})
	}
	fmt.Fprintln(e.stdout, "reloaded the config")
	return nil
}
