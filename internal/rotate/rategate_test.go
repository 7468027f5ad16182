package rotate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// TestSharedRateLimitGate: while the provider answers 429 to every rotate for 10 s, twenty
// destinations rotating at once send a number of requests bounded by the waits (one probe
// per Retry-After), not by the number of destinations; afterwards all succeed.
func TestSharedRateLimitGate(t *testing.T) {
	if testing.Short() {
		t.Skip("long test (a 10 s rate window): left out by -short (make test-quick); make test runs it")
	}
	h, _ := newHarness(t, harnessOpts{realSleep: true})
	opts := h.opts
	opts.RateGate = rotate.NewRateGate(50, 4, nil)
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var dests []rotate.Destination
	for i := range 20 {
		name := fmt.Sprintf("d%02d", i)
		dests = append(dests, rotate.Destination{ID: h.em.AddDestination(name), Name: name, Path: "webhookco/" + name})
	}
	h.em.SetRandomFaults(1, []string{emulator.OpRotate}, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"})
	start := time.Now()
	time.AfterFunc(10*time.Second, func() { h.em.SetRandomFaults(0, nil) })

	var wg sync.WaitGroup
	results := make([]rotate.Result, len(dests))
	for i, d := range dests {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = r.Rotate(context.Background(), d, rotate.TriggerSchedule) }()
	}
	wg.Wait()
	limited := 0
	for _, req := range h.em.RequestsFor(emulator.OpRotate, "") {
		if req.Status == 429 && req.At.Sub(start) < 10*time.Second {
			limited++
		}
	}
	// The first wave fits the token bucket's burst (4); then one probe per 1 s wait. One
	// sleeper per destination would have sent about 200.
	if limited > 4+10+2 {
		t.Errorf("%d rotate requests answered 429 in 10 s by 20 destinations; want them bounded by the waits (about 14)", limited)
	}
	for i, res := range results {
		if !res.OK() {
			t.Errorf("%s: %+v", dests[i].Name, res)
		}
	}
	if n := len(h.em.RequestsFor(emulator.OpRotate, "")) - limited; n != 20 {
		t.Errorf("%d rotates after the 429s, want exactly one per destination", n)
	}
	t.Logf("%d requests answered 429 in the 10 s window", limited)
}

// TestOnceHoldsBackEveryCaller: a 429 met by a call made through Once (the account's
// listing, the delivery watch, the key check) closes the budget for every other caller,
// rotations included, for Retry-After (or the initial backoff without one); without a
// budget Once just calls.
func TestOnceHoldsBackEveryCaller(t *testing.T) {
	gate := rotate.NewRateGate(0, 1, nil)
	p := rotate.Policy{InitialBackoff: time.Hour, MaxRetryAfter: time.Hour}
	o := gate.Once(context.Background(), p, func(context.Context) error {
		return &webhookco.APIError{Operation: webhookco.OpListDeliveries, Status: 429, Code: "RATE_LIMITED"}
	})
	if o.Reason != rotate.ReasonRateLimited || o.Err == nil {
		t.Fatalf("a 429 through Once: %+v", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := gate.Acquire(ctx); err == nil {
		t.Error("a rotation went through the budget right after the listing's 429")
	}
	// A Retry-After of 0.2 s: the next caller probes once it has passed.
	gate = rotate.NewRateGate(0, 1, nil)
	gate.Once(context.Background(), p, func(context.Context) error {
		return &webhookco.APIError{Operation: webhookco.OpListDeliveries, Status: 429, HasRetryAfter: true, RetryAfter: 200 * time.Millisecond}
	})
	began := time.Now()
	probe, err := gate.Acquire(context.Background())
	if err != nil || !probe || time.Since(began) < 150*time.Millisecond {
		t.Errorf("after a Retry-After of 0.2 s: probe %v, err %v, after %s", probe, err, time.Since(began))
	}
	calls := 0
	var none *rotate.RateGate
	if o := none.Once(context.Background(), p, func(context.Context) error { calls++; return nil }); o.Class != rotate.Success || calls != 1 {
		t.Errorf("without a budget: %+v, %d calls", o, calls)
	}
}
