package rotate_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	filesink "github.com/rotatord/rotatord/internal/sink/file"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// harness is one rotator wired to the emulator over loopback HTTP and a file sink.
type harness struct {
	em      *emulator.Emulator
	apiKey  string
	client  *webhookco.Client
	sink    rotate.Sink
	spool   *spool.Spool
	opts    rotate.Options
	reg     *prometheus.Registry
	m       *metrics.Metrics
	logs    *syncBuffer
	waits   []time.Duration
	waitsMu sync.Mutex
	dest    rotate.Destination
	// stateDir holds the spool.
	stateDir string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Sync() error    { return nil }

type harnessOpts struct {
	scopes      []string
	wrongKey    bool
	realSleep   bool
	jitter      func() float64
	sink        rotate.Sink
	latency     time.Duration
	maxRLWait   time.Duration
	maxSinkWait time.Duration
	// timeout is api.timeout (default 2s).
	timeout time.Duration
	// settle is api.retry.settle_period (default 0: one listing settles an unknown outcome).
	settle time.Duration
	// historyBudget is Options.HistoryBudget (0: the default).
	historyBudget int
}

func newHarness(t testing.TB, o harnessOpts) (*harness, *rotate.Rotator) {
	t.Helper()
	h := &harness{em: emulator.New(emulator.Options{RotateLatency: o.latency}), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	url, err := h.em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.em.Close() })
	if o.scopes == nil {
		o.scopes = []string{emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite}
	}
	h.apiKey = h.em.AddKey(o.scopes...)
	h.dest = rotate.Destination{ID: h.em.AddDestination("billing"), Name: "billing-prod", Path: "webhookco/billing-prod"}
	h.m = metrics.New(metrics.Options{Registerer: h.reg, Version: "test", Destinations: []string{h.dest.Name},
		FailureReasons: rotate.FailureReasons, Operations: webhookco.Operations, Codes: []string{"200", "429", "error"}, Sink: "file", SkipProcessCollectors: true})
	key := h.apiKey
	if o.wrongKey {
		key = "whk_" + strings.Repeat("x", 49)
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Second
	}
	h.client, err = webhookco.New(webhookco.Options{BaseURL: url, APIKey: secret.New(key), Version: "test", Timeout: o.timeout, Observe: h.m.ObserveAPIRequest})
	if err != nil {
		t.Fatal(err)
	}
	h.stateDir = t.TempDir()
	if h.spool, err = spool.Open(h.stateDir, nil); err != nil {
		t.Fatal(err)
	}
	h.sink = o.sink
	if h.sink == nil {
		fs, err := filesink.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		h.sink = fs
	}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), h.logs, zap.DebugLevel))
	opts := rotate.Options{
		API: h.client, Sink: h.sink, Spool: h.spool, Logger: logger, Metrics: h.m,
		Policy: rotate.Policy{InitialBackoff: 250 * time.Millisecond, MaxBackoff: 4 * time.Second, MaxRetryAfter: 60 * time.Second,
			MaxRateLimitWait: 10 * time.Minute, MaxAmbiguousRetries: 2, MaxSinkWait: time.Minute},
		Jitter: o.jitter, HistoryBudget: o.historyBudget,
	}
	opts.Policy.SettlePeriod = o.settle
	if o.maxRLWait > 0 {
		opts.Policy.MaxRateLimitWait = o.maxRLWait
	}
	if o.maxSinkWait > 0 {
		opts.Policy.MaxSinkWait = o.maxSinkWait
	}
	if !o.realSleep {
		opts.Sleep = func(ctx context.Context, d time.Duration) error {
			h.waitsMu.Lock()
			h.waits = append(h.waits, d)
			h.waitsMu.Unlock()
			return ctx.Err()
		}
	}
	h.opts = opts
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h, r
}

// assertStoredActive checks that the sink holds the provider's one active key.
func (h *harness) assertStoredActive(t *testing.T) {
	t.Helper()
	active := h.em.ActiveKeys(h.dest.ID)
	if len(active) != 1 {
		t.Fatalf("emulator has %d active keys, want 1", len(active))
	}
	got, err := h.sink.Get(context.Background(), h.dest.Path)
	if err != nil {
		t.Fatalf("sink: %v", err)
	}
	if got.KeyID != active[0].ID || got.Secret.Reveal() != active[0].Secret || got.DestinationID != h.dest.ID {
		t.Errorf("sink holds key %s, provider's active key is %s", got.KeyID, active[0].ID)
	}
}

// ops returns the operations the emulator saw, in order.
func (h *harness) ops() []string {
	var out []string
	for _, r := range h.em.Requests() {
		out = append(out, r.Operation)
	}
	return out
}

func TestRotateStoresSecret(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() || res.RotateCalls != 1 {
		t.Fatalf("result = %+v", res)
	}
	h.assertStoredActive(t)
	// No stored key yet: one listing for the baseline, then one rotate.
	if got, want := strings.Join(h.ops(), ","), "list_signing_secrets,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	res = r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() {
		t.Fatalf("second rotation: %+v", res)
	}
	h.assertStoredActive(t)
	if got, want := strings.Join(h.ops(), ","), "list_signing_secrets,rotate,rotate"; got != want {
		t.Errorf("requests = %s, want %s (the stored key is the baseline)", got, want)
	}
	if got := gathered(t, h.reg, "rotatord_rotations_total", h.dest.Name, "success"); got != 2 {
		t.Errorf("rotations_total{success} = %v, want 2", got)
	}
}

// TestStoredSecretsAreNotKept: what the rotator remembers of a stored record (to spare the
// next rotation a read) has its key id and times, never its secret, whether it came from a
// store or from the start's reads; rotations that use it still store, with no read.
func TestStoredSecretsAreNotKept(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	rec := r.Recalled(h.dest.ID)
	if rec == nil || rec.KeyID != res.KeyID || !rec.Secret.IsZero() {
		t.Fatalf("remembered after a store: key %v, secret kept %v", rec != nil && rec.KeyID == res.KeyID, rec != nil && !rec.Secret.IsZero())
	}
	stored, err := h.sink.Get(context.Background(), h.dest.Path)
	if err != nil || stored.Secret.IsZero() {
		t.Fatalf("the sink: %v", err)
	}
	r.Know(h.dest.ID, stored, true)
	if rec := r.Recalled(h.dest.ID); rec == nil || !rec.Secret.IsZero() || rec.KeyID != stored.KeyID {
		t.Fatal("remembered after the start's read: the secret is kept")
	}
	res = r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() {
		t.Fatalf("second rotation: %+v", res)
	}
	h.assertStoredActive(t)
	if got, want := strings.Join(h.ops(), ","), "list_signing_secrets,rotate,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
}

// TestRetryAfterHonoured: 429 with Retry-After: 2 twice, then 200: three rotate requests,
// and success no sooner than 4 s after the first (real waits).
func TestRetryAfterHonoured(t *testing.T) {
	h, r := newHarness(t, harnessOpts{realSleep: true})
	h.em.InjectFaults(emulator.OpRotate,
		emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "2"},
		emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "2"})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	rotates := h.em.RequestsFor(emulator.OpRotate, h.dest.ID)
	if len(rotates) != 3 {
		t.Fatalf("%d rotate requests, want 3", len(rotates))
	}
	for i, want := range []int{429, 429, 200} {
		if rotates[i].Status != want {
			t.Errorf("rotate %d answered %d, want %d", i, rotates[i].Status, want)
		}
	}
	if gap := rotates[2].At.Sub(rotates[0].At); gap < 4*time.Second {
		t.Errorf("success came %s after the first request, want at least 4s", gap)
	}
	if got := testutil.ToFloat64(h.m.RateLimited); got != 2 {
		t.Errorf("rate_limited_total = %v, want 2", got)
	}
	h.assertStoredActive(t)
}

// TestBackoffGrowsWithoutRetryAfter: 429s without Retry-After wait longer each time, with
// jitter inside [d/2, d).
func TestBackoffGrowsWithoutRetryAfter(t *testing.T) {
	for _, jitter := range []float64{0, 0.99} {
		h, r := newHarness(t, harnessOpts{jitter: func() float64 { return jitter }})
		for range 6 {
			h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit})
		}
		res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
		if !res.OK() || res.RotateCalls != 7 {
			t.Fatalf("result = %+v", res)
		}
		// Exponential from 250ms, capped at 4s; each wait is half fixed, half random.
		bases := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
		if len(h.waits) != len(bases) {
			t.Fatalf("waits = %v, want %d", h.waits, len(bases))
		}
		for i, d := range bases {
			want := d/2 + time.Duration(jitter*float64(d/2))
			if h.waits[i] != want {
				t.Errorf("jitter %v: wait %d = %s, want %s", jitter, i, h.waits[i], want)
			}
		}
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "3600"})
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	if len(h.waits) != 1 || h.waits[0] != 60*time.Second {
		t.Errorf("waits = %v, want [1m0s] (Retry-After capped by max_retry_after)", h.waits)
	}
}

func TestRateLimitGivesUp(t *testing.T) {
	h, r := newHarness(t, harnessOpts{maxRLWait: 5 * time.Second})
	for range 10 {
		h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "2"})
	}
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.OK() || res.Reason != rotate.ReasonRateLimited || res.RotateCalls != 3 {
		t.Fatalf("result = %+v, want rate_limited after 3 calls (2s+2s fit in 5s, a third wait does not)", res)
	}
	if got := testutil.ToFloat64(h.m.RotationFailures.WithLabelValues(h.dest.Name, rotate.ReasonRateLimited)); got != 1 {
		t.Errorf("failures{rate_limited} = %v", got)
	}
}

// TestRefusedIsNeverRetried: 400, 401, 403, 404 and 409 each lead to exactly one rotate
// request, a reason, and a log line naming the destination (and the challenge for 401/403).
func TestRefusedIsNeverRetried(t *testing.T) {
	tests := []struct {
		name      string
		scopes    []string
		wrongKey  bool
		unknownID bool
		fault     *emulator.Fault
		reason    string
		logWant   string
	}{
		{name: "400", fault: &emulator.Fault{Kind: emulator.Status, Status: 400, Code: "VALIDATION_ERROR"}, reason: rotate.ReasonBadRequest, logWant: "VALIDATION_ERROR"},
		{name: "401", wrongKey: true, reason: rotate.ReasonUnauthorized, logWant: `error=\"invalid_token\"`},
		{name: "403", scopes: []string{emulator.ScopeEndpointsRead}, reason: rotate.ReasonForbidden, logWant: `error=\"insufficient_scope\"`},
		{name: "404", unknownID: true, reason: rotate.ReasonNotFound, logWant: "NOT_FOUND"},
		{name: "409", fault: &emulator.Fault{Kind: emulator.Status, Status: 409, Code: "ENDPOINT_PAUSED"}, reason: rotate.ReasonPaused, logWant: "ENDPOINT_PAUSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, r := newHarness(t, harnessOpts{scopes: tt.scopes, wrongKey: tt.wrongKey})
			dest := h.dest
			if tt.unknownID {
				dest.ID = "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b"
			}
			// Store the current key first, so no baseline listing is needed.
			h.storeCurrent(t, dest)
			if tt.fault != nil {
				h.em.InjectFaults(emulator.OpRotate, *tt.fault)
			}
			res := r.Rotate(context.Background(), dest, rotate.TriggerManual)
			if res.OK() || res.Reason != tt.reason {
				t.Fatalf("result = %+v, want failure %q", res, tt.reason)
			}
			if n := len(h.em.RequestsFor(emulator.OpRotate, "")); n != 1 || res.RotateCalls != 1 {
				t.Errorf("%d rotate requests (result says %d), want exactly 1", n, res.RotateCalls)
			}
			if len(h.waits) != 0 {
				t.Errorf("waited %v after a refusal", h.waits)
			}
			logs := h.logs.String()
			if !strings.Contains(logs, `"destination":"billing-prod"`) || !strings.Contains(logs, tt.logWant) {
				t.Errorf("log lacks the destination or %s:\n%s", tt.logWant, logs)
			}
			if got := testutil.ToFloat64(h.m.RotationFailures.WithLabelValues(dest.Name, tt.reason)); got != 1 {
				t.Errorf("failures{%s} = %v, want 1", tt.reason, got)
			}
		})
	}
}

// storeCurrent puts the provider's active key in the sink, as after an earlier rotation.
func (h *harness) storeCurrent(t testing.TB, dest rotate.Destination) {
	t.Helper()
	k := h.em.Keys(h.dest.ID)[0]
	rec := sink.Record{DestinationID: dest.ID, KeyID: k.ID, Secret: secret.New(k.Secret), RotatedAt: time.Now()}
	if _, err := h.sink.Put(context.Background(), dest.Path, rec, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
}

// TestAmbiguousMintedKeyIsDetected: the connection drops after the provider minted a key.
// rotatord lists before rotating again, counts the lost key, and rotates once to recover.
func TestAmbiguousMintedKeyIsDetected(t *testing.T) {
	for _, fault := range []emulator.FaultKind{emulator.DropAfterMint, emulator.MalformedAfterMint, emulator.InternalErrorAfterMint} {
		t.Run(emulator.Fault{Kind: fault}.String(), func(t *testing.T) {
			h, r := newHarness(t, harnessOpts{})
			h.storeCurrent(t, h.dest)
			h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: fault})
			res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
			if !res.OK() || res.RotateCalls != 2 {
				t.Fatalf("result = %+v, want success after one recovery rotation", res)
			}
			if got, want := strings.Join(h.ops(), ","), "rotate,list_signing_secrets,rotate"; got != want {
				t.Errorf("requests = %s, want %s", got, want)
			}
			minted := h.em.Minted()
			if len(minted) != 2 || minted[0].Delivered || !minted[1].Delivered {
				t.Fatalf("minted = %+v", minted)
			}
			if len(res.LostKeyIDs) != 1 || res.LostKeyIDs[0] != minted[0].KeyID {
				t.Errorf("lost keys = %v, want [%s]", res.LostKeyIDs, minted[0].KeyID)
			}
			if got := testutil.ToFloat64(h.m.RotationFailures.WithLabelValues(h.dest.Name, rotate.ReasonLost)); got != 1 {
				t.Errorf("failures{lost} = %v, want 1", got)
			}
			if got := testutil.ToFloat64(h.m.LostSecrets.WithLabelValues(h.dest.Name)); got != 1 {
				t.Errorf("lost_secrets_total = %v, want 1", got)
			}
			h.assertStoredActive(t)
		})
	}
}

// TestLateCommitIsNotRotatedOver: the provider commits a rotate 4 s after it arrived, long
// after rotatord's 1 s timeout (the real server does not stop a rotate its client left).
// rotatord lists until the settle period has passed, sends no rotate while the first may
// still commit, counts the late key lost, recovers once, and stores the active key.
func TestLateCommitIsNotRotatedOver(t *testing.T) {
	h, r := newHarness(t, harnessOpts{timeout: time.Second, realSleep: true, settle: 10 * time.Second})
	h.storeCurrent(t, h.dest)
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.LateCommit, Delay: 4 * time.Second})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if n := h.em.Overlaps(); n != 0 {
		t.Errorf("%d rotates reached the provider while an earlier one was still running", n)
	}
	minted := h.em.Minted()
	if !res.OK() || len(minted) != 2 {
		t.Fatalf("result = %+v, minted %d keys; want success after one recovery rotation", res, len(minted))
	}
	if minted[0].Delivered || len(res.LostKeyIDs) != 1 || res.LostKeyIDs[0] != minted[0].KeyID {
		t.Errorf("lost keys = %v, want the late one %s", res.LostKeyIDs, minted[0].KeyID)
	}
	if got := testutil.ToFloat64(h.m.LostSecrets.WithLabelValues(h.dest.Name)); got != 1 {
		t.Errorf("lost_secrets_total = %v, want 1", got)
	}
	h.assertStoredActive(t)
}

// TestAmbiguousNothingMinted: a 500 before the transaction; the listing shows the old key,
// so rotate is sent again and nothing is counted lost.
func TestAmbiguousNothingMinted(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.InternalError}, emulator.Fault{Kind: emulator.DropBeforeMint})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() || res.RotateCalls != 3 || len(res.LostKeyIDs) != 0 {
		t.Fatalf("result = %+v", res)
	}
	if got, want := strings.Join(h.ops(), ","), "rotate,list_signing_secrets,rotate,list_signing_secrets,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	if got := testutil.ToFloat64(h.m.LostSecrets.WithLabelValues(h.dest.Name)); got != 0 {
		t.Errorf("lost_secrets_total = %v, want 0", got)
	}
	h.assertStoredActive(t)
}

// TestUnverifiedHoldsRotateBack: the outcome is unknown and the listing fails too. The
// rotation fails, and the next one lists before it sends any rotate.
func TestUnverifiedHoldsRotateBack(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint})
	h.em.InjectFaults(emulator.OpListSigningSecrets, emulator.Fault{Kind: emulator.InternalError})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule)
	if res.OK() || res.Reason != rotate.ReasonUnverified || res.RotateCalls != 1 {
		t.Fatalf("first result = %+v, want unverified after 1 rotate", res)
	}
	res = r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule)
	if !res.OK() || len(res.LostKeyIDs) != 1 {
		t.Fatalf("second result = %+v, want success with one lost key", res)
	}
	if got, want := strings.Join(h.ops(), ","), "rotate,list_signing_secrets,list_signing_secrets,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	h.assertStoredActive(t)
}

// TestAmbiguousBudget: with max_ambiguous_retries 2, three unknown outcomes in a row end
// the rotation; rotate is never sent without a listing before it.
func TestAmbiguousBudget(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	for range 3 {
		h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.InternalErrorAfterMint})
	}
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.OK() || res.Reason != rotate.ReasonServerError || res.RotateCalls != 3 || len(res.LostKeyIDs) != 2 {
		t.Fatalf("result = %+v", res)
	}
	ops := h.ops()
	for i, op := range ops {
		if op == emulator.OpRotate && i > 0 && ops[i-1] != emulator.OpListSigningSecrets {
			t.Errorf("rotate at %d not preceded by a listing: %v", i, ops)
		}
	}
}

// TestNeverTwoAtOnce: concurrent rotations of one destination run one after the other.
func TestNeverTwoAtOnce(t *testing.T) {
	h, r := newHarness(t, harnessOpts{latency: 30 * time.Millisecond})
	h.storeCurrent(t, h.dest)
	var wg sync.WaitGroup
	results := make([]rotate.Result, 6)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = r.Rotate(context.Background(), h.dest, rotate.TriggerManual) }()
	}
	wg.Wait()
	for i, res := range results {
		if !res.OK() {
			t.Errorf("rotation %d: %+v", i, res)
		}
	}
	if n := h.em.Overlaps(); n != 0 {
		t.Errorf("emulator saw %d overlapping rotates", n)
	}
	if n := len(h.em.ActiveKeys(h.dest.ID)); n != 1 {
		t.Errorf("%d active keys, want 1", n)
	}
	h.assertStoredActive(t)
}

// flakySink fails its first n Puts.
type flakySink struct {
	rotate.Sink
	mu       sync.Mutex
	failures int
	conflict bool
	puts     int
}

func (f *flakySink) Put(ctx context.Context, path string, rec sink.Record, ifVersion sink.Version) (sink.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if f.failures > 0 {
		f.failures--
		return "", f.err()
	}
	return f.Sink.Put(ctx, path, rec, ifVersion)
}

func (f *flakySink) err() error {
	if f.conflict {
		return fmt.Errorf("vault write secret/data/x (check-and-set version 1): %w", sink.ErrConflict)
	}
	return errors.New("vault write secret/data/x: Code: 503. Errors: * Vault is sealed")
}

func (f *flakySink) setFailures(n int) {
	f.mu.Lock()
	f.failures = n
	f.mu.Unlock()
}

func TestSinkWriteIsRetried(t *testing.T) {
	fs, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakySink{Sink: fs}
	h, r := newHarness(t, harnessOpts{sink: flaky})
	h.storeCurrent(t, h.dest)
	flaky.setFailures(3)
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() || res.RotateCalls != 1 {
		t.Fatalf("result = %+v", res)
	}
	if got := testutil.ToFloat64(h.m.SinkWrites.WithLabelValues("file", "failure")); got != 3 {
		t.Errorf("sink_writes{failure} = %v, want 3", got)
	}
	h.assertStoredActive(t)
}

// TestSinkDownKeepsSecretInSpool: a sink that stays down leaves the received secret in
// the spool (not lost); the destination is not rotated again until it is stored; the
// replayer stores it once the sink is back.
func TestSinkDownKeepsSecretInSpool(t *testing.T) {
	fs, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakySink{Sink: fs}
	h, r := newHarness(t, harnessOpts{sink: flaky, maxSinkWait: time.Nanosecond})
	h.storeCurrent(t, h.dest)
	flaky.setFailures(1000)
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.OK() || res.Reason != rotate.ReasonSink || res.Status != rotate.Spooled || len(res.LostKeyIDs) != 0 {
		t.Fatalf("result = %+v, want reason sink with the secret spooled", res)
	}
	if !strings.Contains(res.Err.Error(), res.KeyID) {
		t.Errorf("error does not name the key: %v", res.Err)
	}
	if n, _ := h.spool.Len(); n != 1 || testutil.ToFloat64(h.m.SpooledSecrets) != 1 {
		t.Fatalf("spool holds %d entries (gauge %v), want 1", n, testutil.ToFloat64(h.m.SpooledSecrets))
	}

	// Still down: the next rotation sends no rotate.
	res = r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule)
	if res.OK() || res.Reason != rotate.ReasonSink || res.RotateCalls != 0 {
		t.Fatalf("second result = %+v, want no rotate while the spool holds the secret", res)
	}
	if n := len(h.em.RequestsFor(emulator.OpRotate, "")); n != 1 {
		t.Errorf("%d rotate requests, want 1", n)
	}

	// The sink is back: one replay stores it, and the stored key is the provider's active one.
	flaky.setFailures(0)
	if n, err := r.Replay(context.Background()); n != 0 || err != nil {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	h.assertStoredActive(t)
	if testutil.ToFloat64(h.m.SpooledSecrets) != 0 {
		t.Errorf("after replay: gauge %v", testutil.ToFloat64(h.m.SpooledSecrets))
	}
	if testutil.ToFloat64(h.m.LostSecrets.WithLabelValues(h.dest.Name)) != 0 {
		t.Error("a spooled secret was counted lost")
	}
}

// TestIntentSurvivesRestart: the process dies after an ambiguous rotate. A new process
// (a new Rotator on the same state directory) lists before rotating and counts the loss.
func TestIntentSurvivesRestart(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint})
	h.em.InjectFaults(emulator.OpListSigningSecrets, emulator.Fault{Kind: emulator.InternalError})
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); res.Reason != rotate.ReasonUnverified {
		t.Fatalf("first result = %+v", res)
	}
	restarted, err := rotate.New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	res := restarted.Rotate(context.Background(), h.dest, rotate.TriggerSchedule)
	if !res.OK() || len(res.LostKeyIDs) != 1 || res.LostKeyIDs[0] != h.em.Minted()[0].KeyID {
		t.Fatalf("after restart: %+v", res)
	}
	if got, want := strings.Join(h.ops(), ","), "rotate,list_signing_secrets,list_signing_secrets,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	h.assertStoredActive(t)
}

// TestStaleSpoolEntryIsNotWritten: an old spooled secret replayed after a newer rotation
// leaves the newer secret in place.
func TestStaleSpoolEntryIsNotWritten(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	// An entry from long ago, as if a host came back with an old spool.
	old := h.em.Keys(h.dest.ID)[0]
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); !res.OK() {
		t.Fatal(res.Err)
	}
	stale := spool.Entry{DestinationID: h.dest.ID, Destination: h.dest.Name, Path: h.dest.Path, KeyID: old.ID,
		Secret: secret.New(old.Secret), RotatedAt: time.Now().Add(-time.Hour), SpooledAt: time.Now().Add(-time.Hour)}
	if err := h.spool.Put(stale); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Replay(context.Background()); n != 0 || err != nil {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	h.assertStoredActive(t)
	if got := testutil.ToFloat64(h.m.StaleWritesSkipped); got != 1 {
		t.Errorf("stale_writes_skipped = %v, want 1", got)
	}
	// Even with a later rotated_at, the provider's active key wins when it can be listed.
	stale.RotatedAt = time.Now().Add(time.Hour)
	if err := h.spool.Put(stale); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Replay(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.assertStoredActive(t)
}

// TestConflictRereads: a check-and-set conflict makes the rotator read again and decide again.
func TestConflictRereads(t *testing.T) {
	fs, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakySink{Sink: fs, conflict: true}
	h, r := newHarness(t, harnessOpts{sink: flaky})
	h.storeCurrent(t, h.dest)
	flaky.setFailures(2)
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	if len(h.waits) != 2 || h.waits[0] != 0 || h.waits[1] != 0 {
		t.Errorf("waits = %v, want two immediate re-reads", h.waits)
	}
	h.assertStoredActive(t)
}

// TestSinkUnreadableStillRotatesIntoSpool: with the sink down before the rotate, the
// baseline comes from a listing and the received secret waits in the spool.
func TestSinkUnreadableStillRotatesIntoSpool(t *testing.T) {
	fs, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, r := newHarness(t, harnessOpts{sink: downSink{fs}, maxSinkWait: time.Nanosecond})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.OK() || res.Status != rotate.Spooled || res.RotateCalls != 1 {
		t.Fatalf("result = %+v", res)
	}
	if got, want := strings.Join(h.ops(), ","), "list_signing_secrets,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	entries, _, err := h.spool.List(false)
	if err != nil || len(entries) != 1 || entries[0].KeyID != h.em.ActiveKeys(h.dest.ID)[0].ID {
		t.Errorf("spool = %+v, %v", entries, err)
	}
}

type downSink struct{ rotate.Sink }

func (downSink) Get(context.Context, string) (sink.Record, error) {
	return sink.Record{}, errors.New("vault read secret/data/x: dial tcp 127.0.0.1:8200: connect: connection refused")
}

func (downSink) Put(context.Context, string, sink.Record, sink.Version) (sink.Version, error) {
	return "", errors.New("vault write secret/data/x: dial tcp 127.0.0.1:8200: connect: connection refused")
}

// TestShutdownStopsWaiting: cancelling ctx ends a rate-limit wait without another request.
func TestShutdownStopsWaiting(t *testing.T) {
	h, r := newHarness(t, harnessOpts{realSleep: true})
	h.storeCurrent(t, h.dest)
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "30"})
	ctx, cancel := context.WithCancel(context.Background())
	h.em.OnRequest(func(emulator.Request) { cancel() })
	res := r.Rotate(ctx, h.dest, rotate.TriggerSchedule)
	if res.OK() || res.Reason != rotate.ReasonCanceled || res.RotateCalls != 1 {
		t.Fatalf("result = %+v", res)
	}
}

// TestNoSecretOrKeyLeaks rotates through every path and searches all logs, errors and
// metrics for any secret the provider minted and for the API key.
func TestNoSecretOrKeyLeaks(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	faults := []emulator.Fault{
		{Kind: emulator.RateLimit, RetryAfter: "1"}, {Kind: emulator.RateLimit}, {Kind: emulator.InternalError},
		{Kind: emulator.DropAfterMint}, {Kind: emulator.MalformedAfterMint}, {Kind: emulator.InternalErrorAfterMint},
		{Kind: emulator.Status, Status: 400, Code: "VALIDATION_ERROR"},
	}
	var errs []string
	for _, f := range faults {
		h.em.InjectFaults(emulator.OpRotate, f)
		res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
		if res.Err != nil {
			errs = append(errs, res.Err.Error())
		}
	}
	h.em.InjectFaults(emulator.OpListSigningSecrets, emulator.Fault{Kind: emulator.InternalError})
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint})
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); res.Err != nil {
		errs = append(errs, res.Err.Error())
	}
	var exposition bytes.Buffer
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		exposition.WriteString(mf.String())
	}
	haystack := h.logs.String() + strings.Join(errs, "\n") + exposition.String()
	needles := []string{h.apiKey, strings.TrimPrefix(h.apiKey, "whk_")}
	for _, k := range h.em.Keys(h.dest.ID) {
		needles = append(needles, k.Secret, strings.TrimPrefix(k.Secret, "whsec_"))
	}
	if len(needles) < 8 {
		t.Fatalf("only %d secrets minted; the test did not exercise enough paths", len(needles)-2)
	}
	for _, n := range needles {
		if strings.Contains(haystack, n) {
			t.Errorf("a secret or the API key leaked into logs, errors or metrics")
		}
	}
	if len(errs) == 0 || !strings.Contains(h.logs.String(), "rotation failed") || !strings.Contains(h.logs.String(), "rotation succeeded") {
		t.Errorf("the test did not see both failures and successes")
	}
}

// TestReplayerBacksOffWhileTheSinkFails: while the sink refuses a spooled secret, the
// replayer waits with backoff between passes (250 ms doubling here), it does not retry at
// once because its own failed pass signalled "a secret was left behind".
func TestReplayerBacksOffWhileTheSinkFails(t *testing.T) {
	fs, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakySink{Sink: fs}
	h, r := newHarness(t, harnessOpts{sink: flaky, maxSinkWait: time.Nanosecond})
	flaky.setFailures(1 << 30)
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); res.Status != rotate.Spooled {
		t.Fatalf("result = %+v, want the secret spooled", res)
	}
	flaky.mu.Lock()
	before := flaky.puts
	flaky.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.RunReplayer(ctx)
	flaky.mu.Lock()
	passes := flaky.puts - before
	flaky.mu.Unlock()
	// 0, 0.25, 0.75, 1.75 s (with jitter, fewer): at most 5 passes in 2 s.
	if passes < 1 || passes > 5 {
		t.Errorf("%d replay passes in 2 s while the sink fails, want 1 to 5 (backoff from 250 ms)", passes)
	}
}

// TestNoStoredSecretStaysOnDisk: once the sink holds a secret, no copy of it remains under
// state_dir, in any file, raw or encoded (base64 as minted, the raw key bytes, hex), after
// many rotations: fresh ones, one whose sink write failed and was replayed, one recovered
// from a lost answer.
func TestNoStoredSecretStaysOnDisk(t *testing.T) {
	fs := &flakySink{Sink: newFileSink(t)}
	h, r := newHarness(t, harnessOpts{sink: fs, maxSinkWait: time.Millisecond})
	ctx := context.Background()
	for i := range 12 {
		switch i {
		case 4:
			fs.setFailures(100) // the sink is down: the secret waits in the spool
			if res := r.Rotate(ctx, h.dest, rotate.TriggerSchedule); res.Status != rotate.Spooled {
				t.Fatalf("rotation %d: %+v, want spooled", i, res)
			}
			fs.setFailures(0)
			if _, err := r.Replay(ctx); err != nil {
				t.Fatal(err)
			}
			continue
		case 7:
			h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint})
		}
		if res := r.Rotate(ctx, h.dest, rotate.TriggerSchedule); !res.OK() {
			t.Fatalf("rotation %d: %+v", i, res)
		}
	}
	h.assertStoredActive(t)
	var needles []string
	for _, k := range h.em.Keys(h.dest.ID)[:len(h.em.Keys(h.dest.ID))-1] { // all but the creation key
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(k.Secret, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, k.Secret, strings.TrimPrefix(k.Secret, "whsec_"), string(raw), hex.EncodeToString(raw))
	}
	err := filepath.WalkDir(h.stateDir, func(path string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds a stored secret (%d bytes of it)", path, len(n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// blockingSink holds each Put until release is closed, after telling entered.
type blockingSink struct {
	rotate.Sink
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSink) Put(ctx context.Context, path string, rec sink.Record, ifVersion sink.Version) (sink.Version, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Sink.Put(ctx, path, rec, ifVersion)
}

// TestSpooledGaugeCountsASecretWaitingInARotation: rotatord_spooled_secrets counts every
// secret held, also one a rotation holds while the sink has not answered yet (Vault slow
// or down: up to max_sink_wait), not only those handed to the replayer.
func TestSpooledGaugeCountsASecretWaitingInARotation(t *testing.T) {
	bs := &blockingSink{Sink: newFileSink(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	h, r := newHarness(t, harnessOpts{sink: bs})
	r.Know(h.dest.ID, sink.Record{}, false)
	done := make(chan rotate.Result)
	go func() { done <- r.Rotate(context.Background(), h.dest, rotate.TriggerManual) }()
	<-bs.entered
	if got := testutil.ToFloat64(h.m.SpooledSecrets); got != 1 {
		t.Errorf("rotatord_spooled_secrets = %v while the sink holds the write, want 1", got)
	}
	close(bs.release)
	if res := <-done; !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	if got := testutil.ToFloat64(h.m.SpooledSecrets); got != 0 {
		t.Errorf("rotatord_spooled_secrets = %v once stored, want 0", got)
	}
}

// TestOneEventAfterEveryStore: OnStored is called once for every secret the sink takes,
// whether it came from a fresh rotation or from the spool's replay (the place where
// notifications and history attach), and never for a write that did not happen.
func TestOneEventAfterEveryStore(t *testing.T) {
	fs := &flakySink{Sink: newFileSink(t)}
	h, _ := newHarness(t, harnessOpts{sink: fs, maxSinkWait: time.Millisecond})
	var mu sync.Mutex
	var events []rotate.Stored
	opts := h.opts
	opts.OnStored = func(s rotate.Stored) { mu.Lock(); events = append(events, s); mu.Unlock() }
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fresh := r.Rotate(ctx, h.dest, rotate.TriggerManual) // stored at once
	fs.setFailures(100)
	spooled := r.Rotate(ctx, h.dest, rotate.TriggerManual) // waits in the spool
	if !fresh.OK() || spooled.Status != rotate.Spooled || len(events) != 1 {
		t.Fatalf("fresh %+v, spooled %+v, %d events", fresh, spooled, len(events))
	}
	fs.setFailures(0)
	if _, err := r.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Replay(ctx); err != nil { // nothing left: no event
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].KeyID != fresh.KeyID || events[1].KeyID != spooled.KeyID ||
		events[1].Location != h.sink.Location(h.dest.Path) || events[1].Destination != h.dest.Name || events[1].DestinationID != h.dest.ID {
		t.Errorf("events = %+v; want the fresh key %s, then the replayed %s", events, fresh.KeyID, spooled.KeyID)
	}
}

// newFileSink is a file sink in a directory of the test's, for a wrapper to fail or hold.
func newFileSink(t *testing.T) rotate.Sink {
	t.Helper()
	s, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoredRecordCarriesTheHistory: each stored record names the keys stored before it
// (and a key found lost), so rotatord's own record survives the sink keeping only the latest.
func TestStoredRecordCarriesTheHistory(t *testing.T) {
	h, r := newHarness(t, harnessOpts{timeout: time.Second, realSleep: true, settle: 10 * time.Second})
	var stored []string
	for range 3 {
		if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); !res.OK() {
			t.Fatalf("rotation: %+v", res)
		}
		got, err := h.sink.Get(context.Background(), h.dest.Path)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, got.KeyID)
	}
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.LateCommit, Delay: 2 * time.Second})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if !res.OK() || len(res.LostKeyIDs) != 1 {
		t.Fatalf("late commit: %+v", res)
	}
	got, names := storedHistory(t, h)
	want := append(stored, "!"+res.LostKeyIDs[0])
	if strings.Join(names, " ") != strings.Join(want, " ") || got.History.Unreadable != "" {
		t.Errorf("history of the stored record = %v, want %v", names, want)
	}
	if strings.Contains(got.History.String(), "whsec_") {
		t.Error("the history holds a secret")
	}
}

// gathered reads one sample of reg: the metric name whose labels hold every one of values.
func gathered(t *testing.T, reg *prometheus.Registry, name string, values ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]bool{}
			for _, l := range m.GetLabel() {
				have[l.GetValue()] = true
			}
			for _, v := range values {
				if !have[v] {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("%s%v not gathered", name, values)
	return 0
}

// countingSink counts the reads of the sink it wraps.
type countingSink struct {
	rotate.Sink
	gets atomic.Int64
}

func (c *countingSink) Get(ctx context.Context, path string) (sink.Record, error) {
	c.gets.Add(1)
	return c.Sink.Get(ctx, path)
}

// TestRememberedHistoriesAreBounded: the rotator keeps the histories of the stored records
// it remembers only up to Options.HistoryBudget entries across destinations (a fleet that
// has rotated for a year holds sink.HistoryLength entries a destination: 8.6 KB each,
// 860 MB at 100,000). Within the budget a rotation reads nothing before it stores; over it
// the store reads the record first, and the record it writes still names every earlier key.
func TestRememberedHistoriesAreBounded(t *testing.T) {
	cs := &countingSink{Sink: newFileSink(t)}
	h, r := newHarness(t, harnessOpts{sink: cs, historyBudget: 1})
	var keys []string
	rotateOnce := func() (gets int64) {
		t.Helper()
		before := cs.gets.Load()
		res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
		if !res.OK() {
			t.Fatalf("rotation: %+v", res)
		}
		keys = append(keys, res.KeyID)
		return cs.gets.Load() - before
	}
	// The file sink proves each write by reading it back: one read a rotation.
	rotateOnce() // nothing stored: read, then the record is remembered
	if gets := rotateOnce(); gets != 1 {
		t.Errorf("second rotation read the sink %d times, want 1 (the read-back); its record (no history) is remembered", gets)
	}
	// The second record names one earlier key: within the budget of 1, kept.
	if rec := r.Recalled(h.dest.ID); rec == nil || len(rec.History.Entries) != 1 || r.HistoryKept() != 1 {
		t.Fatalf("after two rotations: remembered %+v, %d history entries kept", rec, r.HistoryKept())
	}
	if gets := rotateOnce(); gets != 1 {
		t.Errorf("third rotation read the sink %d times, want 1 (the read-back); its history was kept", gets)
	}
	// The third record names two: over the budget, its history is not kept.
	if rec := r.Recalled(h.dest.ID); rec == nil || rec.KeyID != keys[2] || len(rec.History.Entries) != 0 || r.HistoryKept() != 0 {
		t.Fatalf("after three rotations: remembered %+v, %d history entries kept", rec, r.HistoryKept())
	}
	if gets := rotateOnce(); gets != 2 {
		t.Errorf("fourth rotation read the sink %d times, want 2 (the history not kept, the read-back)", gets)
	}
	got, names := storedHistory(t, h)
	if strings.Join(names, " ") != strings.Join(keys[:3], " ") || got.KeyID != keys[3] {
		t.Errorf("fourth record: key %s, history %v; want key %s, history %v", got.KeyID, names, keys[3], keys[:3])
	}
	h.assertStoredActive(t)
}

// TestRememberedHistoryIsTheRecords: the rotator keeps a remembered history as the text the
// sink stores, and recalls it as the record had it: each entry's key, time (to the
// nanosecond), version and lost mark, from when it is complete, and why it could not be
// read; the budget counts its entries and gets them back when the record is replaced.
func TestRememberedHistoryIsTheRecords(t *testing.T) {
	h, r := newHarness(t, harnessOpts{})
	at := time.Date(2026, 3, 29, 0, 59, 59, 123456789, time.UTC)
	hist := sink.History{Since: at.Add(-time.Hour), Entries: []sink.HistoryEntry{
		{KeyID: "key_a", At: at, Version: "3"},
		{KeyID: "key_b", At: at.Add(time.Second), Lost: true},
		{KeyID: "key_c", At: at.Add(2 * time.Second), Version: "4"},
	}}
	id := h.dest.ID
	r.Know(id, sink.Record{DestinationID: id, KeyID: "key_d", RotatedAt: at.Add(time.Minute), Version: "5", History: hist}, true)
	got := r.Recalled(id)
	if got == nil || got.KeyID != "key_d" || got.Version != "5" || !got.History.Since.Equal(hist.Since) || got.History.Unreadable != "" || len(got.History.Entries) != len(hist.Entries) {
		t.Fatalf("recalled %+v, want the history %+v", got, hist)
	}
	for i, e := range got.History.Entries {
		if want := hist.Entries[i]; e.KeyID != want.KeyID || !e.At.Equal(want.At) || e.Version != want.Version || e.Lost != want.Lost {
			t.Errorf("entry %d: %+v, want %+v", i, e, want)
		}
	}
	if r.HistoryKept() != 3 {
		t.Errorf("%d history entries counted, want 3", r.HistoryKept())
	}
	r.Know(id, sink.Record{DestinationID: id, KeyID: "key_e", RotatedAt: at, History: sink.History{Unreadable: "history: entry 1 is not KEY_ID@TIME"}}, true)
	if got := r.Recalled(id); got == nil || got.History.Unreadable != "history: entry 1 is not KEY_ID@TIME" || len(got.History.Entries) != 0 || r.HistoryKept() != 0 {
		t.Errorf("an unreadable history: recalled %+v, %d entries counted", got, r.HistoryKept())
	}
}

// storedHistory reads the harness's stored record and names the keys its history holds,
// oldest first, a lost one with a leading "!".
func storedHistory(t *testing.T, h *harness) (sink.Record, []string) {
	t.Helper()
	got, err := h.sink.Get(context.Background(), h.dest.Path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got.History.Entries {
		n := e.KeyID
		if e.Lost {
			n = "!" + n
		}
		names = append(names, n)
	}
	return got, names
}

// TestRememberKeepsWhatARotationReads: the rotator keeps a stored record in a compact form;
// what it recalls is the record it was told, field for field, without the secret (and with
// the history only within the budget).
func TestRememberKeepsWhatARotationReads(t *testing.T) {
	_, r := newHarness(t, harnessOpts{sink: newFileSink(t)})
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for name, rec := range map[string]sink.Record{
		"its own destination, a history": {DestinationID: "d1", KeyID: "k2", Secret: secret.New("whsec_x"), RotatedAt: at,
			Slot: at.Truncate(time.Hour), Fence: 7, Version: "3",
			History: sink.History{Entries: []sink.HistoryEntry{{KeyID: "k1", At: at.Add(-time.Hour)}}, Since: at.Add(-48 * time.Hour)}},
		"another destination's record, an unreadable history": {DestinationID: "other", KeyID: "k9", Secret: secret.New("whsec_y"),
			RotatedAt: at, Version: "1", History: sink.History{Unreadable: "not JSON"}},
		"nothing stored": {},
	} {
		id := "d1"
		r.Know(id, rec, rec.KeyID != "")
		want := rec
		want.Secret = secret.Value{}
		if got := r.Recalled(id); got == nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("%s: recalled %+v, want %+v", name, got, want)
		}
	}
}
