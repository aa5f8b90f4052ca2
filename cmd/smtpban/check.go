package main

import (
	"context"
	"errors"
	"fmt"

	"smtpban/internal/config"
)

// checkResult is check's -json output.
type checkResult struct {
	File        string   `json:"file"`
	OK          bool     `json:"ok"`
	Jails       int      `json:"jails"`
	Enabled     int      `json:"enabled"`
	Sources     int      `json:"sources"`
	Diagnostics []string `json:"diagnostics"`
}

// errReported: the problem is already printed; just exit 1.
var errReported = errors.New("reported")

func runCheck(ctx context.Context, e *env, args []string) error {
	fs := e.flags("check")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path := e.configPath
	switch len(pos) {
	case 0:
	case 1:
		path = pos[0]
	default:
		return usagef("one config file at a time")
	}
	cfg, diags := config.Load(path)
	r := checkResult{File: path, OK: !diags.HasErrors(), Diagnostics: []string{}}
	for _, d := range diags {
		r.Diagnostics = append(r.Diagnostics, d.String())
	}
	if r.OK {
		r.Jails, r.Enabled, r.Sources = len(cfg.Jails), len(cfg.EnabledJails()), len(cfg.Sources)
	}
	if *jsonOut {
		if err := e.printJSON(r); err != nil {
			return err
		}
	} else {
		for _, d := range r.Diagnostics {
			fmt.Fprintln(e.stderr, d)
		}
		if r.OK {
			fmt.Fprintf(e.stdout, "%s: ok (%d jails, %d enabled, %d sources)\n", path, r.Jails, r.Enabled, r.Sources)
		}
	}
	if !r.OK {
		return errReported
	}
	return nil
}
