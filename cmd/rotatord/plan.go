package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotatord/rotatord/internal/config"
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
}

// planCommand is `rotatord plan`: the next fire times of every destination in its time
// zone, spread inside its window, computed from the config alone.
func planCommand(_ context.Context, args []string, env Env) error {
	fs := newFlagSet("plan", env)
	path := fs.String("config", config.DefaultPath, "config file")
	count := fs.Int("count", 3, "fire times per destination")
	output := fs.String("output", "table", "table or json")
	from := fs.String("from", "", "compute from this RFC 3339 time instead of now")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *count < 1 || *count > 100 {
		return fmt.Errorf("%w: --count %d: want 1 to 100", errUsage, *count)
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: --output %q: want table or json", errUsage, *output)
	}
	now := time.Now()
	if *from != "" {
		t, err := time.Parse(time.RFC3339, *from)
		if err != nil {
			return fmt.Errorf("%w: --from %q: want RFC 3339, e.g. 2026-11-26T12:00:00Z", errUsage, *from)
		}
		now = t
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	var plan []planEntry
	for _, d := range cfg.Destinations {
		sched, err := d.SpreadSchedule()
		if err != nil {
			return fmt.Errorf("destination %s: %w", d.Name, err)
		}
		e := planEntry{Destination: d.Name, Enabled: d.IsEnabled(), Schedule: d.Schedule, TimeZone: d.TimeZone,
			Window: d.Window.String(), MaxAge: d.EffectiveMaxAge(now).String()}
		at := now
		for range *count {
			at = sched.Next(at)
			if at.IsZero() {
				break
			}
			e.Next = append(e.Next, at.In(d.Location()).Format("2006-01-02 15:04:05 MST"))
		}
		plan = append(plan, e)
	}
	if *output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSCHEDULE\tTIME ZONE\tWINDOW\tMAX AGE\tNEXT")
	for _, e := range plan {
		next := strings.Join(e.Next, ", ")
		if !e.Enabled {
			next = "paused (enabled: false)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Destination, e.Schedule, e.TimeZone, e.Window, e.MaxAge, next)
	}
	return tw.Flush()
}
