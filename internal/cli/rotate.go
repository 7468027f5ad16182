package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/rotate"
)

// rotateCommand is `rotatord rotate NAME…`: rotate now, once each; exit 1 unless all succeed.
func rotateCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("rotate", env)
	path := fs.String("config", config.DefaultPath, "config file")
	dryRun := fs.Bool("dry-run", false, "do everything except the rotate calls and the sink writes, and say what would have been done")
	wait := fs.Duration("wait", 0, "when another rotatord process is rotating a destination, wait up to this long (0: fail at once, naming it)")
	force := fs.Bool("force", false, "rotate although min_interval has not passed or a consumer still holds only the key this rotation revokes (an incident; audited as forced)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: rotate needs at least one destination name", errUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	// Resolve every name before rotating anything (with discovery rules, once the account
	// is listed: the rules' destinations have names too).
	dests, err := resolveNames(cfg, fs.Args(), *path)
	if err != nil && !cfg.Discovery.Enabled() {
		return err
	}
	// A person is waiting: say why, each time rotatord waits.
	onWait := func(w rotate.Wait) {
		fmt.Fprintf(env.Stderr, "%s: %s; waiting %s before trying again (%s of at most %s waited so far)\n",
			w.Destination, waitReasonText[w.Reason], w.For.Round(time.Millisecond), w.Waited.Round(time.Second), w.Max)
	}
	c, err := app.New(ctx, cfg, env.daemonEnv(), app.Options{Version: version, Command: "rotatord rotate", LeaseWait: *wait, DryRun: *dryRun, OnWait: onWait})
	if err != nil {
		return err
	}
	if cfg.Discovery.Enabled() {
		if dests, err = resolveNames(c.Config(), fs.Args(), *path); err != nil {
			return notAtProvider(err, cfg, c, fs.Args(), *path)
		}
	}
	// The same preflight as run, before anything is minted: a key minted for a secret that
	// cannot be stored revokes the one receivers hold and helps nobody.
	found := app.Preflight(ctx, c, dests)
	found.Log(c.Log())
	if len(found.Fatal) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("nothing rotated: %w", found.Refusal(false, "nothing was minted"))}
	}
	if !*dryRun {
		c.ReplaySpool(ctx)
	}
	results := c.RotateNow(ctx, dests, found.Blocked, *force)
	failed := 0
	for _, res := range results {
		line, ok := rotateLine(res)
		fmt.Fprintln(env.Stdout, line)
		if !ok {
			failed++
		}
	}
	// The consumers of what was stored are told now, not after a debounce (after the
	// lines: a consumer that is down delays the exit, not what the person reads).
	c.Receivers().Flush(ctx)
	_ = c.Log().Sync()
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d rotations failed", failed, len(dests))}
	}
	return nil
}

// rotateLine says how one rotation went in one line; ok is false for anything but a stored
// secret or a dry run.
func rotateLine(res rotate.Result) (line string, ok bool) {
	name := res.Destination
	switch res.Status {
	case rotate.Held:
		return fmt.Sprintf("%s: HELD (%s): not rotated, nothing minted: %v; --force rotates anyway", name, res.Reason, res.Err), false
	case rotate.DryRun:
		return fmt.Sprintf("%s: dry run: %s", name, res.Plan), true
	case rotate.Rotated:
		line := fmt.Sprintf("%s: rotated, key %s stored at %s", name, res.KeyID, res.Location)
		if res.Forced {
			line += " (forced)"
		}
		if len(res.LostKeyIDs) > 0 {
			line += fmt.Sprintf(" (recovered from lost key %s: minted, its secret never arrived)", strings.Join(res.LostKeyIDs, ", "))
		}
		return line, true
	case rotate.Spooled:
		return fmt.Sprintf("%s: rotated, key %s kept in the spool until the sink accepts it (%v)", name, res.KeyID, res.Err), false
	case rotate.Skipped:
		// --wait found another process rotating it, and that rotation stored a new key:
		// it stands for this one (a second would revoke the key receivers just got).
		return fmt.Sprintf("%s: not rotated again: %v, at %s", name, res.Err, res.Location), true
	}
	if res.Reason == rotate.ReasonPreflight {
		return fmt.Sprintf("%s: FAILED (%s): not rotated, nothing minted: %v", name, res.Reason, res.Err), false
	}
	return fmt.Sprintf("%s: FAILED (%s): %v", name, res.Reason, res.Err), false
}

// waitReasonText says in words what a rotation waits on.
var waitReasonText = map[string]string{
	rotate.ReasonRateLimited: "webhook.co answered 429 (rate limited)",
	rotate.ReasonUnreachable: "webhook.co cannot be reached (the request never left, nothing was minted)",
}

// resolveNames finds each named destination, or says which names exist. A name given
// twice is one destination: one rotation.
func resolveNames(cfg *config.Config, given []string, path string) ([]config.Destination, error) {
	var dests []config.Destination
	seen := map[string]bool{}
	for _, name := range given {
		if seen[name] {
			continue
		}
		seen[name] = true
		d, ok := cfg.Destination(name)
		if !ok {
			return nil, fmt.Errorf("%w: no destination named %q in %s (known: %s)", errUsage, name, path, strings.Join(names(cfg), ", "))
		}
		if !d.IsEnabled() {
			return nil, fmt.Errorf("destination %s is paused (enabled: false in %s); enable it to rotate", name, path)
		}
		dests = append(dests, d)
	}
	return dests, nil
}

// notAtProvider explains a name the config has but the destinations in force lack: the
// provider's list does not have it (deleted there, or a wrong id). Other errors pass as they are.
func notAtProvider(err error, file *config.Config, c *app.App, given []string, path string) error {
	for _, name := range given {
		if _, inForce := c.Config().Destination(name); inForce {
			continue
		}
		d, inFile := file.Destination(name)
		if !inFile {
			continue
		}
		state := account.MissingAtProvider
		for _, it := range c.Coverage().Items {
			if it.ID == d.ID {
				state = it.State
			}
		}
		return fmt.Errorf("%w: destination %s is in %s but not in webhook.co's list of the account's destinations (%s): not rotated; remove it from the config, or correct its id", errUsage, name, path, state)
	}
	return err
}

func names(cfg *config.Config) []string {
	out := make([]string, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		out = append(out, d.Name)
	}
	return out
}
