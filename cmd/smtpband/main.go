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
	"smtpban/internal/journalstream"
	"smtpban/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2) // flag and usage have said it all
		}
		fmt.Fprintln(os.Stderr, "smtpband:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("smtpband", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below: -h to stdout, mistakes to stderr
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	dryRun := fs.Bool("dry-run", false, "log what would be banned; touch no firewall")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	uninstall := fs.Bool("uninstall", false, "remove smtpban's nftables table and exit")
	testOnly := fs.Bool("t", false, "test the config and exit (0: it is valid); systemd runs it before starting")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return nil
		}
		usage(stderr, fs)
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "smtpband takes no arguments, got %q\n", fs.Arg(0))
		usage(stderr, fs)
		return errUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "smtpband", version)
		return nil
	}
	if *testOnly {
		return testConfig(stdout, *cfgPath)
	}
	// Under systemd, stderr is the journal's stream: each line then says
	// its priority, so that journalctl -p err finds the errors.
	f, isFile := stderr.(*os.File)
	logger, err := newLogger(stderr, *logFormat, *logLevel, isFile && journalstream.Connected(f))
	if err != nil {
		return err
	}
	if *uninstall {
		return daemon.Uninstall(ctx, *cfgPath, logger)
	}
	watchdog, err := sdnotify.WatchdogInterval()
	if err != nil {
		logger.Warn("systemd watchdog not used", "err", err)
	}
	d, err := daemon.New(daemon.Options{
		ConfigPath: *cfgPath,
		Logger:     logger,
		Version:    version,
		DryRun:     *dryRun,
		Notify: func(state string) {
			if _, err := sdnotify.Notify(state); err != nil {
				logger.Warn("sd_notify", "err", err)
			}
		},
		// Half of WatchdogSec=, as sd_watchdog_enabled(3) advises.
		WatchdogEvery: watchdog / 2,
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

// errUsage: the flags were wrong; flag has said which.
var errUsage = errors.New("bad flags")

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: smtpband [flags]\n\nThe smtpban daemon: follows the mail logs, bans in nftables. Control it with smtpban(1).\n\nflags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// testConfig is -t: load the config as the daemon would and say whether
// it can start on it.
func testConfig(stdout io.Writer, path string) error {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		return fmt.Errorf("config has errors:\n%s", diags.Error())
	}
	for _, dg := range diags {
		fmt.Fprintln(stdout, dg.String())
	}
	fmt.Fprintf(stdout, "config %s is valid: %d jails, %d sources\n", path, len(cfg.Jails), len(cfg.Sources))
	return nil
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

// newLogger builds the daemon's logger; journal prefixes each line with
// its priority and leaves the time to the journal.
func newLogger(w io.Writer, format, level string, journal bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if journal {
		opts.ReplaceAttr = journalstream.DropTime
	}
	var build func(io.Writer) slog.Handler
	switch format {
	case "text":
		build = func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, opts) }
	case "json":
		build = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, opts) }
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", format)
	}
	if journal {
		return slog.New(journalstream.NewHandler(w, build)), nil
	}
	return slog.New(build(w)), nil
}
