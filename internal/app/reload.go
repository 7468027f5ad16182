package app

// SIGHUP: destinations and defaults change without a restart.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/scheduler"
)

// reload re-reads the config file (SIGHUP). An invalid file is rejected, logged, and the
// config in force kept. A valid one replaces the destinations and defaults at once:
// added, removed and changed destinations take effect without a restart, and rotations in
// flight go on. Changes to other sections need a restart and are reported as such.
func reload(ctx context.Context, c *App, sched *scheduler.Scheduler, path string) (string, error) {
	c.log.Info("SIGHUP received; reloading the config", zap.String("config", path))
	fail := func(err error) (string, error) {
		c.metrics.ConfigReloads.WithLabelValues(metrics.ResultFailure).Inc()
		c.log.Error("config reload rejected; the config in force is kept", zap.String("config", path), zap.Error(err))
		return "", err
	}
	if path == "" {
		return fail(errors.New("this command has no config file to reload"))
	}
	next, digest, err := config.LoadFile(path, c.file.digest)
	if err != nil {
		return fail(err)
	}
	old := c.staticConfig()
	restart := c.file.restart
	switch {
	case next == nil:
		// The file's bytes are those the config in force was read from: the same config,
		// nothing to parse (at 100,000 destinations, seconds and the reload's memory peak).
		// The account is still listed again: a SIGHUP is also a way to say "look again".
		c.log.Info("config file unchanged since it was read (the same bytes): not parsed again", zap.String("config", path))
		next = old
	case slices.EqualFunc(old.Destinations, next.Destinations, func(a, b config.Destination) bool { return reflect.DeepEqual(a, b) }):
		// The destinations did not change (most reloads change something else, or nothing):
		// the running config's list stays, and the one just parsed (24 MB at 100,000) is
		// garbage now rather than beside the listing and jobs the reload builds next.
		next.Destinations = old.Destinations
		fallthrough
	default:
		restart = needsRestart(old, next)
	}
	merged := *old
	merged.Destinations, merged.Defaults, merged.Discovery = next.Destinations, next.Defaults, next.Discovery
	if len(restart) > 0 {
		c.log.Warn("config reload: these sections changed and need a restart; the rest is applied", zap.Strings("sections", restart))
	}
	c.setStatic(&merged)
	// The rules may have changed, and a SIGHUP is also a way to say "look again".
	_ = c.listAccount(ctx)
	dests, scheduled, err := apply(ctx, c, sched, time.Now())
	if err != nil {
		c.setStatic(old)
		c.resolveCoverage()
		return fail(err)
	}
	c.file = loadedFile{digest: digest, restart: restart}
	c.metrics.ConfigReloads.WithLabelValues(metrics.ResultSuccess).Inc()
	c.metrics.ConfigReloadSuccess.SetToCurrentTime()
	c.log.Info("config reloaded", zap.String("config", path), zap.Int("destinations", dests), zap.Int("scheduled", scheduled))
	summary := fmt.Sprintf("%d destination%s, %d scheduled", dests, map[bool]string{true: "", false: "s"}[dests == 1], scheduled)
	if len(restart) > 0 {
		summary += "; changed but applied only at the next restart: " + strings.Join(restart, ", ")
	}
	return summary, nil
}

// loadedFile is what a reload knows of the file the config in force was read from: the
// digest of its bytes, and the sections it changed that wait for a restart (said again at
// each reload of the same bytes).
type loadedFile struct {
	digest  config.Digest
	restart []string
}

// ReloadStatusFile, in state_dir, holds the outcome of the daemon's last reload, for
// `rotatord reload`, which waits for it to change: one line, "<time> ok <summary>" or
// "<time> rejected <error>".
const ReloadStatusFile = "reload-status"

// writeReloadStatus records a reload's outcome in state_dir (never a secret: the summary
// and the config error name settings and paths only).
func writeReloadStatus(c *App, summary string, err error) {
	line := time.Now().UTC().Format(time.RFC3339Nano) + " ok " + summary
	if err != nil {
		line = time.Now().UTC().Format(time.RFC3339Nano) + " rejected " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	if werr := durable.WriteFile(filepath.Join(c.config().StateDir, ReloadStatusFile), []byte(line+"\n")); werr != nil {
		c.log.Warn("could not record the reload's outcome for `rotatord reload`", zap.Error(werr))
	}
}

// needsRestart names the sections that a reload does not apply.
func needsRestart(old, next *config.Config) []string {
	var out []string
	for name, same := range map[string]bool{
		"api":          reflect.DeepEqual(old.API, next.API),
		"vault":        reflect.DeepEqual(old.Vault, next.Vault),
		"sink":         old.Sink == next.Sink,
		"state_dir":    old.StateDir == next.StateDir,
		"spool":        old.Spool == next.Spool,
		"scheduler":    old.Scheduler == next.Scheduler,
		"coordination": old.Coordination == next.Coordination,
		"metrics":      old.Metrics == next.Metrics,
		"log":          old.Log == next.Log,
	} {
		if !same {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
