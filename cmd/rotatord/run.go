package main

import (
	"context"
	"fmt"

	"github.com/rotatord/rotatord/internal/config"
)

// runCommand is `rotatord run`: the daemon.
func runCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("run", env)
	path := fs.String("config", config.DefaultPath, "config file")
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
	c, err := build(cfg, env, hooks{})
	if err != nil {
		return err
	}
	return daemon(ctx, c, env, hooks{})
}
