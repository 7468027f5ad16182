package rotate

// Waiting: listing through 429s, the shared rate budget, backoff, and the bounds of one
// rotation's waits.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotatord/rotatord/internal/backoff"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// list lists the destination's keys, waiting through 429s and unsent requests.
func (r *Rotator) list(ctx context.Context, d Destination, budget *waitBudget) ([]webhookco.SigningKey, Outcome) {
	step := 0
	for {
		probe, err := r.acquire(ctx)
		if err != nil {
			return nil, Outcome{Class: Refused, Reason: ReasonCanceled, Err: err}
		}
		keys, err := r.opts.API.ListSigningSecrets(ctx, d.ID)
		o := Classify(err)
		r.release(probe, o)
		if o.Class != Retryable {
			return keys, o
		}
		if o.Reason == ReasonRateLimited {
			r.opts.Metrics.RateLimited.Inc()
		}
		wait := r.wait(o, &step)
		r.log.Warn("listing keys not accepted; waiting", zap.String("destination", d.Name), zap.String("reason", o.Reason), zap.Duration("retrying_in", wait))
		if err := budget.sleep(ctx, o.Reason, wait); err != nil {
			return nil, Outcome{Class: Refused, Reason: reasonForWaitError(err, o.Reason), Err: fmt.Errorf("%w: %w", err, o.Err)}
		}
	}
}

// acquire waits for the shared rate budget, if there is one.
func (r *Rotator) acquire(ctx context.Context) (bool, error) {
	if r.opts.RateGate == nil {
		return false, nil
	}
	return r.opts.RateGate.Acquire(ctx)
}

// release tells the shared budget how a call went: a 429 closes the gate for everybody.
func (r *Rotator) release(probe bool, o Outcome) {
	if r.opts.RateGate == nil {
		return
	}
	r.opts.RateGate.Release(probe, o, r.opts.Policy)
}

// Paced makes one call to webhook.co through the rotator's rate budget, the rotations' own,
// and returns its outcome: a 429 it meets holds back every caller and is counted
// (rotatord_rate_limited_total). For the calls outside a rotation (a replay's key listing,
// and the daemon's account listing, delivery watch and key check).
func (r *Rotator) Paced(ctx context.Context, call func(context.Context) error) Outcome {
	o := r.opts.RateGate.Once(ctx, r.opts.Policy, call)
	if o.Reason == ReasonRateLimited {
		r.opts.Metrics.RateLimited.Inc()
	}
	return o
}

// wait is how long to wait after o: the provider's Retry-After (capped) when it sent one,
// else exponential backoff from InitialBackoff to MaxBackoff, half fixed and half random,
// as the provider's own SDK does. A Retry-After of 0 paces nothing, so backoff applies.
func (r *Rotator) wait(o Outcome, step *int) time.Duration {
	return Backoff(r.opts.Policy, o, step, r.opts.Jitter)
}

// Backoff is how long to wait after o, the one formula every waiting caller shares: the
// provider's Retry-After (capped at MaxRetryAfter) when it sent one, else exponential
// backoff from InitialBackoff to MaxBackoff, half fixed and half random (jitter in [0, 1)),
// as the provider's own SDK does; step counts the backoffs so far.
func Backoff(p Policy, o Outcome, step *int, jitter func() float64) time.Duration {
	if o.HasRetryAfter && o.RetryAfter > 0 {
		return min(o.RetryAfter, p.MaxRetryAfter)
	}
	return backoff.Policy{Initial: p.InitialBackoff, Max: p.MaxBackoff}.Next(step, jitter)
}

// errWaitBudget says the rotation waited as long as it may.
var errWaitBudget = errors.New("gave up waiting")

// waitBudget bounds the total time one rotation waits on retryable outcomes, with one bound
// per cause: 429s (max_rate_limit_wait) and a webhook.co that cannot be reached
// (max_unreachable_wait). Each wait is announced through Options.OnWait first.
// With a lease, every wait keeps it held (pause), so no peer takes over a live holder.
type waitBudget struct {
	r      *Rotator
	dest   string
	claim  lease.Claim              // nil without a lease
	waited map[string]time.Duration // by reason
}

func (r *Rotator) newWaitBudget(d Destination, claim lease.Claim) *waitBudget {
	return &waitBudget{r: r, dest: d.Name, claim: claim, waited: map[string]time.Duration{}}
}

// pause waits d or until ctx is done, keeping the rotation's lease held meanwhile: renewed
// in steps no longer than a request's timeout (a length the lease can always promise). It
// fails with an error wrapping lease.ErrLost when the lease is lost: stop before rotating.
func (b *waitBudget) pause(ctx context.Context, d time.Duration) error {
	if b.claim == nil || b.r.opts.RequestTimeout <= 0 {
		return b.r.opts.Sleep(ctx, d)
	}
	for d > 0 {
		step := min(d, b.r.opts.RequestTimeout)
		if err := b.claim.Keep(ctx, step); errors.Is(err, lease.ErrLost) {
			b.r.opts.Metrics.LeaseLost.Inc()
			return err
		} else if err != nil {
			// Not renewed this time, but still held: the next step tries again.
			b.r.log.Warn("could not renew the lease while waiting; trying again at the next step", zap.String("destination", b.dest), zap.Error(err))
		}
		if err := b.r.opts.Sleep(ctx, step); err != nil {
			return err
		}
		d -= step
	}
	return nil
}

// sleep waits d after an outcome with reason, or fails when that would pass its bound.
func (b *waitBudget) sleep(ctx context.Context, reason string, d time.Duration) error {
	limit, setting := b.r.opts.Policy.MaxRateLimitWait, "max_rate_limit_wait"
	if reason == ReasonUnreachable {
		limit, setting = b.r.opts.Policy.MaxUnreachableWait, "max_unreachable_wait"
	}
	waited := b.waited[reason]
	if waited+d > limit {
		return fmt.Errorf("%w: the next wait (%s) would pass api.retry.%s (%s, %s waited)", errWaitBudget, d, setting, limit, waited)
	}
	if b.r.opts.OnWait != nil {
		b.r.opts.OnWait(Wait{Destination: b.dest, Reason: reason, For: d, Waited: waited, Max: limit})
	}
	b.waited[reason] = waited + d
	return b.pause(ctx, d)
}

func reasonForWaitError(err error, reason string) string {
	switch {
	case errors.Is(err, errWaitBudget):
		return reason
	case errors.Is(err, lease.ErrLost):
		return ReasonLeaseLost
	}
	return ReasonCanceled
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
