package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
)

// runCommand is `rotatord run`: the daemon.
func runCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("run", env)
	path := fs.String("config", config.DefaultPath, "config file")
	dryRun := fs.Bool("dry-run", false, "do everything except the rotate calls and the sink writes, and log what would have been done")
	allowDegraded := fs.Bool("allow-degraded", false, "start even when the Vault token cannot write some destinations' paths; those destinations fail instead of rotating")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: run takes no arguments, got %q", errUsage, fs.Args())
	}
	began := time.Now()
	// A large config's api section is known before its destinations are parsed: the
	// account's listing, which the start needs too, begins then (app.ListAhead).
	var ahead *app.AheadListing
	defer func() { ahead.Cancel() }()
	cfg, digest, err := config.LoadFileAhead(*path, func(api config.API) {
		ahead = app.ListAhead(ctx, api, env.Getenv, version)
	})
	if err != nil {
		return err
	}
	h := app.Options{Version: version, Command: "rotatord run", DryRun: *dryRun, ConfigPath: *path, ConfigDigest: digest, CountAccount: true, Began: began, Ahead: ahead}
	return app.Start(ctx, cfg, env.daemonEnv(), h, *allowDegraded, "fix them, or start with --allow-degraded to let the affected destinations fail instead")
}
