package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/receivers"
	"github.com/rotatord/rotatord/internal/sink"
)

// planEntry is one destination in `rotatord plan`.
type planEntry struct {
	Destination string   `json:"destination"`
	Enabled     bool     `json:"enabled"`
	Schedule    string   `json:"schedule"`
	TimeZone    string   `json:"time_zone"`
	Window      string   `json:"window"`
	MaxAge      string   `json:"max_age"`
	Next        []string `json:"next"`
	// NeverRotated (with --online) is true when the sink holds no secret for it.
	NeverRotated bool   `json:"never_rotated,omitempty"`
	Error        string `json:"error,omitempty"`
	// Held says why its rotations are held (a consumer behind): with --online as its
	// consumers answer, else as the daemon on this host recorded.
	Held []string `json:"held,omitempty"`
}

// planCommand is `rotatord plan`: the next fire times of every destination in its time
// zone, spread inside its window, computed from the config alone.
// With --online it also reads what the sink holds, so a destination with nothing stored
// says "never rotated" and when its first rotation comes, and asks each consumer with
// adoption which keys it holds, as status --online does.
func planCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("plan", env)
	path := fs.String("config", config.DefaultPath, "config file")
	count := fs.Int("count", 3, "fire times per destination")
	output := fs.String("output", "table", "table or json")
	from := fs.String("from", "", "compute from this RFC 3339 time instead of now")
	online := fs.Bool("online", false, "also read the sink, to show destinations never rotated, and list the account to show what the rules select")
	listing := fs.String("listing", "", "a saved answer of GET /v1/replay-destinations: show what the rules select from it, offline")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *count < 1 || *count > 100 {
		return fmt.Errorf("%w: --count %d: want 1 to 100", errUsage, *count)
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: --output %q: want table or json", errUsage, *output)
	}
	now, err := timeFlag("--from", *from)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	// Online, the sink says what is stored and the consumers which keys they hold.
	var stored sink.Sink
	var acks receivers.Acks
	local := receivers.ReadHolds(cfg.StateDir)
	holds := describeHolds(local)
	if *online {
		if stored, _, err = app.OpenSink(ctx, cfg, env.daemonEnv()); err != nil {
			return err
		}
		acks = app.AcksOf(stored)
	}
	cov, err := planCoverage(ctx, cfg, env, *listing, *online)
	if err != nil {
		return err
	}
	dests := cfg.Destinations
	if cov != nil {
		dests = cov.Destinations // in force: what the daemon rotates
	}
	var plan []planEntry
	for _, d := range dests {
		e, keyID, err := planOf(ctx, d, now, *count, *output == "json", stored)
		if err != nil {
			return err
		}
		if stored != nil && e.Error == "" {
			// The consumers say who is behind, whichever host's daemon holds the rotation
			// (when the sink could not be read, what this host's daemon recorded stands).
			holds[d.Name] = consumersBehind(ctx, d, keyID, acks, local)
		}
		e.Held = holds[d.Name]
		plan = append(plan, e)
	}
	if err := writePlan(env, *output, plan); err != nil {
		return err
	}
	// A held destination does not rotate at these times until its consumer catches up.
	writeHolds(env.Stdout, *output, holds)
	if cov != nil && *output == "table" {
		return writeCoverage(env.Stdout, *cov)
	}
	return nil
}

// planCoverage is what the rules select for plan: from a saved listing, or with --online
// from the account's; nil with neither.
func planCoverage(ctx context.Context, cfg *config.Config, env Env, listing string, online bool) (*account.Result, error) {
	switch {
	case listing != "":
		r, err := savedCoverage(cfg, listing)
		if err != nil {
			return nil, err
		}
		return &r, nil
	case online:
		client, err := apiClient(cfg, env)
		if err != nil {
			return nil, err
		}
		r, err := accountCoverage(ctx, cfg, client, newPaced(cfg, env.Stderr))
		if err != nil {
			return nil, err
		}
		return &r, nil
	}
	return nil, nil
}

// planOf is d's next count fire times after now (RFC 3339 for JSON, the destination's time
// zone for people), with what stored says of a destination never rotated, and the key id
// it holds ("" without stored, or with nothing stored).
func planOf(ctx context.Context, d config.Destination, now time.Time, count int, rfc3339 bool, stored sink.Sink) (planEntry, string, error) {
	sched, err := d.SpreadSchedule()
	if err != nil {
		return planEntry{}, "", fmt.Errorf("destination %s: %w", d.Name, err)
	}
	e := planEntry{Destination: d.Name, Enabled: d.IsEnabled(), Schedule: d.Schedule, TimeZone: d.TimeZone,
		Window: d.Window.String(), MaxAge: d.EffectiveMaxAge(now).String()}
	var keyID string
	if stored != nil {
		rec, err := stored.Get(ctx, d.VaultPath)
		switch {
		case errors.Is(err, sink.ErrNotFound):
			e.NeverRotated = true
			if d.FirstRotation == config.FirstRotationAtStart && d.IsEnabled() {
				e.Next = append(e.Next, "at start, inside its window (never rotated)")
			}
		case err != nil:
			e.Error = err.Error()
		default:
			keyID = rec.KeyID
		}
	}
	for at, i := sched.Next(now), 0; !at.IsZero() && i < count; at, i = sched.Next(at), i+1 {
		if rfc3339 {
			e.Next = append(e.Next, at.Format(time.RFC3339))
		} else {
			e.Next = append(e.Next, at.In(d.Zone()).Format(planTimeLayout))
		}
	}
	return e, keyID, nil
}

// planTimeLayout is how tables show a time: in the destination's zone, named.
const planTimeLayout = "2006-01-02 15:04:05 MST"

// writePlan prints the plan as a table or as JSON.
func writePlan(env Env, output string, plan []planEntry) error {
	if output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSCHEDULE\tTIME ZONE\tWINDOW\tMAX AGE\tNEXT")
	for _, e := range plan {
		next := strings.Join(e.Next, ", ")
		switch {
		case e.Error != "":
			next = "error: " + e.Error
		case !e.Enabled:
			next = "paused (enabled: false)"
		case e.NeverRotated && len(e.Next) > 0 && !strings.HasPrefix(e.Next[0], "at start"):
			next = "never rotated; first at " + next
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Destination, e.Schedule, e.TimeZone, e.Window, e.MaxAge, next)
	}
	return tw.Flush()
}
