package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func runExport(ctx context.Context, e *env, args []string) error {
	fs := e.flags("export")
	out := fs.String("o", "", "write to `FILE` (whole or not at all: a temporary file renamed) instead of stdout")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("export takes no arguments (use -o FILE)")
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if *out == "" {
		return e.client().Export(ctx, e.stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: gone already
	if err := e.client().Export(ctx, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("export: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := e.flags("import")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("import takes one FILE (- for stdin)")
	}
	var r io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := e.client().Import(ctx, r)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(res)
	}
	fmt.Fprintf(e.stdout, "imported %d bans (%d kept: saved ones end later; %d expired; %d refused here), %d allow entries, %d history entries\n",
		res.Bans, res.Kept, res.Expired, res.Refused, res.Allows, res.History)
	if len(res.BadLines) > 0 {
		fmt.Fprintf(e.stderr, "skipped unreadable lines:\n  %s\n", strings.Join(res.BadLines, "\n  "))
	}
	return nil
}
