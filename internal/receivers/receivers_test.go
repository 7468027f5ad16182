package receivers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/backoff"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/receivers"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

const notifyKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type fakeSink map[string]sink.Record

func (f fakeSink) Get(_ context.Context, path string) (sink.Record, error) {
	r, ok := f[path]
	if !ok {
		return sink.Record{}, sink.ErrNotFound
	}
	return r, nil
}

func manager(t *testing.T, dests map[string]config.Destination, s fakeSink) (*receivers.Manager, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(metrics.Options{Registerer: prometheus.NewRegistry(), Version: "test", FailureReasons: rotate.FailureReasons, SkipProcessCollectors: true})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "notify.key")
	if err := os.WriteFile(keyFile, []byte(notifyKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for id, d := range dests {
		for i := range d.Consumers {
			if d.Consumers[i].Notify.URL != "" {
				d.Consumers[i].Notify.KeyFile = keyFile
			}
		}
		dests[id] = d
	}
	return receivers.New(receivers.Options{Logger: zap.NewNop(), Metrics: m, Sink: s, ReadKeyFile: secret.ReadPrivateFile, StateDir: dir,
		Lookup: func(id string) (config.Destination, bool) { d, ok := dests[id]; return d, ok },
		Retry:  backoff.Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}}), m
}

// TestOneNotificationPerBurst: a rule's 200 destinations rotated at once make one signed
// POST to their consumer, naming all 200, holding no secret.
func TestOneNotificationPerBurst(t *testing.T) {
	var mu sync.Mutex
	var bodies []receivers.Notification
	key, _ := receivers.DecodeKey(notifyKey)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		want := "v1," + receivers.Sign(key, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), b)
		if r.Header.Get("webhook-signature") != want || strings.Contains(string(b), "whsec_") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var n receivers.Notification
		_ = json.Unmarshal(b, &n)
		mu.Lock()
		bodies = append(bodies, n)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	consumer := config.Consumer{Name: "billing-api", Notify: config.Notify{URL: srv.URL, Debounce: 200 * time.Millisecond}}
	dests := map[string]config.Destination{}
	for i := range 200 {
		id := fmt.Sprintf("d%03d", i)
		dests[id] = config.Destination{ID: id, Name: "dest-" + id, VaultPath: "webhookco/" + id, Timing: config.Timing{Consumers: []config.Consumer{consumer}}}
	}
	m, met := manager(t, dests, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	for i := range 200 {
		id := fmt.Sprintf("d%03d", i)
		m.Stored(rotate.Stored{DestinationID: id, Destination: "dest-" + id, KeyID: "k-" + id, Location: "secret/data/webhookco/" + id, RotatedAt: time.Now()})
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(met.ConsumerNotifications.WithLabelValues("billing-api", "delivered")) < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // nothing else may follow
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || len(bodies[0].Rotations) != 200 || bodies[0].Consumer != "billing-api" {
		t.Fatalf("%d notifications (want 1 naming 200 rotations): %+v", len(bodies), bodies)
	}
}

// TestExecNotifyKeepsTheSecretOffArgvAndEnv: an exec consumer gets the stored record on
// stdin when it asks, never in its arguments or environment; a failing one is retried and
// counted failed.
func TestExecNotifyKeepsTheSecretOffArgvAndEnv(t *testing.T) {
	dir := t.TempDir()
	script := fmt.Sprintf("env > %s/env; cat > %s/stdin", dir, dir)
	c := config.Consumer{Name: "reloader", Notify: config.Notify{Exec: []string{"/bin/sh", "-c", script}, SecretOnStdin: true, Debounce: 50 * time.Millisecond}}
	d := config.Destination{ID: "d1", Name: "billing-prod", VaultPath: "webhookco/billing-prod", Timing: config.Timing{Consumers: []config.Consumer{c}}}
	s := fakeSink{"webhookco/billing-prod": {DestinationID: "d1", KeyID: "k1", Secret: secret.New("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"), Version: "3"}}
	m, met := manager(t, map[string]config.Destination{"d1": d}, s)
	m.Stored(rotate.Stored{DestinationID: "d1", Destination: "billing-prod", KeyID: "k1", Location: "secret/data/webhookco/billing-prod", Version: "3"})
	m.Flush(context.Background())
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if strings.Contains(string(env), "whsec_") || !strings.Contains(string(env), "ROTATORD_KEY_ID=k1") || !strings.Contains(string(env), "ROTATORD_DESTINATION=billing-prod") {
		t.Errorf("environment:\n%s", env)
	}
	if !strings.Contains(string(stdin), `"signing_secret":"whsec_c2VjcmV0`) || !strings.Contains(string(stdin), `"key_id":"k1"`) {
		t.Errorf("stdin: %s", stdin)
	}
	if got := testutil.ToFloat64(met.ConsumerNotifications.WithLabelValues("reloader", "delivered")); got != 1 {
		t.Errorf("delivered = %v", got)
	}
	// A consumer that keeps failing: retried, then counted failed.
	c.Notify.Exec = []string{"/bin/false"}
	d.Consumers = []config.Consumer{c}
	m, met = manager(t, map[string]config.Destination{"d1": d}, s)
	m.Stored(rotate.Stored{DestinationID: "d1", Destination: "billing-prod", KeyID: "k2"})
	m.Flush(context.Background())
	if got := testutil.ToFloat64(met.ConsumerNotifications.WithLabelValues("reloader", "failed")); got != 1 {
		t.Errorf("failed = %v", got)
	}
}

// TestGateHoldsWhileAConsumerLags: a consumer that holds only an older key holds the
// rotation, is told again, and is seen behind; once it holds the stored key the rotation
// goes on and the hold is cleared. on_hold_deadline: rotate lets it go at max_age.
func TestGateHoldsWhileAConsumerLags(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	if err := os.WriteFile(held, []byte("k1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Consumer{Name: "billing-api", Notify: config.Notify{Exec: []string{"/bin/true"}}, Adoption: &config.Adoption{Exec: []string{"/bin/cat", held}}}
	d := config.Destination{ID: "d1", Name: "billing-prod", VaultPath: "webhookco/billing-prod", Timing: config.Timing{Consumers: []config.Consumer{c}, MaxAge: 48 * time.Hour}}
	dests := map[string]config.Destination{"d1": d}
	m, met := manager(t, dests, nil)
	stored := sink.Record{DestinationID: "d1", KeyID: "k2", RotatedAt: time.Now().Add(-time.Hour)}
	err := m.Gate(context.Background(), rotate.Destination{ID: "d1", Name: "billing-prod"}, stored)
	if err == nil || !strings.Contains(err.Error(), "consumer billing-api holds k1, not the stored key k2") {
		t.Fatalf("gate = %v", err)
	}
	if testutil.ToFloat64(met.ConsumerBehind.WithLabelValues("billing-api")) != 1 || testutil.CollectAndCount(met.RotationHeld) != 1 {
		t.Error("the hold is not in the metrics")
	}
	if h := m.Holds(); len(h) != 1 || h[0].Consumer != "billing-api" || h[0].StoredKeyID != "k2" || h[0].Holds[0] != "k1" {
		t.Errorf("holds = %+v", h)
	}
	if err := os.WriteFile(held, []byte("k2\nk1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Gate(context.Background(), rotate.Destination{ID: "d1", Name: "billing-prod"}, stored); err != nil {
		t.Errorf("gate after the consumer caught up = %v", err)
	}
	if testutil.ToFloat64(met.ConsumerBehind.WithLabelValues("billing-api")) != 0 || testutil.CollectAndCount(met.RotationHeld) != 0 || len(m.Holds()) != 0 {
		t.Error("the hold is still in the metrics")
	}
	// A consumer that cannot say counts as behind.
	c.Adoption.Exec = []string{"/bin/false"}
	d.Consumers = []config.Consumer{c}
	dests["d1"] = d
	if err := m.Gate(context.Background(), rotate.Destination{ID: "d1"}, stored); err == nil || !strings.Contains(err.Error(), "could not say which key it holds") {
		t.Errorf("gate with a silent consumer = %v", err)
	}
	// At the deadline, on_hold_deadline: rotate lets the rotation go; hold (default) does not.
	old := sink.Record{DestinationID: "d1", KeyID: "k2", RotatedAt: time.Now().Add(-49 * time.Hour)}
	if err := m.Gate(context.Background(), rotate.Destination{ID: "d1"}, old); err == nil {
		t.Error("on_hold_deadline hold (the default) let a rotation cut the consumer off")
	}
	d.OnHoldDeadline = config.HoldRotate
	dests["d1"] = d
	if err := m.Gate(context.Background(), rotate.Destination{ID: "d1"}, old); err != nil {
		t.Errorf("on_hold_deadline rotate at the deadline = %v", err)
	}
}

// watchManager is a Manager whose delivery watch reads the log through deliveries, with
// destinations d0..d(n-1) stored once each (so all of them are watched).
func watchManager(t *testing.T, n int, every time.Duration, deliveries func(ctx context.Context, id string) ([]webhookco.Delivery, error)) *receivers.Manager {
	t.Helper()
	dests := map[string]config.Destination{}
	for i := range n {
		id := fmt.Sprintf("d%d", i)
		dests[id] = config.Destination{ID: id, Name: "dest-" + id}
	}
	m := metrics.New(metrics.Options{Registerer: prometheus.NewRegistry(), Version: "test", FailureReasons: rotate.FailureReasons, SkipProcessCollectors: true})
	mgr := receivers.New(receivers.Options{Logger: zap.NewNop(), Metrics: m, Sink: fakeSink{}, ReadKeyFile: secret.ReadPrivateFile,
		Lookup: func(id string) (config.Destination, bool) { d, ok := dests[id]; return d, ok },
		Deliveries: func(ctx context.Context, id string) ([]webhookco.Delivery, rotate.Outcome) {
			items, err := deliveries(ctx, id)
			return items, rotate.Classify(err)
		},
		WatchEvery: every})
	for id, d := range dests {
		mgr.Stored(rotate.Stored{DestinationID: id, Destination: d.Name, KeyID: "k-" + id, RotatedAt: time.Now()})
	}
	return mgr
}

// TestDeliveryWatchStopsAtA429: a 429 from the delivery log ends the watch's pass (the
// shared rate budget is closed for everybody; the rest waits for the next pass) instead of
// asking for every other destination's log while the provider says to slow down.
func TestDeliveryWatchStopsAtA429(t *testing.T) {
	var calls atomic.Int32
	limited := true
	mgr := watchManager(t, 5, time.Hour, func(ctx context.Context, id string) ([]webhookco.Delivery, error) {
		calls.Add(1)
		if limited {
			return nil, &webhookco.APIError{Operation: webhookco.OpListDeliveries, Status: http.StatusTooManyRequests, Code: "RATE_LIMITED"}
		}
		return nil, nil
	})
	receivers.WatchOnce(mgr, context.Background())
	if n := calls.Load(); n != 1 {
		t.Errorf("a pass answered 429 at its first read made %d reads, want 1", n)
	}
	limited = false
	calls.Store(0)
	receivers.WatchOnce(mgr, context.Background())
	if n := calls.Load(); n != 5 {
		t.Errorf("a pass without 429 made %d reads, want one per watched destination (5)", n)
	}
}

// TestDeliveryWatchOnePassAtATime: a pass slower than delivery_watch_interval (the rate
// budget paces its reads) is not joined by another at each tick: one pass at a time.
func TestDeliveryWatchOnePassAtATime(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	mgr := watchManager(t, 3, 5*time.Millisecond, func(ctx context.Context, id string) ([]webhookco.Delivery, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	time.Sleep(200 * time.Millisecond) // 40 ticks while the first read waits
	close(release)
	cancel()
	<-done
	if m := most.Load(); m != 1 {
		t.Errorf("%d reads of the delivery log at once, want 1 (one pass at a time, one read at a time)", m)
	}
}
