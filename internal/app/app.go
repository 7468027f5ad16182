package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/scheduler"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// apiCodes are the HTTP codes whose rotatord_api_requests_total series exist from the start.
var apiCodes = []string{"200", "400", "401", "403", "404", "409", "429", "500", "502", "503", "error"}

// App are the parts every command that rotates needs, wired by hand.
type App struct {
	cfg       *config.Config
	log       *zap.Logger
	reg       *prometheus.Registry
	metrics   *metrics.Metrics
	client    *webhookco.Client
	sink      rotate.Sink
	vaultAuth *vault.Auth // nil for the file sink
	spool     *spool.Spool
	rotator   *rotate.Rotator
	leases    Coordinator // nil with coordination.mode none

	hooks Hooks

	cfgMu sync.RWMutex // guards cfg against a reload
}

// Env is what the daemon may touch of its process.
type Env struct {
	Stderr io.Writer
	Getenv func(string) string
	// Reload delivers SIGHUP; nil where nothing sends it.
	Reload <-chan os.Signal
}

// ForCheck is an App that only checks (`rotatord check --online`): no spool, no rotator.
func ForCheck(cfg *config.Config, client *webhookco.Client, s rotate.Sink, auth *vault.Auth, leases Coordinator) *App {
	return &App{cfg: cfg, client: client, sink: s, vaultAuth: auth, leases: leases}
}

// Log is the App's logger.
func (c *App) Log() *zap.Logger { return c.log }

// Rotator is the App's rotator.
func (c *App) Rotator() *rotate.Rotator { return c.rotator }

// config returns the config in force.
func (c *App) config() *config.Config {
	c.cfgMu.RLock()
	defer c.cfgMu.RUnlock()
	return c.cfg
}

// Hooks let a command adjust the daemon and the demo watch it, without changing them.
type Hooks struct {
	// Version is rotatord's version (rotatord_build_info, the User-Agent).
	Version string
	// Command names the holder of destination locks ("rotatord run").
	Command string
	// LeaseWait bounds a manual rotation's wait for another process's rotation.
	LeaseWait time.Duration
	// DryRun makes the rotator rotate and write nothing.
	DryRun bool
	// ConfigPath is re-read on SIGHUP ("" for the demo's embedded config).
	ConfigPath      string
	OnResult        func(rotate.Result)
	OnWait          func(rotate.Wait)
	MetricsListener net.Listener
	OnReady         func(metricsAddr string)
}

// newLogger builds the zap logger the config asks for, writing to w.
func newLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey, encCfg.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)), nil
}

// newSink builds the configured sink and, for Vault, the login that keeps its token valid
// (nil for the file sink). It does not log in yet.
func NewSink(cfg *config.Config, env Env, log *zap.Logger, m *metrics.Metrics) (rotate.Sink, *vault.Auth, error) {
	if cfg.Sink.Type == config.SinkFile {
		s, err := sink.NewFile(cfg.Sink.Dir)
		return s, nil, err
	}
	// One Vault client, built once: the login keeps its token, and the sink, the leases and
	// the preflight all use it (Auth.Client).
	client, err := vault.NewClient(clientOptions(cfg.Vault), env.Getenv)
	if err != nil {
		return nil, nil, err
	}
	obs := vault.Observer{}
	if m != nil {
		obs.Login = func(result string) { m.VaultLogins.WithLabelValues(result).Inc() }
		obs.Expiry = func(t time.Time) {
			v := 0.0
			if !t.IsZero() {
				v = float64(t.Unix())
			}
			m.VaultTokenExpiry.Set(v)
		}
	}
	auth, err := vault.NewAuth(vault.AuthOptions{Client: client, Config: loginOptions(cfg.Vault.Auth), TokenFile: cfg.Vault.TokenFile, Getenv: env.Getenv, Logger: log, Observer: obs})
	if err != nil {
		return nil, nil, err
	}
	s, err := sink.NewVault(sink.VaultOptions{Client: client, Mount: cfg.Vault.KV.Mount, Version: cfg.Vault.KV.Version, Recover: auth.Recover})
	if err != nil {
		return nil, nil, err
	}
	return s, auth, nil
}

// newMetrics registers rotatord's metrics, with a series for each configured destination.
func newMetrics(cfg *config.Config, reg prometheus.Registerer, version string) *metrics.Metrics {
	names := make([]string, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		names = append(names, d.Name)
	}
	sinkName := "vault"
	if cfg.Sink.Type == config.SinkFile {
		sinkName = "file"
	}
	return metrics.New(metrics.Options{
		Registerer: reg, Version: version, Destinations: names, FailureReasons: rotate.FailureReasons,
		Operations: webhookco.Operations, Codes: apiCodes, Sink: sinkName,
	})
}

// loginAtStart logs in to Vault (auth nil: no Vault), within vault.timeout: a Vault that
// cannot be reached, or accepts connections and never answers, must not hold the start
// (systemd's start timeout would kill rotatord over and over). Only a refusal is an error.
func loginAtStart(ctx context.Context, cfg *config.Config, auth *vault.Auth, log *zap.Logger) error {
	if auth == nil {
		return nil
	}
	loginCtx, cancel := context.WithTimeout(ctx, cfg.Vault.Timeout)
	defer cancel()
	err := auth.Login(loginCtx)
	switch {
	case err == nil:
		return nil
	case !isUnreachable(err):
		return err
	}
	log.Warn("vault unreachable at start; secrets will wait in the spool and the login is retried", zap.Error(err))
	return nil
}

// build wires logger, registry, metrics, API client, sink and rotator from cfg, and logs
// in to Vault. A Vault that cannot be reached is not fatal: secrets wait in the spool and
// the login is retried by the daemon; a Vault that refuses the login is.
func New(ctx context.Context, cfg *config.Config, env Env, h Hooks) (*App, error) {
	log, err := newLogger(cfg.Log, env.Stderr)
	if err != nil {
		return nil, err
	}
	key, err := cfg.API.LoadAPIKey(env.Getenv)
	if err != nil {
		return nil, err
	}
	sp, err := OpenSpool(cfg, spool.Open)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(cfg, reg, h.Version)
	s, auth, err := NewSink(cfg, env, log, m)
	if err != nil {
		return nil, err
	}
	if err := loginAtStart(ctx, cfg, auth, log); err != nil {
		return nil, err
	}
	client, err := webhookco.New(webhookco.Options{
		BaseURL: cfg.API.BaseURL, APIKey: key, Version: h.Version, Timeout: cfg.API.Timeout, Observe: m.ObserveAPIRequest,
	})
	if err != nil {
		return nil, err
	}
	holder := h.Command
	if holder == "" {
		holder = "rotatord"
	}
	leases, err := NewCoordinator(cfg, auth, holder)
	if err != nil {
		return nil, err
	}
	var rl rotate.Lease
	if leases != nil {
		rl = leases
	}
	var c *App
	r := cfg.API.Retry
	rotator, err := rotate.New(rotate.Options{
		// The config in force (a reload may change it); c is set below, before any replay.
		Resolve: func(id string) (rotate.Destination, bool) { return resolve(c.config(), id) },
		API:     client, Sink: s, Spool: sp, Lease: rl, LeaseWait: h.LeaseWait, RequestTimeout: cfg.API.Timeout, Logger: log, Metrics: m, OnResult: h.OnResult, OnWait: h.OnWait,
		RateGate: rotate.NewRateGate(cfg.API.RateLimit, cfg.API.RateBurst, nil), DryRun: h.DryRun,
		Policy: rotate.Policy{
			InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, MaxRetryAfter: r.MaxRetryAfter,
			MaxRateLimitWait: r.MaxRateLimitWait, MaxUnreachableWait: r.MaxUnreachableWait, MaxAmbiguousRetries: r.MaxAmbiguousRetries, MaxSinkWait: r.MaxSinkWait,
		},
	})
	if err != nil {
		return nil, err
	}
	if v, ok := leases.(*lease.Vault); ok {
		log.Info("coordinating with other rotatord processes through Vault leases", zap.String("lease_path", v.Location("<destination-id>")),
			zap.Duration("lease_ttl", cfg.Coordination.LeaseTTL), zap.String("instance_id", v.InstanceID()))
	}
	c = &App{cfg: cfg, log: log, reg: reg, metrics: m, client: client, sink: s, vaultAuth: auth, spool: sp, rotator: rotator, leases: leases, hooks: h}
	return c, nil
}

// Coordinator is a destination lease that can also say who holds it (`rotatord status`).
type Coordinator interface {
	rotate.Lease
	Holder(ctx context.Context, destinationID string) (string, error)
}

var (
	_ Coordinator = (*lease.Local)(nil)
	_ Coordinator = (*lease.Vault)(nil)
)

// clientOptions maps the config's vault section onto the Vault client's own options.
func clientOptions(c config.Vault) vault.ClientOptions {
	return vault.ClientOptions{Address: c.Address, Namespace: c.Namespace, CACert: c.CACert, CAPath: c.CAPath,
		ClientCert: c.ClientCert, ClientKey: c.ClientKey, TLSServerName: c.TLSServerName, TLSSkipVerify: c.TLSSkipVerify, Timeout: c.Timeout}
}

// loginOptions maps vault.auth onto the login's own options.
func loginOptions(a config.VaultAuth) vault.LoginOptions {
	return vault.LoginOptions{Method: a.Method, Mount: a.Mount, RoleID: a.RoleID, RoleIDFile: a.RoleIDFile, SecretIDFile: a.SecretIDFile,
		SecretIDWrapped: a.SecretIDWrapped, Role: a.Role, ServiceAccountTokenFile: a.ServiceAccountTokenFile}
}

// newCoordinator builds the lease that coordination.mode asks for: nil for none, a file
// lock under state_dir for local, a Vault KV v2 lease (on the login's client and token:
// auth is nil without a Vault sink) for vault. holder names this process ("rotatord run").
func NewCoordinator(cfg *config.Config, auth *vault.Auth, holder string) (Coordinator, error) {
	switch cfg.Coordination.Mode {
	case config.CoordinationNone:
		return nil, nil
	case config.CoordinationVault:
		if auth == nil {
			return nil, errors.New("coordination.mode vault needs sink.type vault")
		}
		return lease.NewVault(lease.VaultOptions{
			Client: auth.Client(), Mount: cfg.LeaseMount(), Path: cfg.Coordination.Vault.Path, TTL: cfg.Coordination.LeaseTTL,
			Holder: holder, Recover: auth.Recover,
		})
	default:
		return lease.NewLocal(cfg.StateDir, holder)
	}
}

// openSpool opens the spool under state_dir, sealed when spool.key_file is set; open is
// spool.Open, or spool.OpenReadOnly for a command that changes nothing.
func OpenSpool(cfg *config.Config, open func(string, []byte) (*spool.Spool, error)) (*spool.Spool, error) {
	var key []byte
	if cfg.Spool.KeyFile != "" {
		var err error
		if key, err = spool.ReadKeyFile(cfg.Spool.KeyFile); err != nil {
			return nil, fmt.Errorf("spool.key_file: %w", err)
		}
	}
	sp, err := open(cfg.StateDir, key)
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", cfg.StateDir, err)
	}
	return sp, nil
}

// DrainSpool stores what an earlier run left in the spool, before anything rotates.
func (c *App) DrainSpool(ctx context.Context) {
	n, err := c.rotator.Replay(ctx)
	switch {
	case err != nil:
		c.log.Error("spooled secrets could not all be stored at start; retrying in the background", zap.Int("spooled", n), zap.Error(err))
	case n == 0:
		c.log.Debug("spool empty")
	}
}

// resolve finds the destination of id in cfg (ids compare without case).
func resolve(cfg *config.Config, id string) (rotate.Destination, bool) {
	for _, d := range cfg.Destinations {
		if strings.EqualFold(d.ID, id) {
			return Destination(d), true
		}
	}
	return rotate.Destination{}, false
}

// destination converts a configured destination to the rotator's view.
func Destination(d config.Destination) rotate.Destination {
	return rotate.Destination{ID: d.ID, Name: d.Name, Path: d.VaultPath}
}

// reload re-reads the config file (SIGHUP). An invalid file is rejected, logged, and the
// config in force kept. A valid one replaces the destinations and defaults at once:
// added, removed and changed destinations take effect without a restart, and rotations in
// flight go on. Changes to other sections need a restart and are reported as such.
func reload(ctx context.Context, c *App, sched *scheduler.Scheduler, path string, blocked map[string]error) {
	c.log.Info("SIGHUP received; reloading the config", zap.String("config", path))
	fail := func(err error) {
		c.metrics.ConfigReloads.WithLabelValues(metrics.ResultFailure).Inc()
		c.log.Error("config reload rejected; the config in force is kept", zap.String("config", path), zap.Error(err))
	}
	if path == "" {
		fail(errors.New("this command has no config file to reload"))
		return
	}
	next, err := config.Load(path)
	if err != nil {
		fail(err)
		return
	}
	old := c.config()
	merged := *old
	merged.Destinations, merged.Defaults = next.Destinations, next.Defaults
	if restart := needsRestart(old, next); len(restart) > 0 {
		c.log.Warn("config reload: these sections changed and need a restart; the rest is applied", zap.Strings("sections", restart))
	}
	c.cfgMu.Lock()
	c.cfg = &merged
	c.cfgMu.Unlock()
	for _, d := range merged.Destinations {
		c.metrics.AddDestination(d.Name, rotate.FailureReasons)
	}
	jobs, err := jobs(ctx, c, blocked, time.Now())
	if err == nil {
		err = sched.Update(ctx, jobs)
	}
	if err != nil {
		c.cfgMu.Lock()
		c.cfg = old
		c.cfgMu.Unlock()
		fail(err)
		return
	}
	// Destinations no longer scheduled have no next rotation (else they look stuck).
	scheduled := map[string]bool{}
	for _, j := range jobs {
		scheduled[j.Name] = true
	}
	for _, d := range old.Destinations {
		if !scheduled[d.Name] {
			c.metrics.NextRotation.WithLabelValues(d.Name).Set(0)
		}
	}
	c.metrics.ConfigReloads.WithLabelValues(metrics.ResultSuccess).Inc()
	c.metrics.ConfigReloadSuccess.SetToCurrentTime()
	c.log.Info("config reloaded", zap.String("config", path), zap.Int("destinations", len(merged.Destinations)), zap.Int("scheduled", len(jobs)))
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
		checkCtx, cancel := context.WithTimeout(ctx, c.config().API.Timeout)
		_, result, err := checkKey(checkCtx, c.client)
		cancel()
		observeKeyCheck(c.metrics, result)
		switch {
		case result == last:
		case result == metrics.KeyOK:
			c.log.Info("webhook.co API key works again", zap.String("result", result))
		default:
			c.log.Error("webhook.co API key check failed", zap.String("result", result), zap.Error(err))
		}
		last = result
	}
}

// maxLeaseRetries bounds the extra fires of one slot that wait for another replica's lease.
const maxLeaseRetries = 3

// jobs builds the scheduler's jobs: enabled destinations on their spread schedules, a
// catch-up fire for those that missed a scheduled time (policy missed: run_once), a first
// rotation inside the window for those with nothing stored (first_rotation: at_start), and
// blocked destinations (refused by the preflight) failing without rotating. It reads each
// destination's stored rotated_at once, for these decisions and the freshness metrics.
func jobs(ctx context.Context, c *App, blocked map[string]error, now time.Time) ([]scheduler.Job, error) {
	cfg := c.config()
	out := make([]scheduler.Job, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		sched, err := d.SpreadSchedule()
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		c.metrics.Freshness.SetMaxAge(d.Name, d.EffectiveMaxAge(now))
		stored, err := c.sink.Get(ctx, d.VaultPath)
		neverRotated := errors.Is(err, sink.ErrNotFound)
		switch {
		case err == nil:
			c.metrics.Freshness.SetRotated(d.Name, stored.RotatedAt)
		case neverRotated:
			// Nothing stored is overdue at once: receivers have no secret from rotatord.
			c.metrics.Freshness.SetNeverRotated(d.Name)
		}
		if !d.IsEnabled() {
			c.log.Info("destination paused (enabled: false); not scheduled", zap.String("destination", d.Name))
			c.metrics.NextRotation.WithLabelValues(d.Name).Set(0)
			continue
		}
		job := scheduler.Job{Name: d.Name, Schedule: sched}
		switch {
		case neverRotated && d.FirstRotation == config.FirstRotationAtStart:
			// Rotated now, at the destination's stable offset inside its window.
			job.FirstAt = now.Add(scheduler.Offset(strings.ToLower(d.ID), d.Window))
			c.log.Info("destination never rotated; first rotation at start, inside its window", zap.String("destination", d.Name), zap.Time("first_at", job.FirstAt))
		case neverRotated:
			c.log.Warn("destination never rotated; first rotation at its next scheduled time (first_rotation: on_schedule)", zap.String("destination", d.Name))
		case err == nil:
			// The sink is the state: a slot between the stored rotation and now was missed.
			if slot, missed := scheduler.Missed(sched, stored.RotatedAt, now); missed {
				if d.Missed == config.MissedRunOnce {
					job.FirstAt = now.Add(scheduler.Offset(strings.ToLower(d.ID), d.Window))
					// The unjittered slot: every replica that finds the same stored rotation
					// finds the same missed slot, whatever its jitter.
					job.FirstSlot = slot
				}
				c.log.Warn("scheduled rotation missed while rotatord was down", zap.String("destination", d.Name),
					zap.Time("missed_slot", slot), zap.Time("last_rotated", stored.RotatedAt), zap.String("missed", d.Missed), zap.Time("catch_up_at", job.FirstAt))
			}
		}
		job.Run = runFunc(c, Destination(d), neverRotated, blocked[d.Name])
		out = append(out, job)
	}
	return out, nil
}

// runFunc is what a destination's fire does: a blocked destination (refused by the
// preflight) fails without rotating; the first fire of one never rotated rotates unless a
// replica stored a secret meanwhile; the others rotate for their slot.
func runFunc(c *App, dest rotate.Destination, neverRotated bool, blocked error) func(context.Context, scheduler.Fire) {
	if blocked != nil {
		return func(context.Context, scheduler.Fire) {
			c.rotator.Block(dest, rotate.TriggerSchedule, rotate.ReasonPreflight, fmt.Errorf("not rotated: %w", blocked))
		}
	}
	return func(ctx context.Context, f scheduler.Fire) {
		var res rotate.Result
		switch {
		case f.CatchUp && neverRotated:
			res = c.rotator.RotateFirst(ctx, dest)
		case f.CatchUp:
			res = c.rotator.RotateSlot(ctx, dest, rotate.TriggerCatchUp, f.Slot)
		default:
			res = c.rotator.RotateSlot(ctx, dest, rotate.TriggerSchedule, f.Slot)
		}
		// Another replica holds the lease. If it dies mid-rotation, its lease expires
		// and this slot is still to do: look again then (the slot check skips it
		// if the holder finished), at most a few times per slot.
		if !res.RetryAt.IsZero() && f.Retry < maxLeaseRetries && f.Defer != nil {
			f.Defer(res.RetryAt)
		}
	}
}

// newScheduler builds the scheduler of jobs, reporting next fire times and skips as metrics.
func newScheduler(c *App, jobs []scheduler.Job) (*scheduler.Scheduler, error) {
	return scheduler.New(scheduler.Options{
		Jobs: jobs, MaxConcurrent: c.cfg.Scheduler.MaxConcurrent, ShutdownTimeout: c.cfg.Scheduler.ShutdownTimeout, Logger: c.log,
		OnNext: func(name string, next time.Time) {
			v := 0.0
			if !next.IsZero() {
				v = float64(next.Unix())
			}
			c.metrics.NextRotation.WithLabelValues(name).Set(v)
		},
		OnSkip: func(name string) { c.metrics.SkippedRotations.WithLabelValues(name).Inc() },
	})
}

// newMetricsServer listens on metrics.listen (or the hook's listener) and serves /metrics,
// /healthz and /readyz: ready while the scheduler runs and the spool drains.
func newMetricsServer(c *App, h Hooks, ready *atomic.Bool) (net.Listener, *metrics.Server, error) {
	listener := h.MetricsListener
	if listener == nil {
		var err error
		if listener, err = net.Listen("tcp", c.cfg.Metrics.Listen); err != nil {
			return nil, nil, fmt.Errorf("metrics.listen %s: %w", c.cfg.Metrics.Listen, err)
		}
	}
	srv, err := metrics.NewServer(metrics.ServerOptions{
		Listener: listener, Gatherer: c.reg, Logger: c.log.Named("metrics"),
		Ready: func() error {
			if !ready.Load() {
				return errors.New("scheduler not running")
			}
			return c.rotator.SpoolHealth()
		},
	})
	return listener, srv, err
}

// addBackground adds the daemon's background loops to g: drift checks, API key checks, the
// Vault token upkeep and the spool replayer, each stopped when the group ends.
func addBackground(g *run.Group, c *App, h Hooks) {
	loop := func(f func(ctx context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return f(ctx) }, func(error) { cancel() })
	}
	if interval := c.config().Scheduler.DriftCheckInterval; interval > 0 {
		loop(func(ctx context.Context) error { driftLoop(ctx, c, interval); return nil })
	}
	if interval := c.config().API.KeyCheckInterval; interval > 0 {
		loop(func(ctx context.Context) error { keyCheckLoop(ctx, c, interval); return nil })
	}
	if c.vaultAuth != nil {
		loop(c.vaultAuth.Run)
	}
	if !h.DryRun {
		loop(c.rotator.RunReplayer)
	}
}

// Run runs the scheduler, the spool replayer, the Vault token keeper and the metrics
// listener until ctx is done. blocked destinations (refused by the preflight, started with
// --allow-degraded) are scheduled but fail without rotating.
func (c *App) Run(ctx context.Context, env Env, blocked map[string]error) error {
	h := c.hooks
	jobs, err := jobs(ctx, c, blocked, time.Now())
	if err != nil {
		return err
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
	c.log.Info("rotatord starting", zap.String("version", h.Version), zap.Int("destinations", len(jobs)),
		zap.String("sink", c.sink.Name()), zap.String("metrics_addr", listener.Addr().String()))
	if !h.DryRun {
		c.DrainSpool(ctx)
	}
	notifier := newNotifier(c.log)
	var g run.Group
	addBackground(&g, c, h)
	{
		schedCtx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			ready.Store(true)
			notifier.ready()
			defer ready.Store(false)
			return sched.Run(schedCtx)
		}, func(error) { cancel() })
	}
	{
		srvCtx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return srv.Run(srvCtx) }, func(error) { cancel() })
	}
	{
		watchdogCtx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { notifier.watchdog(watchdogCtx, ready.Load); return nil }, func(error) { cancel() })
	}
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
				case <-env.Reload:
					reload(ctx, c, sched, h.ConfigPath, blocked)
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

// OpenSink builds the configured sink for a command that only reads it (status, plan):
// logged in within vault.timeout, and refused when the mount is not the configured KV version.
func OpenSink(ctx context.Context, cfg *config.Config, env Env) (rotate.Sink, *vault.Auth, error) {
	s, auth, err := NewSink(cfg, env, zap.NewNop(), nil)
	if err != nil {
		return nil, nil, err
	}
	if auth != nil {
		loginCtx, cancel := context.WithTimeout(ctx, cfg.Vault.Timeout)
		defer cancel()
		if err := auth.Login(loginCtx); err != nil {
			return nil, nil, err
		}
	}
	if v, ok := s.(*sink.Vault); ok {
		if _, err := v.CheckMount(ctx); err != nil {
			return nil, nil, err
		}
	}
	return s, auth, nil
}
