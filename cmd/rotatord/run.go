package main

import (
	"context"
	"fmt"

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
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	// /healthz first: the start may wait on Vault (up to vault.timeout) and webhook.co.
	early, err := app.StartEarly(cfg, env.Stderr)
	if err != nil {
		return err
	}
	defer early.Close() // Run shuts it down gracefully; this ends it when the start fails
	h := app.Options{Version: version, Command: "rotatord run", DryRun: *dryRun, ConfigPath: *path, CountAccount: true, Early: early}
	c, err := app.New(ctx, cfg, env.daemonEnv(), h)
	if err != nil {
		return err
	}
	found := app.Preflight(ctx, c, c.Config().Destinations)
	found.Log(c.Log())
	if err := found.Refusal(*allowDegraded, "fix them, or start with --allow-degraded to let the affected destinations fail instead"); err != nil {
		return err
	}
	return c.Run(ctx, env.daemonEnv(), found.BlockedAll(c.Config().Destinations))
}
