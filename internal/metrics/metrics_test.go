package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// TestSeriesExistFromStart: every labelled series a query or alert needs from the start is
// exported at 0 before anything happens, and a destination has six series by default: a
// failure reason, a lost secret, a skip or drift adds one only once it happened.
func TestSeriesExistFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(Options{Registerer: reg, Version: "1.0.0", Destinations: []string{"billing"}, FailureReasons: []string{"lost"},
		Operations: []string{"rotate"}, Codes: []string{"200"}, Sink: "vault_kv2", SkipProcessCollectors: true})
	want := `
# HELP rotatord_build_info Always 1; the label says rotatord's version.
# TYPE rotatord_build_info gauge
rotatord_build_info{version="1.0.0"} 1
# HELP rotatord_rotations_total Rotations finished, by destination and result (success or failure).
# TYPE rotatord_rotations_total counter
rotatord_rotations_total{destination="billing",result="failure"} 0
rotatord_rotations_total{destination="billing",result="success"} 0
# HELP rotatord_failures_by_reason_total Failed rotations and detected lost secrets of all destinations, by reason.
# TYPE rotatord_failures_by_reason_total counter
rotatord_failures_by_reason_total{reason="lost"} 0
# HELP rotatord_api_requests_total webhook.co API requests, by operation and HTTP status code ("error": no response).
# TYPE rotatord_api_requests_total counter
rotatord_api_requests_total{code="200",operation="rotate"} 0
# HELP rotatord_next_rotation_timestamp_seconds Unix time of the destination's next scheduled rotation (0: not scheduled).
# TYPE rotatord_next_rotation_timestamp_seconds gauge
rotatord_next_rotation_timestamp_seconds{destination="billing"} 0
`
	names := []string{"rotatord_build_info", "rotatord_rotations_total", "rotatord_rotation_failures_total", "rotatord_failures_by_reason_total",
		"rotatord_api_requests_total", "rotatord_lost_secrets_total", "rotatord_next_rotation_timestamp_seconds"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if n := seriesOf(t, reg, "billing"); n != 6 {
		t.Errorf("%d series for a destination by default, want 6", n)
	}
	m.Failure("billing", "lost")
	if got := testutil.ToFloat64(m.RotationFailures.WithLabelValues("billing", "lost")); got != 1 {
		t.Errorf("failure by destination: %v", got)
	}
	if n := seriesOf(t, reg, "billing"); n != 7 {
		t.Errorf("%d series after a failure, want 7", n)
	}
	m.RemoveDestination("billing")
	if n := seriesOf(t, reg, "billing"); n != 0 {
		t.Errorf("%d series after RemoveDestination, want 0", n)
	}
}

// seriesOf counts the series labelled destination=dest.
func seriesOf(t *testing.T, reg *prometheus.Registry, dest string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" && l.GetValue() == dest {
					n++
				}
			}
		}
	}
	return n
}

func TestServerEndpoints(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	New(Options{Registerer: reg, Version: "x", SkipProcessCollectors: true})
	var ready atomic.Bool
	srv, err := NewServer(ServerOptions{Listener: ln, Gatherer: reg, Logger: zap.NewNop(), Ready: func() error {
		if !ready.Load() {
			return errors.New("scheduler not running")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "scheduler not running") {
		t.Errorf("/readyz before ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `rotatord_build_info{version="x"} 1`) {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := get("/"); code != 404 {
		t.Errorf("/: %d, want 404 (no DefaultServeMux)", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestServerBoundsClientsAndText: every timeout of the metrics server is set, and the error
// text of /readyz is one short line however long the error.
func TestServerBoundsClientsAndText(t *testing.T) {
	long := errors.New("spooled secrets cannot be stored: " + strings.Repeat("vault write secret/data/webhookco/x: ", 40) + "\nsecond line")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Listener: ln, Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(), Ready: func() error { return long }})
	if err != nil {
		t.Fatal(err)
	}
	if s := srv.srv; s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 {
		t.Errorf("timeouts: read header %s, read %s, write %s, idle %s; want all set", s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || len(b) > maxReadyText+40 || strings.Contains(string(b), "second line") {
		t.Errorf("/readyz: %d, %d bytes: %q", resp.StatusCode, len(b), b)
	}
}

// slowGatherer holds every Gather until release is closed.
type slowGatherer struct {
	entered chan struct{}
	release chan struct{}
}

func (g slowGatherer) Gather() ([]*dto.MetricFamily, error) {
	g.entered <- struct{}{}
	<-g.release
	return nil, nil
}

// TestConcurrentScrapesAreBounded: at most MaxConcurrentScrapes scrapes render at once (a
// scrape of a large fleet costs tens of MiB); one more is answered 503 at once, and
// /healthz still answers.
func TestConcurrentScrapesAreBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := slowGatherer{entered: make(chan struct{}, 10), release: make(chan struct{})}
	srv, err := NewServer(ServerOptions{Listener: ln, Gatherer: g, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	var wg sync.WaitGroup
	for range MaxConcurrentScrapes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(base + "/metrics"); err == nil {
				resp.Body.Close()
			}
		}()
		<-g.entered
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/metrics")
	if err != nil {
		t.Fatalf("a scrape beyond the bound: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a scrape beyond the bound: %d, want 503", resp.StatusCode)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz while scrapes wait: %v", err)
	}
	close(g.release)
	wg.Wait()
}

// TestProblemsOnly: with metrics.destination_series: problems a destination has series of
// its own only while it is overdue, failing, drifting, held or late, and they go when it is
// well again; the aggregates are always there and count every destination.
func TestProblemsOnly(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	dests := []string{"fine", "overdue", "failing", "drifting", "held", "late"}
	for _, problemsOnly := range []bool{false, true} {
		reg := prometheus.NewRegistry()
		m := New(Options{Registerer: reg, Version: "1", Destinations: dests, SkipProcessCollectors: true, ProblemsOnly: problemsOnly, Now: func() time.Time { return now }})
		for _, d := range dests {
			m.Fleet.SetMaxAge(d, 48*time.Hour)
			m.Fleet.SetRotated(d, now.Add(-time.Hour))
			m.Fleet.SetNext(d, now.Add(time.Hour))
			m.RecordOutcome(d, true, "")
			m.Skipped(d)
		}
		m.Fleet.SetRotated("overdue", now.Add(-72*time.Hour))
		m.RecordOutcome("failing", false, "sink")
		m.Fleet.SetDrift("drifting", true)
		m.Fleet.SetDrift("fine", false)
		m.Fleet.Hold("held", "billing-api", true)
		m.Fleet.SetNext("late", now.Add(-5*time.Minute))
		for _, d := range dests {
			want := 6 // rotations by result (2), rotated, overdue, next, consecutive failures
			switch {
			case d == "drifting" || (d == "fine" && !problemsOnly):
				want = 7 // and drift, once checked
			case d == "fine":
				want = 0
			}
			if !problemsOnly {
				want++ // the skip, by destination
			}
			if d == "failing" {
				want++ // rotatord_last_failure_info
			}
			if n := seriesOf(t, reg, d); n != want {
				t.Errorf("problems only %v: %s has %d series, want %d", problemsOnly, d, n, want)
			}
		}
		trouble := `
# HELP rotatord_destinations_in_trouble Destinations in each problem (overdue, failing, drifting, held, late), whatever metrics.destination_series says.
# TYPE rotatord_destinations_in_trouble gauge
rotatord_destinations_in_trouble{problem="drifting"} 1
rotatord_destinations_in_trouble{problem="failing"} 1
rotatord_destinations_in_trouble{problem="held"} 1
rotatord_destinations_in_trouble{problem="late"} 1
rotatord_destinations_in_trouble{problem="overdue"} 1
# HELP rotatord_fleet_rotations_total Rotations of every destination by result (success, failure, skipped), whatever metrics.destination_series says.
# TYPE rotatord_fleet_rotations_total counter
rotatord_fleet_rotations_total{result="failure"} 1
rotatord_fleet_rotations_total{result="skipped"} 6
rotatord_fleet_rotations_total{result="success"} 6
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(trouble), "rotatord_destinations_in_trouble", "rotatord_fleet_rotations_total"); err != nil {
			t.Errorf("problems only %v: %v", problemsOnly, err)
		}
		// Well again: its series go (problems only), the aggregate says so.
		m.RecordOutcome("failing", true, "")
		m.Fleet.Hold("held", "billing-api", false)
		if n := seriesOf(t, reg, "failing"); problemsOnly && n != 0 {
			t.Errorf("a destination well again keeps %d series", n)
		}
		if n := seriesOf(t, reg, "held"); problemsOnly && n != 0 {
			t.Errorf("a destination no longer held keeps %d series", n)
		}
	}
}

// TestScrapeDoesNotHoldBackUpdates: while a scrape is emitting the destinations' series (a
// scrape of a large fleet takes a while, at the pace its reader takes them), a rotation's
// or the scheduler's update of a destination does not wait for the scrape to end.
func TestScrapeDoesNotHoldBackUpdates(t *testing.T) {
	f := newFleet(time.Now, false)
	for i := range 100 {
		f.SetRotated(fmt.Sprintf("d%03d", i), time.Now())
	}
	ch := make(chan prometheus.Metric) // nobody reads it but this test
	collected := make(chan struct{})
	go func() { f.Collect(ch); close(collected) }()
	<-ch // the scrape is under way, and waits for its reader
	updated := make(chan struct{})
	go func() { f.SetNext("d000", time.Now().Add(time.Hour)); f.outcome("d001", true); close(updated) }()
	select {
	case <-updated:
	case <-time.After(5 * time.Second):
		t.Error("an update waited for the scrape to be read")
	}
	go func() {
		for range ch {
		}
	}()
	<-collected
	close(ch)
}
