package app

// Discovery: the config's rules select destinations from the provider's list of the
// organisation's replay destinations. The config in force is the file's destinations plus
// the rules' ones (internal/coverage decides); a listing that fails keeps the last known set.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/scheduler"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// discovery is the daemon's knowledge of the account.
type discovery struct {
	mu sync.Mutex
	// static is the config as the file says (with SIGHUP's changes), before the rules.
	static *config.Config
	// listing is the last successful listing; nil: none yet.
	listing []webhookco.ReplayDestination
	// result is the coverage of the config in force.
	result account.Result
	// gone says since when each destination (by name, with its id) is no longer scheduled.
	gone map[string]goneDestination
	// deleted are destinations rotatord covered that the provider's list no longer has
	// (deleted there), kept in state_dir/DeletedFile so status and a restart see them too.
	deleted       []account.Item
	deletedLoaded bool
}

// DeletedFile, in state_dir, lists the destinations the daemon covered that webhook.co's
// list no longer has (JSON coverage items: ids, names, paths; never a secret).
const DeletedFile = "deleted-destinations.json"

// ReadDeleted reads state_dir/DeletedFile; none (or unreadable) is an empty list.
func ReadDeleted(stateDir string) []account.Item {
	b, err := os.ReadFile(filepath.Join(stateDir, DeletedFile))
	if err != nil || len(b) > 16<<20 {
		return nil
	}
	var items []account.Item
	if json.Unmarshal(b, &items) != nil {
		return nil
	}
	return items
}

type goneDestination struct {
	id    string
	since time.Time
}

// Coverage is what the last listing and the rules decided (Listed false: no listing).
func (c *App) Coverage() account.Result {
	c.disc.mu.Lock()
	defer c.disc.mu.Unlock()
	return c.disc.result
}

// Config is the config in force: the file's destinations and the ones the rules selected.
func (c *App) Config() *config.Config { return c.config() }

// listsAccount says whether the account's list is read: with rules, and for the daemon
// (Options.CountAccount) without them too.
func (c *App) listsAccount() bool {
	return c.staticConfig().Discovery.Enabled() || c.opts.CountAccount
}

// listAccount lists the organisation's destinations when rules are configured (or the
// daemon counts the account), and keeps the listing. A failure is counted and logged, and
// the last known listing stays. Without rules, a key that may not list (no endpoints:read)
// is not a failure: nothing outside the config is counted then.
func (c *App) listAccount(ctx context.Context) error {
	static := c.staticConfig()
	if !c.listsAccount() {
		return nil
	}
	var listing webhookco.Listing
	err := c.paced(ctx, func(ctx context.Context) (err error) {
		if a := c.ahead.Swap(nil); a != nil {
			// The start's listing, begun while the config was parsed: its answer is this
			// call's, taken through the same budget.
			listing, err = a.wait(ctx, c.metrics.ObserveAPIRequest)
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, static.API.Timeout)
		defer cancel()
		listing, err = c.client.ListDestinations(ctx)
		return err
	}).Err
	var apiErr *webhookco.APIError
	if err != nil && !static.Discovery.Enabled() && errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden {
		c.countOnce.Do(func() {
			c.log.Info("the API key may not list the account (no endpoints:read): destinations outside the config are not counted", zap.Error(err))
		})
		return nil
	}
	if err != nil {
		c.metrics.DiscoveryRuns.WithLabelValues(metrics.ResultFailure).Inc()
		c.log.Warn("listing the account's replay destinations failed; the last known set stays scheduled", zap.Error(err))
		return err
	}
	if len(listing.Skipped) > 0 {
		// The rest of the account still counts: one odd item stops nothing.
		c.log.Warn("the account's listing held items no destination of the API can be; they are left out",
			zap.Int("skipped", len(listing.Skipped)), zap.Strings("items", listing.Skipped[:min(len(listing.Skipped), 10)]))
	}
	c.metrics.DiscoveryRuns.WithLabelValues(metrics.ResultSuccess).Inc()
	c.metrics.DiscoverySuccess.SetToCurrentTime()
	c.disc.mu.Lock()
	c.disc.listing = listing.Destinations
	c.disc.mu.Unlock()
	return nil
}

func (c *App) staticConfig() *config.Config {
	c.disc.mu.Lock()
	defer c.disc.mu.Unlock()
	return c.disc.static
}

func (c *App) setStatic(cfg *config.Config) {
	c.disc.mu.Lock()
	c.disc.static = cfg
	c.disc.mu.Unlock()
}

// resolveCoverage computes the config in force from the file's config and the last listing,
// exports the coverage, and logs what the rules could not decide.
func (c *App) resolveCoverage() *config.Config {
	c.disc.mu.Lock()
	static, listing := c.disc.static, c.disc.listing
	if !static.Discovery.Enabled() && !c.opts.CountAccount {
		listing = nil // discovery off: the file's destinations, as they are
	}
	r := account.Resolve(static, listing)
	if !c.disc.deletedLoaded {
		c.disc.deleted, c.disc.deletedLoaded = ReadDeleted(static.StateDir), true
	}
	known := map[string]bool{}
	for _, it := range c.disc.deleted {
		known[it.ID] = true
	}
	before := len(known)
	r, c.disc.deleted = account.WithDeleted(r, c.disc.result.Items, c.disc.deleted)
	var newly []account.Item
	for _, it := range c.disc.deleted {
		if !known[it.ID] {
			newly = append(newly, it)
		}
	}
	// Written when the set changed (one came, or one was listed again), not every listing.
	if changed := len(newly) > 0 || len(c.disc.deleted) != before; r.Listed && changed {
		if b, err := json.Marshal(c.disc.deleted); err == nil {
			if err := durable.WriteFile(filepath.Join(static.StateDir, DeletedFile), b); err != nil {
				c.log.Warn("could not record the destinations deleted at webhook.co", zap.Error(err))
			}
		}
	}
	c.disc.result = r
	c.disc.mu.Unlock()
	c.markDeleted(newly)
	for state, n := range r.Count() {
		c.metrics.Destinations.WithLabelValues(state).Set(float64(n))
	}
	for _, p := range r.Problems {
		c.log.Error("discovery: a destination is left uncovered", zap.Error(p))
	}
	next := *static
	next.Destinations = r.Destinations
	return &next
}

// marker is a sink that can note something beside a stored secret without touching it
// (KV v2 custom_metadata).
type marker interface {
	Mark(ctx context.Context, path string, fields map[string]string) error
}

// markDeleted notes on each secret whose destination webhook.co deleted since when; the
// secret itself is left as it is. A sink that keeps no metadata (KV v1, files) is told
// nothing: the log line and the state say it.
func (c *App) markDeleted(items []account.Item) {
	m, ok := c.sink.(marker)
	for _, it := range items {
		c.log.Warn("destination deleted at webhook.co: no longer rotated; its stored secret is left alone",
			zap.String("destination", it.Name), zap.String("id", it.ID), zap.String("vault_path", it.VaultPath))
		if !ok || it.VaultPath == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.config().Vault.Timeout)
		err := m.Mark(ctx, it.VaultPath, map[string]string{"deleted_at_provider": time.Now().UTC().Format(time.RFC3339)})
		cancel()
		if err != nil {
			c.log.Warn("could not mark the secret of a destination deleted at webhook.co", zap.String("destination", it.Name), zap.Error(err))
		}
	}
}

// discoverAtStart lists the account before the first jobs are built, so destinations the
// rules select are scheduled (and can be named in `rotatord rotate`) from the start.
func (c *App) discoverAtStart(ctx context.Context) {
	if c.listsAccount() {
		_ = c.listAccount(ctx)
	}
	if a := c.ahead.Swap(nil); a != nil { // begun, and not needed after all
		a.Cancel()
	}
	next := c.resolveCoverage()
	for _, d := range next.Destinations {
		c.metrics.AddDestination(d.Name, rotate.FailureReasons)
	}
	c.cfgMu.Lock()
	c.cfg = next
	c.cfgMu.Unlock()
	c.logCoverage()
}

// logCoverage says in one line what the listing decided.
func (c *App) logCoverage() {
	r := c.Coverage()
	if !r.Listed {
		return
	}
	counts := r.Count()
	fields := []zap.Field{}
	for _, s := range account.States {
		fields = append(fields, zap.Int(s, counts[s]))
	}
	c.log.Info("discovery: the account's replay destinations", fields...)
	for _, it := range r.Items {
		switch it.State {
		case account.Uncovered:
			c.log.Warn("destination not covered by any rule", zap.String("id", it.ID), zap.String("label", it.Label), zap.String("url", it.URL), zap.String("reason", it.Reason))
		case account.MissingAtProvider, account.Revoked:
			c.log.Warn("destination not rotated", zap.String("destination", it.Name), zap.String("id", it.ID), zap.String("state", it.State), zap.String("reason", it.Reason))
		}
	}
}

// apply makes the config in force the file's config plus the rules' destinations from the
// last listing, and reschedules when the set of destinations changed. Destinations no
// longer scheduled get no next rotation; their series and local lease file are removed once
// they have been gone for discovery.grace.
func apply(ctx context.Context, c *App, sched *scheduler.Scheduler, now time.Time) (dests, scheduled int, err error) {
	old := c.config()
	next := c.resolveCoverage()
	changed := !slices.EqualFunc(old.Destinations, next.Destinations, func(a, b config.Destination) bool { return reflect.DeepEqual(a, b) }) ||
		!reflect.DeepEqual(old.Defaults, next.Defaults)
	if changed {
		c.cfgMu.Lock()
		c.cfg = next
		c.cfgMu.Unlock()
		for _, d := range next.Destinations {
			c.metrics.AddDestination(d.Name, rotate.FailureReasons)
		}
		c.askLater(ctx, newcomers(old.Destinations, next.Destinations))
		jobs, err := jobs(ctx, c, now)
		if err == nil {
			err = sched.Update(ctx, jobs)
		}
		if err == nil {
			c.startReadLater(ctx, sched)
		}
		if err != nil {
			c.cfgMu.Lock()
			c.cfg = old
			c.cfgMu.Unlock()
			return 0, 0, err
		}
		scheduled = len(jobs)
		c.logCoverage()
	} else {
		scheduled = countEnabled(next.Destinations)
	}
	c.sweepGone(old, next, now)
	return len(next.Destinations), scheduled, nil
}

// newcomers are the destinations of next that old did not have, or had at another path.
func newcomers(old, next []config.Destination) []config.Destination {
	had := make(map[string]string, len(old))
	for _, d := range old {
		had[d.Name] = d.VaultPath
	}
	var out []config.Destination
	for _, d := range next {
		if path, ok := had[d.Name]; !ok || path != d.VaultPath {
			out = append(out, d)
		}
	}
	return out
}

// askLater makes destinations added after the start (a reload, the account's listing) wait
// for their rights as those a large start left do: the backends are asked now (a folder
// that cannot be written is refused at once), and Vault about each one's rights before its
// first rotation.
func (c *App) askLater(ctx context.Context, dests []config.Destination) {
	if len(dests) == 0 {
		return
	}
	f := Findings{Blocked: map[string]error{}}
	f.checkBackends(ctx, c, dests, askNone)
	f.Log(c.log)
	c.rights.add(f.Deferred, f.Blocked)
}

func countEnabled(ds []config.Destination) int {
	n := 0
	for _, d := range ds {
		if d.IsEnabled() {
			n++
		}
	}
	return n
}

// sweepGone notes the destinations no longer scheduled and, after discovery.grace, removes
// their series and local lease file (their Vault lease entries expire on their own).
func (c *App) sweepGone(old, next *config.Config, now time.Time) {
	present := map[string]bool{}
	for _, d := range next.Destinations {
		present[d.Name] = true
	}
	c.disc.mu.Lock()
	defer c.disc.mu.Unlock()
	if c.disc.gone == nil {
		c.disc.gone = map[string]goneDestination{}
	}
	for _, d := range old.Destinations {
		if _, noted := c.disc.gone[d.Name]; !present[d.Name] && !noted {
			c.disc.gone[d.Name] = goneDestination{id: strings.ToLower(d.ID), since: now}
			c.metrics.Fleet.SetNext(d.Name, time.Time{})
		}
	}
	grace := next.Discovery.Grace
	for name, g := range c.disc.gone {
		switch {
		case present[name]:
			delete(c.disc.gone, name) // back
		case now.Sub(g.since) >= grace:
			c.metrics.RemoveDestination(name)
			if next.Coordination.Mode == config.CoordinationLocal {
				lock := filepath.Join(next.StateDir, "locks", g.id+".lock")
				if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
					c.log.Warn("could not remove a gone destination's lock file", zap.String("file", lock), zap.Error(err))
				}
			}
			c.log.Info("destination gone for longer than discovery.grace: its series are removed", zap.String("destination", name), zap.Duration("grace", grace))
			delete(c.disc.gone, name)
		}
	}
}

// discoveryLoop lists the account every discovery.interval and hands the result to the
// daemon's main loop, which applies it between reloads.
func discoveryLoop(ctx context.Context, c *App, interval time.Duration, listed chan<- struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.listAccount(ctx); err != nil {
			continue
		}
		select {
		case listed <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}
