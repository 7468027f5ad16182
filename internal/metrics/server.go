package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// MaxConcurrentScrapes bounds the scrapes rendered at once; one more is answered 503 at
// once. A scrape of a large fleet allocates tens of MiB, so many at once (scrapers in
// parallel, or someone hammering the port) could pass a sidecar's memory limit; two serve
// a pair of Prometheus replicas.
const MaxConcurrentScrapes = 2

// ServerOptions configure the metrics listener.
type ServerOptions struct {
	// Addr is host:port; Listener, when set, is used instead.
	Addr     string
	Listener net.Listener
	Gatherer prometheus.Gatherer
	Logger   *zap.Logger
	// Ready reports whether the daemon is ready; nil means always ready. /readyz answers
	// 503 with the error's text while it returns an error.
	Ready func() error
	// Pprof serves Go's profiles under /debug/pprof/.
	Pprof bool
}

// Server serves /metrics, /healthz and /readyz on its own mux.
type Server struct {
	opts ServerOptions
	srv  *http.Server
	errc chan error // Serve's end, once Start ran
}

// LateGatherer gathers from a Gatherer set later (Set), nothing before: the metrics server
// can answer /healthz while the daemon is still wiring its registry.
type LateGatherer struct {
	g atomic.Pointer[prometheus.Gatherer]
}

// Set makes g the gatherer from now on.
func (l *LateGatherer) Set(g prometheus.Gatherer) { l.g.Store(&g) }

// Gather implements prometheus.Gatherer.
func (l *LateGatherer) Gather() ([]*dto.MetricFamily, error) {
	if g := l.g.Load(); g != nil {
		return (*g).Gather()
	}
	return nil, nil
}

// NewServer validates opts. It neither listens nor starts goroutines.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Gatherer == nil || opts.Logger == nil {
		return nil, errors.New("metrics server: Gatherer and Logger are required")
	}
	if opts.Addr == "" && opts.Listener == nil {
		return nil, errors.New("metrics server: Addr or Listener is required")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", releaseAfter(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(opts.Logger), MaxRequestsInFlight: MaxConcurrentScrapes})))
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if opts.Ready != nil {
			if err := opts.Ready(); err != nil {
				// Short: whoever can reach the port reads it; the log has the whole error.
				http.Error(w, "not ready: "+shorten(err.Error(), maxReadyText), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return &Server{opts: opts, srv: &http.Server{
		Handler: mux,
		// A scrape reads nothing and writes at most a few MB: a slow or idle client must not
		// hold a connection (and a goroutine) for long.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}}, nil
}

// maxReadyText bounds the error text /readyz shows.
const maxReadyText = 160

// shorten keeps the first line of s, at most n bytes of it.
func shorten(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// Run listens and serves until ctx is done, then shuts down within 5 s.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	return s.Wait(ctx)
}

// Start listens and begins serving in the background; Wait (or Close) ends it. The daemon
// starts it before anything else, so /healthz answers while the start waits on Vault.
func (s *Server) Start() error {
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.opts.Addr); err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
	}
	s.opts.Logger.Info("serving metrics", zap.String("addr", ln.Addr().String()))
	s.errc = make(chan error, 1)
	go func() { s.errc <- s.srv.Serve(ln) }()
	return nil
}

// Close stops a started server at once.
func (s *Server) Close() error { return s.srv.Close() }

// Wait serves until ctx is done, then shuts down within 5 s; it returns early with the
// error when serving fails.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case err := <-s.errc:
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("metrics listener shutdown: %w", err)
	}
	return nil
}

// releaseAfter returns a scrape's garbage to the system once the answer is written, at most
// every 10 s. A scrape of 10,000 destinations' series allocates tens of MiB that the
// runtime would otherwise keep; between scrapes rotatord is idle, so its RSS stays at its
// live heap (a full collection of it takes milliseconds).
func releaseAfter(h http.Handler) http.Handler {
	var last atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		now := time.Now().UnixNano()
		if prev := last.Load(); now-prev >= int64(10*time.Second) && last.CompareAndSwap(prev, now) {
			debug.FreeOSMemory()
		}
	})
}
