// Command smtpband is the smtpban daemon: it follows the mail logs, counts
// authentication failures and relay probes, and bans offenders in nftables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/daemon"
	"smtpban/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "smtpband:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("smtpband", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	dryRun := fs.Bool("dry-run", false, "log what would be banned; touch no firewall")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	uninstall := fs.Bool("uninstall", false, "remove smtpban's nftables table and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *uninstall {
		return daemon.Uninstall(ctx, *cfgPath, logger)
	}
	d, err := daemon.New(daemon.Options{
		ConfigPath: *cfgPath,
		Logger:     logger,
		Version:    version,
		DryRun:     *dryRun,
		Ready: func() {
			if _, err := sdnotify.Notify("READY=1"); err != nil {
				logger.Warn("sd_notify", "err", err)
			}
		},
	})
	if err != nil {
		var diags config.Diagnostics
		if errors.As(err, &diags) {
			return fmt.Errorf("config has errors, not starting:\n%s", diags.Error())
		}
		return err
	}
	go reloadOnHUP(ctx, d, logger)
	return d.Run(ctx)
}

func reloadOnHUP(ctx context.Context, d *daemon.Daemon, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := d.Reload(rctx); err != nil {
				logger.Error("reload", "err", err)
			}
			cancel()
		}
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}
