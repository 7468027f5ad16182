package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/receivers"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// statusEntry is one destination in `rotatord status`. It never holds a secret.
type statusEntry struct {
	Destination  string `json:"destination"`
	Enabled      bool   `json:"enabled"`
	KeyID        string `json:"key_id,omitempty"`
	LastRotation string `json:"last_rotation,omitempty"`
	AgeSeconds   int64  `json:"age_seconds,omitempty"`
	// AheadSeconds is how far in the future the stored rotated_at is (another host's clock).
	AheadSeconds int64 `json:"stored_ahead_seconds,omitempty"`
	// NotAtProvider is the coverage state of a destination webhook.co's list lacks.
	NotAtProvider string `json:"not_at_provider,omitempty"`
	// NeverRotated is true when the sink holds no secret: overdue at once.
	NeverRotated    bool   `json:"never_rotated,omitempty"`
	MaxAgeSeconds   int64  `json:"max_age_seconds"`
	NextDue         string `json:"next_due,omitempty"`
	Overdue         bool   `json:"overdue"`
	ProviderKeyID   string `json:"provider_active_key_id,omitempty"`
	ProviderMatches *bool  `json:"provider_matches,omitempty"`
	// ProviderError is why the provider's keys could not be listed (--online).
	ProviderError string `json:"provider_error,omitempty"`
	// ProviderKeySpooled is true when the provider's active key is not stored yet but waits
	// in this host's spool: not drift, a store in progress.
	ProviderKeySpooled bool `json:"provider_key_spooled,omitempty"`
	// zone is the destination's time zone: the table shows times in it, as plan does.
	zone *time.Location
	// LeaseHolder is the process rotating the destination now (its lease), if any.
	LeaseHolder string `json:"lease_holder,omitempty"`
	// Held says which consumer is behind, holding the destination's rotations: with
	// --online as the consumers answer now, else as the daemon on this host recorded (with
	// since when).
	Held  []string `json:"held,omitempty"`
	Error string   `json:"error,omitempty"`
}

// statusCommand is `rotatord status`: what the sink holds for each destination, how old it
// is against max_age, when it is next due; with --online, whether the provider agrees.
func statusCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("status", env)
	path := fs.String("config", config.DefaultPath, "config file")
	online := fs.Bool("online", false, "also list each destination's keys at webhook.co and compare the active one")
	output := fs.String("output", "table", "table or json")
	at := fs.String("at", "", "evaluate as of this RFC 3339 time instead of now")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: --output %q: want table or json", errUsage, *output)
	}
	now, err := timeFlag("--at", *at)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// A sink of the wrong KV version would read nothing, or the wrong thing: openSink says so.
	s, auth, err := app.OpenSink(ctx, cfg, env.daemonEnv())
	if err != nil {
		return err
	}
	var client *webhookco.Client
	if *online {
		if client, err = apiClient(cfg, env); err != nil {
			return err
		}
	}
	leases, leaseErr := app.NewLeases(cfg, auth, "rotatord status")
	// This host's spool, read-only and without its key (key ids are in the file names): a
	// key waiting there is not drift. None yet: nothing waits.
	sp, _ := spool.OpenReadOnly(cfg.StateDir, nil)
	// Online, the whole account: the rules' destinations too, and what nobody covers.
	dests := cfg.Destinations
	var cov *account.Result
	pace := newPaced(cfg, env.Stderr)
	if client != nil {
		r, err := accountCoverage(ctx, cfg, client, pace)
		if err != nil {
			return err
		}
		cov, dests = &r, r.WithConfigured(cfg)
	}
	// What the listing says is not at webhook.co gets no next time and no key listing.
	notThere := notAtWebhookco(cov)
	local := receivers.ReadHolds(cfg.StateDir)
	holds := describeHolds(local)
	acks := app.AcksOf(s)
	var out []statusEntry
	for _, d := range dests {
		e := statusOf(ctx, d, s, now)
		e.LeaseHolder = leaseHolder(ctx, d, leases, leaseErr)
		switch state, gone := notThere[d.Name]; {
		case gone:
			e.NotAtProvider, e.NextDue = state, ""
		case client != nil:
			e.compareProvider(ctx, client, pace, d, sp)
			// Online, the consumers themselves say who is behind, whichever host's daemon
			// holds the rotation (or none yet).
			holds[d.Name] = consumersBehind(ctx, d, e.KeyID, acks, local)
		}
		e.Held = holds[d.Name]
		out = append(out, e)
	}
	if err := writeStatus(env, *output, out); err != nil {
		return err
	}
	writeHolds(env.Stdout, *output, holds)
	if cov != nil && *output == "table" {
		if err := writeCoverage(env.Stdout, *cov); err != nil {
			return err
		}
	}
	// A listing that failed makes the status unknown: say so in the exit code too.
	if failed := countFailedListings(out); failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("status --online: the keys of %s could not be listed at webhook.co", plural(failed, "destination"))}
	}
	if n := configuredNotThere(cfg, notThere); n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("status --online: %s of the config not at webhook.co", plural(n, "destination"))}
	}
	return nil
}

// notAtWebhookco names the destinations of the config webhook.co's list lacks, with their
// state (nil coverage: none known).
func notAtWebhookco(cov *account.Result) map[string]string {
	out := map[string]string{}
	if cov == nil {
		return out
	}
	for _, it := range cov.Items {
		if it.State == account.MissingAtProvider || it.State == account.Revoked {
			out[it.Name] = it.State
		}
	}
	return out
}

// configuredNotThere counts the config's own destinations (not the rules') that webhook.co's
// list lacks: those are a config to fix; a rule's deleted destination is not.
func configuredNotThere(cfg *config.Config, notThere map[string]string) int {
	n := 0
	for _, d := range cfg.Destinations {
		if _, gone := notThere[d.Name]; gone {
			n++
		}
	}
	return n
}

// apiClient builds the webhook.co client of cfg, with its API key.
func apiClient(cfg *config.Config, env Env) (*webhookco.Client, error) {
	key, err := cfg.API.LoadAPIKey(env.Getenv)
	if err != nil {
		return nil, err
	}
	return app.APIClient(cfg, key, version, nil)
}

// statusOf reads what the sink holds for d and judges its age at now.
func statusOf(ctx context.Context, d config.Destination, s rotate.Sink, now time.Time) statusEntry {
	maxAge := d.EffectiveMaxAge(now)
	e := statusEntry{Destination: d.Name, Enabled: d.IsEnabled(), MaxAgeSeconds: int64(maxAge.Seconds()), zone: d.Zone()}
	if sched, err := d.SpreadSchedule(); err == nil && d.IsEnabled() {
		e.NextDue = sched.Next(now).UTC().Format(time.RFC3339)
	}
	rec, err := s.Get(ctx, d.VaultPath)
	switch {
	case errors.Is(err, sink.ErrNotFound):
		e.NeverRotated = true
		e.Overdue = metrics.Overdue(time.Time{}, true, maxAge, now)
	case err != nil:
		e.Error = err.Error()
	default:
		e.KeyID, e.LastRotation = rec.KeyID, rec.RotatedAt.UTC().Format(time.RFC3339)
		e.AgeSeconds = int64(now.Sub(rec.RotatedAt).Seconds())
		if e.AgeSeconds < 0 {
			// Stored by a host whose clock is ahead of this one's: no negative age.
			e.AheadSeconds, e.AgeSeconds = -e.AgeSeconds, 0
		}
		e.Overdue = metrics.Overdue(rec.RotatedAt, false, maxAge, now)
	}
	return e
}

// leaseHolder says who holds d's lease now, or why that is unknown.
func leaseHolder(ctx context.Context, d config.Destination, leases app.Leases, leaseErr error) string {
	switch {
	case leaseErr != nil:
		return "unknown: " + leaseErr.Error()
	case leases == nil:
		return ""
	}
	holder, err := leases.Holder(ctx, d.ID)
	if err != nil {
		return "unknown: " + err.Error()
	}
	return holder
}

// compareProvider lists d's keys at webhook.co and compares the active one with the stored.
func (e *statusEntry) compareProvider(ctx context.Context, client *webhookco.Client, p *paced, d config.Destination, sp *spool.Spool) {
	keys, err := p.keys(ctx, client, d)
	var ae *webhookco.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == 404:
		e.ProviderError = "no such replay destination at webhook.co"
	case err != nil:
		e.ProviderError = err.Error()
	default:
		var pending []string
		if sp != nil {
			pending, _ = sp.PendingKeyIDs(d.ID)
		}
		drift := rotate.CompareKeys(keys, e.KeyID, pending)
		match := drift.ActiveKeyID == e.KeyID
		e.ProviderKeyID, e.ProviderMatches, e.ProviderKeySpooled = drift.ActiveKeyID, &match, drift.Held
	}
}

func countFailedListings(out []statusEntry) int {
	failed := 0
	for _, e := range out {
		if e.ProviderError != "" {
			failed++
		}
	}
	return failed
}

// writeStatus prints the entries as a table or as JSON.
func writeStatus(env Env, output string, out []statusEntry) error {
	if output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tLAST ROTATION\tAGE\tMAX AGE\tNEXT DUE\tOVERDUE\tKEY ID\tPROVIDER\tLEASE")
	for _, e := range out {
		last, age, next := inZone(e.LastRotation, e.zone), (time.Duration(e.AgeSeconds) * time.Second).String(), inZone(e.NextDue, e.zone)
		switch {
		case e.NeverRotated:
			last, age = "never rotated", "-"
		case last == "":
			last, age = "error: "+e.Error, "-"
		case e.AheadSeconds > 0:
			age = fmt.Sprintf("0s (clocks differ: stored %s ahead of this host)", time.Duration(e.AheadSeconds)*time.Second)
		}
		if next == "" && e.NotAtProvider != "" {
			next = "-"
		}
		if !e.Enabled {
			next = "paused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", e.Destination, last, age,
			time.Duration(e.MaxAgeSeconds)*time.Second, next, e.Overdue, e.KeyID, e.providerColumn(), orDash(e.LeaseHolder))
	}
	return tw.Flush()
}

// inZone shows an RFC 3339 time of the JSON output in the destination's zone, the way
// `rotatord plan` prints its times; anything else is returned as it is.
func inZone(rfc3339 string, zone *time.Location) string {
	at, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil || zone == nil {
		return rfc3339
	}
	return at.In(zone).Format(planTimeLayout)
}

// providerColumn is what the PROVIDER column says.
func (e statusEntry) providerColumn() string {
	switch {
	case e.NotAtProvider != "":
		return "not at webhook.co (" + e.NotAtProvider + ")"
	case e.ProviderError != "":
		return "error: " + e.ProviderError
	case e.ProviderMatches == nil:
		return "-"
	case *e.ProviderMatches:
		return "matches"
	case e.ProviderKeySpooled:
		return "pending in the spool: " + e.ProviderKeyID
	case e.NeverRotated:
		return "nothing stored; active " + e.ProviderKeyID
	}
	return "DRIFT: " + e.ProviderKeyID
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describeHolds says each hold, by destination.
func describeHolds(holds []receivers.Hold) map[string][]string {
	out := map[string][]string{}
	for _, h := range holds {
		out[h.Destination] = append(out[h.Destination], h.Describe())
	}
	return out
}

// consumersBehind asks each consumer of d with adoption which keys it holds, as the gate
// does before a rotation, and says each that does not hold the stored key (stored: its id,
// "" when nothing is stored: no rotation would revoke a key then). When the daemon on this
// host recorded the same hold, its description says since when.
func consumersBehind(ctx context.Context, d config.Destination, stored string, acks receivers.Acks, local []receivers.Hold) []string {
	if stored == "" {
		return nil
	}
	var out []string
	for _, c := range d.Consumers {
		if c.Adoption == nil {
			continue
		}
		keys, err := receivers.Ask(ctx, acks, c, d)
		if err == nil && slices.Contains(keys, stored) {
			continue
		}
		h := receivers.Hold{Destination: d.Name, Consumer: c.Name, StoredKeyID: stored, Holds: keys}
		if err != nil {
			h.Why = err.Error()
		}
		if i := slices.IndexFunc(local, func(l receivers.Hold) bool {
			return l.Destination == d.Name && l.Consumer == c.Name && l.StoredKeyID == stored
		}); i >= 0 {
			h.Since = local[i].Since
		}
		out = append(out, h.Describe())
	}
	return out
}

// writeHolds says, after a table, each destination whose rotations are held.
func writeHolds(w io.Writer, output string, holds map[string][]string) {
	if output != "table" {
		return
	}
	names := make([]string, 0, len(holds))
	for n := range holds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, why := range holds[n] {
			fmt.Fprintf(w, "HELD %s: rotations held, nothing minted: %s\n", n, why)
		}
	}
}
