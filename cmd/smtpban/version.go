package main

import (
	"context"
	"fmt"
	"time"
)

// versionResult is version's -json output.
type versionResult struct {
	Client      string `json:"client"`
	Daemon      string `json:"daemon,omitempty"`
	DaemonError string `json:"daemon_error,omitempty"`
}

// versionTimeout: version is informational and must not hang on a stuck daemon.
const versionTimeout = 5 * time.Second

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := e.flags("version")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("version takes no arguments")
	}
	r := versionResult{Client: version}
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	c := e.client()
	if st, err := c.Status(ctx, ""); err != nil {
		r.DaemonError = err.Error()
	} else {
		r.Daemon = st.Version
	}
	if *jsonOut {
		return e.printJSON(r)
	}
	fmt.Fprintf(e.stdout, "smtpban %s\n", r.Client)
	if r.Daemon != "" {
		fmt.Fprintf(e.stdout, "smtpband %s (at %s)\n", r.Daemon, c.SocketPath())
	} else {
		fmt.Fprintf(e.stdout, "smtpband: %s\n", r.DaemonError)
	}
	return nil
}
