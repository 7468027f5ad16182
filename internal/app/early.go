package app

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
)

// EarlyServer is the metrics listener started before anything waits on Vault or webhook.co:
// /healthz answers at once (the process is alive), /readyz says "starting", and /metrics
// serves the daemon's registry from the moment Run adopts it (Options.Early).
type EarlyServer struct {
	srv      *metrics.Server
	listener net.Listener
	gatherer metrics.LateGatherer
	ready    atomic.Pointer[func() error]
}

// errStarting is /readyz's answer until the daemon's scheduler runs.
var errStarting = errors.New("starting: logging in to Vault, checking the destinations")

// StartEarly listens on metrics.listen and serves. Close it when the daemon does not start.
func StartEarly(cfg *config.Config, logTo io.Writer) (*EarlyServer, error) {
	log, err := newLogger(cfg.Log, logTo)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", cfg.Metrics.Listen, err)
	}
	e := &EarlyServer{listener: ln}
	e.srv, err = metrics.NewServer(metrics.ServerOptions{
		Listener: ln, Gatherer: &e.gatherer, Logger: log.Named("metrics"), Pprof: cfg.Metrics.Pprof,
		Ready: func() error {
			if f := e.ready.Load(); f != nil {
				return (*f)()
			}
			return errStarting
		},
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := e.srv.Start(); err != nil {
		ln.Close()
		return nil, err
	}
	return e, nil
}

// Close stops serving (the daemon did not start).
func (e *EarlyServer) Close() { _ = e.srv.Close() }

// adopt hands the server the daemon's registry and readiness.
func (e *EarlyServer) adopt(c *App, ready func() error) {
	e.gatherer.Set(c.reg)
	e.ready.Store(&ready)
}
