package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/scheduler"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// apiCodes are the HTTP codes whose rotatord_api_requests_total series exist from the start.
var apiCodes = []string{"200", "400", "401", "403", "404", "409", "429", "500", "502", "503", "error"}

// components are the parts every command that rotates needs, wired by hand.
type components struct {
	cfg     *config.Config
	log     *zap.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	client  *webhookco.Client
	sink    rotate.Sink
	spool   *spool.Spool
	rotator *rotate.Rotator
}

// hooks let the demo watch a daemon without changing it.
type hooks struct {
	onResult        func(rotate.Result)
	metricsListener net.Listener
	onReady         func(metricsAddr string)
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

// newSink builds the configured sink.
func newSink(cfg *config.Config, getenv func(string) string) (rotate.Sink, error) {
	if cfg.Sink.Type == config.SinkFile {
		return sink.NewFile(cfg.Sink.Dir)
	}
	client, err := sink.NewVaultClient(cfg.Vault, getenv)
	if err != nil {
		return nil, err
	}
	return sink.NewVault(sink.VaultOptions{Client: client, Mount: cfg.Vault.KV.Mount, Version: cfg.Vault.KV.Version})
}

// build wires logger, registry, metrics, API client, sink and rotator from cfg.
func build(cfg *config.Config, env Env, h hooks) (*components, error) {
	log, err := newLogger(cfg.Log, env.Stderr)
	if err != nil {
		return nil, err
	}
	key, err := cfg.API.LoadAPIKey(env.Getenv)
	if err != nil {
		return nil, err
	}
	s, err := newSink(cfg, env.Getenv)
	if err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	names := make([]string, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		names = append(names, d.Name)
	}
	m := metrics.New(metrics.Options{
		Registerer: reg, Version: version, Destinations: names, FailureReasons: rotate.FailureReasons,
		Operations: webhookco.Operations, Codes: apiCodes, Sink: s.Name(),
	})
	client, err := webhookco.New(webhookco.Options{
		BaseURL: cfg.API.BaseURL, APIKey: key, Version: version, Timeout: cfg.API.Timeout, Observe: m.ObserveAPIRequest,
	})
	if err != nil {
		return nil, err
	}
	r := cfg.API.Retry
	rotator, err := rotate.New(rotate.Options{
		API: client, Sink: s, Spool: sp, Logger: log, Metrics: m, OnResult: h.onResult,
		Policy: rotate.Policy{
			InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, MaxRetryAfter: r.MaxRetryAfter,
			MaxRateLimitWait: r.MaxRateLimitWait, MaxAmbiguousRetries: r.MaxAmbiguousRetries, MaxSinkWait: r.MaxSinkWait,
		},
	})
	if err != nil {
		return nil, err
	}
	return &components{cfg: cfg, log: log, reg: reg, metrics: m, client: client, sink: s, spool: sp, rotator: rotator}, nil
}

// openSpool opens the spool under state_dir, sealed when spool.key_file is set.
func openSpool(cfg *config.Config) (*spool.Spool, error) {
	var key []byte
	if cfg.Spool.KeyFile != "" {
		var err error
		if key, err = spool.ReadKeyFile(cfg.Spool.KeyFile); err != nil {
			return nil, fmt.Errorf("spool.key_file: %w", err)
		}
	}
	sp, err := spool.Open(cfg.StateDir, key)
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", cfg.StateDir, err)
	}
	return sp, nil
}

// drainSpool stores what an earlier run left in the spool, before anything rotates.
func drainSpool(ctx context.Context, c *components) {
	n, err := c.rotator.Replay(ctx)
	switch {
	case err != nil:
		c.log.Error("spooled secrets could not all be stored at start; retrying in the background", zap.Int("spooled", n), zap.Error(err))
	case n == 0:
		c.log.Debug("spool empty")
	}
}

// destination converts a configured destination to the rotator's view.
func destination(d config.Destination) rotate.Destination {
	return rotate.Destination{ID: d.ID, Name: d.Name, Path: d.VaultPath}
}

// daemon runs the scheduler, the spool replayer and the metrics listener until ctx is done.
func daemon(ctx context.Context, c *components, env Env, h hooks) error {
	jobs := make([]scheduler.Job, 0, len(c.cfg.Destinations))
	for _, d := range c.cfg.Destinations {
		sched, err := d.ParsedSchedule()
		if err != nil {
			return fmt.Errorf("destination %s: %w", d.Name, err)
		}
		dest := destination(d)
		jobs = append(jobs, scheduler.Job{Name: d.Name, Schedule: sched, Run: func(ctx context.Context) {
			c.rotator.Rotate(ctx, dest, rotate.TriggerSchedule)
		}})
	}
	sched, err := scheduler.New(scheduler.Options{
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
	if err != nil {
		return err
	}

	// Ready once the scheduler has started and while it runs.
	var ready atomic.Bool
	listener := h.metricsListener
	if listener == nil {
		if listener, err = net.Listen("tcp", c.cfg.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen %s: %w", c.cfg.Metrics.Listen, err)
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
	if err != nil {
		return err
	}

	c.log.Info("rotatord starting", zap.String("version", version), zap.Int("destinations", len(jobs)),
		zap.String("sink", c.sink.Name()), zap.String("metrics_addr", listener.Addr().String()))
	drainSpool(ctx, c)
	notifier := newNotifier(c.log)
	var g run.Group
	{
		replayCtx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return c.rotator.RunReplayer(replayCtx) }, func(error) { cancel() })
	}
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
			if h.onReady != nil {
				h.onReady(listener.Addr().String())
			}
			for {
				select {
				case <-ctx.Done():
					c.log.Info("signal received; shutting down")
					notifier.stopping()
					return nil
				case <-env.Reload:
					c.log.Warn("SIGHUP received: reloading the config is not supported yet; restart rotatord to apply a changed config")
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
