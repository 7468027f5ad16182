package app

// The wiring of the backends: the one file that names the concrete sinks and leases. Every
// other file uses them through the contracts (rotate.Sink, rotate.Lease, Leases) and the
// capabilities they declare (preflight.Checker; a sink that lists a folder; one with KV
// metadata). A new sink is its package under internal/sink/, one case in NewSink, and one
// case in internal/sink/contract_test.go.

import (
	"context"
	"errors"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/lease/local"
	"github.com/rotatord/rotatord/internal/lease/vaultlease"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink/file"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"
	"github.com/rotatord/rotatord/internal/vault"
	"go.uber.org/zap"
)

// NewSink builds the configured sink and, for Vault, the login that keeps its token valid
// (nil for the file sink). It does not log in yet.
func NewSink(cfg *config.Config, env Env, log *zap.Logger, m *metrics.Metrics) (rotate.Sink, *vault.Auth, error) {
	if cfg.Sink.Type == config.SinkFile {
		s, err := file.New(cfg.Sink.Dir)
		return s, nil, err
	}
	// One Vault client, built once: the login keeps its token, and the sink, the leases and
	// the preflight all use it (Auth.Client).
	opts := clientOptions(cfg.Vault)
	opts.MaxConns = maxConns(cfg)
	client, err := vault.NewClient(opts, env.Getenv)
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
	auth, err := vault.NewAuth(vault.AuthOptions{Client: client, Config: loginOptions(cfg.Vault.Auth), TokenFile: cfg.Vault.TokenFile, Getenv: env.Getenv, Logger: log, Observer: obs, Timeout: cfg.Vault.Timeout})
	if err != nil {
		return nil, nil, err
	}
	s, err := vaultkv.New(vaultkv.Options{Client: client, Mount: cfg.Vault.KV.Mount, Version: cfg.Vault.KV.Version, Recover: auth.Recover})
	if err != nil {
		return nil, nil, err
	}
	return s, auth, nil
}

// OpenSink builds the configured sink for a command that only reads it (status, plan):
// logged in within vault.timeout, and refused when the mount is not the configured KV version.
func OpenSink(ctx context.Context, cfg *config.Config, env Env) (rotate.Sink, *vault.Auth, error) {
	s, auth, err := NewSink(cfg, env, zap.NewNop(), nil)
	if err != nil {
		return nil, nil, err
	}
	if auth != nil {
		if err := auth.Login(ctx); err != nil { // bounded by vault.timeout
			return nil, nil, err
		}
	}
	// The backend's own check (a KV mount of the configured version), without its rights.
	if ch, ok := s.(preflight.Checker); ok {
		r := ch.Preflight(ctx, nil)
		if err := errors.Join(append(r.Fatal, r.Unchecked...)...); err != nil {
			return nil, nil, err
		}
	}
	return s, auth, nil
}

// Leases is a destination lease that can also say who holds it (`rotatord status`).
type Leases interface {
	rotate.Lease
	Holder(ctx context.Context, destinationID string) (string, error)
}

var (
	_ Leases = (*local.Lease)(nil)
	_ Leases = (*vaultlease.Lease)(nil)
)

// NewLeases builds the lease that coordination.mode asks for: nil for none, a file
// lock under state_dir for local, a Vault KV v2 lease (on the login's client and token:
// auth is nil without a Vault sink) for vault. holder names this process ("rotatord run").
func NewLeases(cfg *config.Config, auth *vault.Auth, holder string) (Leases, error) {
	switch cfg.Coordination.Mode {
	case config.CoordinationNone:
		return nil, nil
	case config.CoordinationVault:
		if auth == nil {
			return nil, errors.New("coordination.mode vault needs sink.type vault")
		}
		return vaultlease.New(vaultlease.Options{
			Client: auth.Client(), Mount: cfg.LeaseMount(), Path: cfg.Coordination.Vault.Path, TTL: cfg.Coordination.LeaseTTL,
			Holder: holder, Recover: auth.Recover,
		})
	default:
		return local.New(cfg.StateDir, holder)
	}
}
