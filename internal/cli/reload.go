package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
)

// reloadCommand is `rotatord reload PID`, the unit's ExecReload=: it checks the config file
// first (an invalid one is refused here and the daemon is not disturbed), sends the daemon
// SIGHUP, and waits until the daemon has recorded the reload's outcome in state_dir. So
// `systemctl reload rotatord` returns once the reload happened, and fails when the daemon
// rejected it. (systemd 253 and later can use Type=notify-reload instead: rotatord also
// sends RELOADING=1 and READY=1.)
func reloadCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("reload", env)
	path := fs.String("config", config.DefaultPath, "config file (the one the daemon runs with)")
	wait := fs.Duration("timeout", time.Minute, "how long to wait for the daemon to finish the reload")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: reload takes the daemon's PID (in a unit: ExecReload=rotatord reload --config PATH $MAINPID)", errUsage)
	}
	pid, err := strconv.Atoi(fs.Arg(0))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%w: reload: %q is not a daemon's PID", errUsage, fs.Arg(0))
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return fmt.Errorf("reload refused, the daemon keeps its config: %w", err)
	}
	// Only the daemon of this config is signalled: SIGHUP ends most other processes.
	if err := app.CheckDaemonPID(cfg.StateDir, pid); err != nil {
		return fmt.Errorf("reload: nothing signalled: %w", err)
	}
	status := filepath.Join(cfg.StateDir, app.ReloadStatusFile)
	before, _ := os.ReadFile(status)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload: signal PID %d: %w", pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reload: PID %d recorded no outcome in %s within %v; the reload may still happen (see its log)", pid, status, *wait)
		case <-tick.C:
		}
		now, err := os.ReadFile(status)
		if err != nil || bytes.Equal(now, before) {
			continue
		}
		_, rest, _ := strings.Cut(strings.TrimSpace(string(now)), " ")
		outcome, detail, _ := strings.Cut(rest, " ")
		if outcome != "ok" {
			return fmt.Errorf("reload rejected by the daemon, which keeps the config in force: %s", detail)
		}
		fmt.Fprintf(env.Stdout, "reloaded: %s\n", detail)
		return nil
	}
}
