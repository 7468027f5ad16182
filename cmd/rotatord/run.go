package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.uber.org/zap"

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
	h := hooks{command: "rotatord run", dryRun: *dryRun, configPath: *path}
	c, err := build(ctx, cfg, env, h)
	if err != nil {
		return err
	}
	blocked := preflight(ctx, c)
	if len(blocked) > 0 {
		var lines []string
		for name, why := range blocked {
			lines = append(lines, fmt.Sprintf("  %s: %v", name, why))
			c.log.Error("preflight: destination cannot be stored", zap.String("destination", name), zap.Error(why))
		}
		sort.Strings(lines)
		if !*allowDegraded {
			return fmt.Errorf("preflight: the sink refuses %d destinations (fix the Vault policy, or start with --allow-degraded):\n%s", len(blocked), strings.Join(lines, "\n"))
		}
	}
	return daemon(ctx, c, env, h, blocked)
}
