// Package app assembles rotatord from its config, the way Prometheus alertmanager's app/
// does: it is, with internal/cli and internal/account, a reader of internal/config, and the
// only package that names the concrete backends (backends.go). It builds every part by hand
// (logger, registry, API client, Vault login, sink, spool, lease, rotator, receivers), runs
// the preflight every command runs before it can mint, starts the daemon once (Start) and
// runs it: the scheduler's jobs (catch-up, first rotation, lease deferral), SIGHUP reloads,
// discovery, drift and API key checks, the Vault token upkeep, the spool replayer and the
// metrics listener, in one run group; and rotates now for `rotatord rotate` (RotateNow).
package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/backoff"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/receivers"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// apiCodes are the HTTP codes whose rotatord_api_requests_total series exist from the start:
// every value the client gives the label.
var apiCodes = webhookco.StatusLabels

// App are the parts every command that rotates needs, wired by hand.
type App struct {
	clock     *startClock
	rights    *deferredRights // the preflight's verdicts (Start); from New, none: every destination may rotate
	after     afterStart
	cfg       *config.Config
	log       *zap.Logger
	reg       *prometheus.Registry
	metrics   *metrics.Metrics
	client    *webhookco.Client
	sink      rotate.Sink
	vaultAuth *vault.Auth // nil for the file sink
	spool     *spool.Spool
	rotator   *rotate.Rotator
	leases    Leases // nil with coordination.mode none
	receivers *receivers.Manager

	opts Options
	// file is what reloads know of the config file (reload: only the daemon's loop reads
	// and writes it).
	file loadedFile
	// vaultDownAtStart: the login at start found Vault unreachable; the start's other
	// Vault steps fail at once (startCtx) until the daemon runs.
	vaultDownAtStart atomic.Bool
	// countOnce logs once that the key may not list the account.
	countOnce sync.Once
	// ahead is the listing begun before the config was whole, until the start's listing
	// takes it (Options.Ahead).
	ahead atomic.Pointer[AheadListing]
	disc  discovery

	cfgMu sync.RWMutex // guards cfg against a reload
	// index finds destinations of the config in force by id.
	index atomic.Pointer[destIndex]
	// readLater are the destinations whose stored records the start left to read after the
	// scheduler started (under disc.mu; see inlineStartReads).
	readLater []config.Destination
	// stopReading stops the reader of an earlier start or reload that has not finished
	// (under disc.mu): a new set of jobs has its own.
	stopReading context.CancelFunc
}

// Env is what the daemon may touch of its process.
type Env struct {
	Stderr io.Writer
	Getenv func(string) string
	// Reload delivers SIGHUP; nil where nothing sends it.
	Reload <-chan os.Signal
}

// ForCheck is an App that only checks (`rotatord check --online`): no spool, no rotator.
func ForCheck(cfg *config.Config, client *webhookco.Client, s rotate.Sink, auth *vault.Auth, leases Leases) *App {
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

// Options are what a command sets of the daemon it starts (run, rotate, demo): its version and
// holder name, lease wait, dry run, and the callbacks the demo and rotate watch it with.
type Options struct {
	// Version is rotatord's version (rotatord_build_info, the User-Agent).
	Version string
	// Command names the holder of destination locks ("rotatord run").
	Command string
	// LeaseWait bounds a manual rotation's wait for another process's rotation.
	LeaseWait time.Duration
	// DryRun makes the rotator rotate and write nothing.
	DryRun bool
	// ConfigPath is re-read on SIGHUP ("" for the demo's embedded config); ConfigDigest is
	// the digest of the bytes the config in force was read from (config.LoadFile), so that
	// a SIGHUP with the file unchanged parses nothing.
	ConfigPath      string
	ConfigDigest    config.Digest
	OnResult        func(rotate.Result)
	OnWait          func(rotate.Wait)
	MetricsListener net.Listener
	// Early, when set, is the metrics server the command started first (StartEarly); Run
	// adopts it instead of listening itself.
	Early   *EarlyServer
	OnReady func(metricsAddr string)
	// CountAccount makes the daemon list the account even without discovery rules (when
	// its key may), so what it does not cover is counted, and a configured destination
	// the provider lacks is missing_at_provider, not rotated into a 404 every slot.
	CountAccount bool
	// Began is when the command began (before it read the config), for the start's
	// timings; zero: when New was called.
	Began time.Time
	// Ahead is the account's listing the command began while it parsed the config
	// (ListAhead): the start's listing takes its answer if it was begun for this config's
	// api section and key, and cancels it otherwise.
	Ahead *AheadListing
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
		Operations: webhookco.Operations, Codes: apiCodes, Sink: sinkName, CoverageStates: account.States,
		ProblemsOnly: cfg.Metrics.DestinationSeries == config.SeriesProblems,
	})
}

// loginAtStart logs in to Vault (auth nil: no Vault), within vault.timeout: a Vault that
// cannot be reached, or accepts connections and never answers, must not hold the start
// (systemd's start timeout would kill rotatord over and over). Only a refusal is an error.
// It reports unreachable when Vault did not answer.
func loginAtStart(ctx context.Context, cfg *config.Config, auth *vault.Auth, log *zap.Logger) (unreachable bool, err error) {
	if auth == nil {
		return false, nil
	}
	err = auth.Login(ctx) // bounded by vault.timeout
	switch {
	case err == nil:
		return false, nil
	case !vault.IsUnreachable(err):
		return false, err
	}
	log.Warn("vault unreachable at start; secrets will wait in the spool and the login is retried", zap.Error(err))
	return true, nil
}

// startCtx bounds a start-up step that asks Vault. When the login at start found Vault
// unreachable (it waited vault.timeout for that), the step fails at once instead of waiting
// the whole timeout again: the degraded start takes one vault.timeout, not one per step.
func (c *App) startCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.vaultDownAtStart.Load() {
		return context.WithDeadline(ctx, time.Now())
	}
	return context.WithCancel(ctx)
}

// New wires logger, registry, metrics, API client, sink and rotator from cfg, logs in to
// Vault and lists the account (when the config asks for it). A Vault that cannot be
// reached is not fatal: secrets wait in the spool and the login is retried by the daemon;
// a Vault that refuses the login is.
func New(ctx context.Context, cfg *config.Config, env Env, h Options) (*App, error) {
	c, err := assemble(ctx, cfg, env, h)
	if err != nil {
		return nil, err
	}
	c.discoverAtStart(ctx)
	return c, nil
}

// assemble is New without the account's listing (the daemon's start lists it while the
// preflight asks Vault).
func assemble(ctx context.Context, cfg *config.Config, env Env, h Options) (*App, error) {
	clock := newStartClock(h.Began)
	clock.done("config")
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
	if cfg.Spool.Flush == config.FlushGroup {
		if err := sp.UseGroupCommit(); err != nil {
			log.Warn("each write-ahead record write is flushed alone (spool.flush: each)", zap.Error(err))
		}
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(cfg, reg, h.Version)
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rotatord_spool_durable_writes_total",
			Help: "Write-ahead record writes that waited until they were on disk (a rotate intent, a received secret)."},
			func() float64 { w, _ := sp.Flushes(); return float64(w) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rotatord_spool_flushes_total",
			Help: "Flushes that made those writes durable: with group commit (spool.flush: group) one serves every write waiting at that moment."},
			func() float64 { _, f := sp.Flushes(); return float64(f) }),
	)
	s, auth, err := NewSink(cfg, env, log, m)
	if err != nil {
		return nil, err
	}
	vaultDown, err := loginAtStart(ctx, cfg, auth, log)
	if err != nil {
		return nil, err
	}
	client, err := APIClient(cfg, key, h.Version, m.ObserveAPIRequest)
	if err != nil {
		return nil, err
	}
	holder := h.Command
	if holder == "" {
		holder = "rotatord"
	}
	leases, err := NewLeases(cfg, auth, holder)
	if err != nil {
		return nil, err
	}
	var rl rotate.Lease
	if leases != nil {
		rl = leases
	}
	var c *App
	r := cfg.API.Retry
	// The consumers of the stored secrets: told after each store, asked before each mint.
	acks := AcksOf(s)
	var deliveries func(ctx context.Context, id string) ([]webhookco.Delivery, rotate.Outcome)
	if cfg.API.DeliveryWatchInterval > 0 {
		deliveries = func(ctx context.Context, id string) (items []webhookco.Delivery, o rotate.Outcome) {
			o = c.paced(ctx, func(ctx context.Context) (err error) { items, err = client.ListDeliveries(ctx, id, 50); return err })
			return items, o
		}
	}
	recv := receivers.New(receivers.Options{Logger: log, Metrics: m, Sink: s, Acks: acks, Deliveries: deliveries, WatchEvery: cfg.API.DeliveryWatchInterval, ReadKeyFile: secret.ReadPrivateFile, StateDir: cfg.StateDir,
		Lookup: func(id string) (config.Destination, bool) { return c.lookup(id) },
		Retry:  backoff.Policy{Initial: r.InitialBackoff, Max: r.MaxBackoff}})
	rotator, err := rotate.New(rotate.Options{
		OnStored: recv.Stored, Gate: recv.Gate,
		// The config in force (a reload may change it); c is set below, before any replay.
		Resolve: func(id string) (rotate.Destination, bool) { d, ok := c.lookup(id); return Destination(d), ok },
		API:     client, Sink: s, Spool: sp, Lease: rl, LeaseWait: h.LeaseWait, RequestTimeout: cfg.API.Timeout, Logger: log, Metrics: m, OnResult: h.OnResult, OnWait: h.OnWait,
		RateGate: rotate.NewRateGate(cfg.API.RateLimit, cfg.API.RateBurst, nil), DryRun: h.DryRun,
		Policy: rotate.Policy{
			InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, MaxRetryAfter: r.MaxRetryAfter,
			MaxRateLimitWait: r.MaxRateLimitWait, MaxUnreachableWait: r.MaxUnreachableWait, MaxAmbiguousRetries: r.MaxAmbiguousRetries, MaxSinkWait: r.MaxSinkWait, SettlePeriod: r.SettlePeriod,
		},
	})
	if err != nil {
		return nil, err
	}
	if v, ok := leases.(interface {
		Shared() bool
		Location(string) string
		InstanceID() string
	}); ok && v.Shared() {
		log.Info("coordinating with other rotatord processes through shared leases", zap.String("lease_path", v.Location("<destination-id>")),
			zap.Duration("lease_ttl", cfg.Coordination.LeaseTTL), zap.String("instance_id", v.InstanceID()))
	}
	clock.done("assembly")
	c = &App{clock: clock, rights: newDeferredRights(nil, nil), cfg: cfg, log: log, reg: reg, metrics: m, client: client, sink: s, vaultAuth: auth, spool: sp, rotator: rotator, leases: leases, receivers: recv, opts: h, file: loadedFile{digest: h.ConfigDigest}}
	c.vaultDownAtStart.Store(vaultDown)
	c.disc.static = cfg
	if a := h.Ahead; a != nil {
		if a.begunFor(cfg.API, key) {
			c.ahead.Store(a) // the start's listing takes it (listAccount)
		} else {
			a.Cancel()
		}
	}
	return c, nil
}

// paced makes one call to webhook.co through the API key's rate budget, the rotations' own
// (Rotator.Paced); ForCheck has no rotator, and `check --online` paces its own calls.
func (c *App) paced(ctx context.Context, call func(context.Context) error) rotate.Outcome {
	if c.rotator == nil {
		return rotate.Classify(call(ctx))
	}
	return c.rotator.Paced(ctx, call)
}

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

// ReplaySpool stores what an earlier run left in the spool, before anything rotates.
func (c *App) ReplaySpool(ctx context.Context) {
	n, err := c.rotator.Replay(ctx)
	switch {
	case err != nil:
		c.log.Error("spooled secrets could not all be stored at start; retrying in the background", zap.Int("spooled", n), zap.Error(err))
	case n == 0:
		c.log.Debug("spool empty")
	}
}

// lookup finds the destination of id in the config in force (ids compare without case),
// through an index built once per config.
func (c *App) lookup(id string) (config.Destination, bool) {
	cfg := c.config()
	ix := c.index.Load()
	if ix == nil || ix.cfg != cfg {
		// The config in force changed (a start, a reload, a discovery): index it once.
		ix = &destIndex{cfg: cfg, byID: make(map[string]int, len(cfg.Destinations))}
		for i, d := range cfg.Destinations {
			ix.byID[strings.ToLower(d.ID)] = i
		}
		c.index.Store(ix)
	}
	i, ok := ix.byID[strings.ToLower(id)]
	if !ok {
		return config.Destination{}, false
	}
	return cfg.Destinations[i], true
}

// destIndex finds a destination of one config in force by id (lookup, per store and gate).
type destIndex struct {
	cfg  *config.Config
	byID map[string]int
}

// Receivers are the consumers' notifications and the rotation gate.
func (c *App) Receivers() *receivers.Manager { return c.receivers }

// destination converts a configured destination to the rotator's view.
func Destination(d config.Destination) rotate.Destination {
	out := rotate.Destination{ID: d.ID, Name: d.Name, Path: d.VaultPath, MinInterval: d.MinInterval}
	for _, o := range d.Outputs {
		out.Outputs = append(out.Outputs, o.File)
	}
	return out
}

// AcksOf reads the consumers' acknowledgements beside the secrets s stores (adoption.ack);
// nil when s keeps none.
func AcksOf(s rotate.Sink) receivers.Acks {
	if a, ok := s.(interface {
		ReadAck(ctx context.Context, path, consumer string) ([]string, error)
	}); ok {
		return a.ReadAck
	}
	return nil
}

// APIClient is the webhook.co client cfg describes, with key; observe may be nil.
func APIClient(cfg *config.Config, key secret.Value, version string, observe func(op, code string)) (*webhookco.Client, error) {
	return apiClient(cfg.API, maxConns(cfg), key, version, observe)
}

// apiClient is the webhook.co client of an api section, keeping conns connections for
// reuse (0: Go's default).
func apiClient(api config.API, conns int, key secret.Value, version string, observe func(op, code string)) (*webhookco.Client, error) {
	return webhookco.New(webhookco.Options{
		BaseURL: api.BaseURL, APIKey: key, Version: version, Timeout: api.Timeout, CACert: api.CACert, Observe: observe,
		MaxConns: conns,
	})
}

// maxConns is how many requests rotatord may have in flight to one server: the
// scheduler's rotations and its background loops (replayer, discovery, drift, key check).
func maxConns(cfg *config.Config) int { return cfg.Scheduler.MaxConcurrent + 4 }
