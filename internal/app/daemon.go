package app

// The daemon: the scheduler, the background loops and the metrics listener in one run
// group, until a signal.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/scheduler"
)

// driftLoop checks every enabled destination for drift every interval, within the shared
// rate budget, and rotates those whose policy says on_drift: rotate.
func driftLoop(ctx context.Context, c *App, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range c.config().Destinations {
			if !d.IsEnabled() || ctx.Err() != nil {
				continue
			}
			drift, err := c.rotator.CheckDrift(ctx, Destination(d))
			if err != nil {
				c.log.Warn("drift check failed", zap.String("destination", d.Name), zap.Error(err))
				continue
			}
			if drift.Drifted && d.OnDrift == config.DriftRotate {
				c.rotator.RotateDrifted(ctx, Destination(d), drift)
			}
		}
	}
}

// keyCheckLoop asks webhook.co every interval whether the API key still works with every
// scope rotatord needs, so a revoked key is seen (rotatord_api_key_ok, one log line per
// change) long before the next scheduled rotation.
func keyCheckLoop(ctx context.Context, c *App, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := metrics.KeyOK
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The rate budget is waited for with ctx; webhook.co's answer within api.timeout
		// (the client's own bound on each request).
		_, result, err := checkKey(ctx, c)
		if ctx.Err() != nil {
			return
		}
		observeKeyCheck(c.metrics, result)
		switch {
		case result == metrics.KeyRateLimited:
			// Not checked this time: neither a change nor a failure.
			c.log.Info("webhook.co API key not checked this time: webhook.co answered 429", zap.Error(err))
			continue
		case result == last:
		case result == metrics.KeyOK:
			c.log.Info("webhook.co API key works again", zap.String("result", result))
		default:
			c.log.Error("webhook.co API key check failed", zap.String("result", result), zap.Error(err))
		}
		last = result
	}
}

// newScheduler builds the scheduler of jobs, reporting next fire times and skips as metrics.
func newScheduler(c *App, jobs []scheduler.Job) (*scheduler.Scheduler, error) {
	return scheduler.New(scheduler.Options{
		Jobs: jobs, MaxConcurrent: c.cfg.Scheduler.MaxConcurrent, ShutdownTimeout: c.cfg.Scheduler.ShutdownTimeout, Logger: c.log,
		OnNext: c.metrics.Fleet.SetNext,
		OnSkip: func(name string) { c.metrics.Skipped(name) },
	})
}

// newMetricsServer listens on metrics.listen (or the hook's listener) and serves /metrics,
// /healthz and /readyz: ready while the scheduler runs. Trouble with a rotation, Vault or the
// spool never makes rotatord unready: in a sidecar, readiness takes the whole pod, the
// application included, out of service. That trouble is in the metrics and their alerts.
func newMetricsServer(c *App, h Options, ready *atomic.Bool) (net.Listener, *metrics.Server, error) {
	readiness := func() error {
		if !ready.Load() {
			return errors.New("scheduler not running")
		}
		return nil
	}
	if h.Early != nil {
		h.Early.adopt(c, readiness)
		return h.Early.listener, h.Early.srv, nil
	}
	listener := h.MetricsListener
	if listener == nil {
		var err error
		if listener, err = net.Listen("tcp", c.cfg.Metrics.Listen); err != nil {
			return nil, nil, fmt.Errorf("metrics.listen %s: %w", c.cfg.Metrics.Listen, err)
		}
	}
	srv, err := metrics.NewServer(metrics.ServerOptions{
		Listener: listener, Gatherer: c.reg, Logger: c.log.Named("metrics"), Pprof: c.cfg.Metrics.Pprof,
		Ready: readiness,
	})
	if err == nil {
		err = srv.Start()
	}
	return listener, srv, err
}

func fileExists(name string) bool { _, err := os.Stat(name); return err == nil }

// addBackground adds the daemon's background loops to g: drift checks, API key checks, the
// Vault token upkeep and the spool replayer, each stopped when the group ends.
func addBackground(g *run.Group, c *App, h Options) {
	if interval := c.config().Scheduler.DriftCheckInterval; interval > 0 {
		actor(g, "the drift checks", func(ctx context.Context) error { driftLoop(ctx, c, interval); return nil })
	}
	if interval := c.config().API.KeyCheckInterval; interval > 0 {
		actor(g, "the API key checks", func(ctx context.Context) error { keyCheckLoop(ctx, c, interval); return nil })
	}
	if c.vaultAuth != nil {
		actor(g, "the Vault token upkeep", c.vaultAuth.Run)
	}
	if !h.DryRun {
		actor(g, "the spool replayer", c.rotator.RunReplayer)
		actor(g, "the consumers' notifications", c.receivers.Run)
	}
}

// actor adds a long-running part of the daemon to g, run until the group ends. One that
// returns before that, even without an error, is a fault: the group ends with an error
// naming it, so the daemon exits non-zero and its service manager restarts it.
func actor(g *run.Group, name string, f func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		err := f(ctx)
		if err == nil && ctx.Err() == nil {
			err = fmt.Errorf("%s ended unexpectedly", name)
		}
		return err
	}, func(error) { cancel() })
}

// Run runs the scheduler, the spool replayer, the Vault token keeper and the metrics
// listener until ctx is done. Destinations the preflight blocked (started with
// --allow-degraded: c.rights) are scheduled but fail without rotating.
func (c *App) Run(ctx context.Context, env Env) error {
	h := c.opts
	release, err := holdPIDFile(c.config().StateDir)
	if err != nil {
		return err
	}
	defer release()
	jobs, err := jobs(ctx, c, time.Now())
	if err != nil {
		return err
	}
	c.clock.done("jobs")
	c.vaultDownAtStart.Store(false) // the start is over: from now on every step waits for Vault as usual
	if started := filepath.Join(c.config().StateDir, StartedFile); !fileExists(started) {
		if err := durable.WriteFile(started, []byte(time.Now().UTC().Format(time.RFC3339)+"\n")); err != nil {
			c.log.Warn("could not record the first start", zap.Error(err))
		}
	}
	sched, err := newScheduler(c, jobs)
	if err != nil {
		return err
	}
	// Ready once the scheduler has started and while it runs.
	var ready atomic.Bool
	listener, srv, err := newMetricsServer(c, h, &ready)
	if err != nil {
		return err
	}

	c.metrics.ConfigReloadSuccess.SetToCurrentTime()
	c.clock.done("scheduler")
	c.log.Info("rotatord starting", zap.String("version", h.Version), zap.Int("destinations", len(jobs)),
		zap.String("sink", c.sink.Name()), zap.String("metrics_addr", listener.Addr().String()),
		zap.Duration("start_duration", c.clock.total()), zap.String("start_steps", c.clock.String()))
	if !h.DryRun {
		c.ReplaySpool(ctx)
	}
	notifier := newNotifier(c.log)
	var g run.Group
	addBackground(&g, c, h)
	listed := make(chan struct{})
	if interval := c.staticConfig().Discovery.Interval; c.listsAccount() && interval > 0 {
		actor(&g, "discovery", func(ctx context.Context) error { discoveryLoop(ctx, c, interval, listed); return nil })
	}
	actor(&g, "the scheduler", func(ctx context.Context) error {
		ready.Store(true)
		notifier.ready()
		// Start-up's garbage (the parsed config, thousands of reads) goes back to the
		// system now, not at the runtime's leisure: a fleet's idle RSS is its live heap.
		debug.FreeOSMemory()
		defer ready.Store(false)
		if c.rights.waiting() > 0 {
			end := c.after.begin()
			go func() { defer end(); c.rights.run(ctx, c) }()
		}
		c.startReadLater(ctx, sched)
		return sched.Run(ctx)
	})
	actor(&g, "the metrics server", srv.Wait)
	actor(&g, "the systemd watchdog", func(ctx context.Context) error { notifier.watchdog(ctx, ready.Load); return nil })
	{
		stop := make(chan struct{})
		g.Add(func() error {
			if h.OnReady != nil {
				h.OnReady(listener.Addr().String())
			}
			for {
				select {
				case <-ctx.Done():
					c.log.Info("signal received; shutting down")
					notifier.stopping()
					return nil
				case <-listed:
					if _, _, err := apply(ctx, c, sched, time.Now()); err != nil {
						c.log.Error("discovery: the new set of destinations could not be scheduled; the previous one stays", zap.Error(err))
					}
				case <-env.Reload:
					notifier.reloading()
					// A reload holds the new config, listing and jobs beside the running
					// ones, and makes their garbage: the collector runs as after the start.
					end := c.after.begin()
					summary, err := reload(ctx, c, sched, h.ConfigPath)
					end()
					writeReloadStatus(c, summary, err)
					notifier.ready()
				case <-stop:
					return nil
				}
			}
		}, func(error) { close(stop) })
	}
	err = g.Run()
	c.log.Info("rotatord stopped", zap.Error(err))
	_ = c.log.Sync()
	return err
}

// Start is the start protocol of every daemon command (run, demo), once: /healthz first
// (the start may wait on Vault, up to vault.timeout, and on webhook.co), the assembly, the
// preflight logged and, unless allowDegraded, a refusal naming what to fix (hint says what
// else the user can do); then the daemon until ctx ends.
func Start(ctx context.Context, cfg *config.Config, env Env, opts Options, allowDegraded bool, hint string) error {
	early, err := StartEarly(cfg, env.Stderr)
	if err != nil {
		return err
	}
	defer early.Close() // Run shuts it down gracefully; this ends it when the start fails
	opts.Early = early
	c, err := assemble(ctx, cfg, env, opts)
	if err != nil {
		return err
	}
	// The account's listing (webhook.co) and the preflight of the config's own destinations
	// (whoami, then Vault) at once: at fleet scale each takes seconds, of different servers.
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		began, step := time.Now(), "listing"
		if a := c.ahead.Load(); a != nil {
			// Begun while the config's destinations were parsed: timed from then.
			began, step = a.began, "listing (begun beside the config)"
		}
		c.discoverAtStart(ctx)
		c.clock.span(step, began)
	}()
	began := time.Now()
	found := preflightOf(ctx, c, cfg.Destinations, startRightsSample)
	c.clock.span("preflight", began)
	<-listed
	found.inForce(ctx, c, c.Config().Destinations, cfg.Destinations, startRightsSample)
	c.clock.done("listing and preflight")
	c.rights = newDeferredRights(found.Deferred, found.BlockedAll(c.Config().Destinations))
	found.Log(c.Log())
	if err := found.Refusal(allowDegraded, hint); err != nil {
		return err
	}
	return c.Run(ctx, env)
}

// RotateNow rotates dests now, once each (`rotatord rotate`), up to
// scheduler.max_concurrent at once, and returns their results in the order given. A
// destination the preflight blocked fails without rotating; force passes min_interval and
// the consumers' gate (audited as forced).
func (c *App) RotateNow(ctx context.Context, dests []config.Destination, blocked map[string]error, force bool) []rotate.Result {
	out := make([]rotate.Result, len(dests))
	slots := make(chan struct{}, c.config().Scheduler.MaxConcurrent)
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			dest := Destination(d)
			switch {
			case blocked[d.Name] != nil:
				out[i] = c.rotator.Block(dest, rotate.TriggerManual, rotate.ReasonPreflight, blocked[d.Name])
			case force:
				out[i] = c.rotator.RotateForced(ctx, dest)
			default:
				out[i] = c.rotator.Rotate(ctx, dest, rotate.TriggerManual)
			}
		}()
	}
	wg.Wait()
	return out
}
