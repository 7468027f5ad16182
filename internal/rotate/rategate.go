package rotate

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateGate is the rate budget shared by every call made with one API key: a token bucket,
// and one gate that a 429 closes for everybody. When the gate reopens, one caller probes
// first; the others wait for its answer instead of all waking at once.
type RateGate struct {
	limiter *rate.Limiter // nil: no token bucket
	now     func() time.Time

	mu      sync.Mutex
	until   time.Time     // closed until then
	probing bool          // one caller is probing the reopened gate
	changed chan struct{} // closed and replaced whenever the gate changes
}

// NewRateGate returns a gate of perSecond calls with the given burst (perSecond <= 0: no limit).
func NewRateGate(perSecond float64, burst int, now func() time.Time) *RateGate {
	b := &RateGate{now: now, changed: make(chan struct{})}
	if b.now == nil {
		b.now = time.Now
	}
	if perSecond > 0 {
		b.limiter = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
	}
	return b
}

// Acquire waits until a call may be made. probe is true when this call tests a gate that a
// 429 had closed; its caller must report the outcome with Done.
func (b *RateGate) Acquire(ctx context.Context) (probe bool, err error) {
	for {
		// The token first, then the gate: a 429 that arrived while this caller waited for
		// its token still holds it back.
		if err := b.wait(ctx); err != nil {
			return false, err
		}
		b.mu.Lock()
		now := b.now()
		switch {
		case b.until.IsZero():
			b.mu.Unlock()
			return false, nil
		case !now.Before(b.until) && !b.probing:
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		// Closed, or a probe is out: wait for a change or for the gate's time.
		changed := b.changed
		d := b.until.Sub(now)
		if b.probing || d <= 0 {
			d = time.Hour
		}
		b.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (b *RateGate) wait(ctx context.Context) error {
	if b.limiter == nil {
		return nil
	}
	return b.limiter.Wait(ctx)
}

// Done reports a call's outcome: rateLimited closes the gate for wait (a probe's success
// opens it for everybody).
func (b *RateGate) Done(probe, rateLimited bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case rateLimited:
		if until := b.now().Add(wait); until.After(b.until) {
			b.until = until
		}
		if probe {
			b.probing = false
		}
	case probe:
		b.until, b.probing = time.Time{}, false
	default:
		return
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// Release is Done for a classified outcome: a 429 closes the gate for its Retry-After
// (capped at p.MaxRetryAfter), else for p.InitialBackoff.
func (b *RateGate) Release(probe bool, o Outcome, p Policy) {
	limited := o.Class == Retryable && o.Reason == ReasonRateLimited
	wait := p.InitialBackoff
	if o.HasRetryAfter && o.RetryAfter > 0 {
		wait = min(o.RetryAfter, p.MaxRetryAfter)
	}
	b.Done(probe, limited, wait)
}

// Once makes one call through the budget (b nil: none) and returns its outcome, classified.
// It does not retry: its callers (the account's listing, the delivery watch, the key check,
// a replay's tie-breaking key listing) try again at their next turn, and a 429 they meet
// holds back every caller of the budget, rotations included.
func (b *RateGate) Once(ctx context.Context, p Policy, call func(context.Context) error) Outcome {
	if b == nil {
		return Classify(call(ctx))
	}
	probe, err := b.Acquire(ctx)
	if err != nil {
		return Outcome{Class: Refused, Reason: ReasonCanceled, Err: err}
	}
	o := Classify(call(ctx))
	b.Release(probe, o, p)
	return o
}
