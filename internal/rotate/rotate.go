// Package rotate performs one rotation of one destination: ask webhook.co for a new signing
// secret, store it in the sink, read it back. Rotate is not idempotent at the provider, so
// every outcome is classified once (Classify) and an ambiguous one is never repeated
// blindly: the destination's key listing decides first whether a key was minted.
package rotate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// API is what a rotation needs from webhook.co. *webhookco.Client implements it.
type API interface {
	// Rotate mints a new key; not idempotent.
	Rotate(ctx context.Context, destinationID string) (webhookco.RotatedSecret, error)
	// ListSigningSecrets lists the destination's keys, newest first, without secrets.
	ListSigningSecrets(ctx context.Context, destinationID string) ([]webhookco.SigningKey, error)
}

// Sink stores secrets. The contract every implementation keeps:
//   - Get returns the record at path, or an error wrapping sink.ErrNotFound when there is none;
//   - Put replaces the record at path as a whole; a later Get returns exactly what was put;
//   - both honour ctx, never log or return the secret in an error, and are safe for
//     concurrent use on different paths (the Rotator never uses one path concurrently).
type Sink interface {
	Name() string
	Location(path string) string
	Get(ctx context.Context, path string) (sink.Record, error)
	Put(ctx context.Context, path string, rec sink.Record) error
}

var (
	_ API  = (*webhookco.Client)(nil)
	_ Sink = (*sink.Vault)(nil)
	_ Sink = (*sink.File)(nil)
)

// Destination is what a rotation needs to know of a configured destination.
type Destination struct {
	ID   string
	Name string
	Path string
}

// Triggers say why a rotation ran (the audit record's "trigger").
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// Policy bounds waiting and retrying; see config.Retry for each field's meaning.
type Policy struct {
	InitialBackoff      time.Duration
	MaxBackoff          time.Duration
	MaxRetryAfter       time.Duration
	MaxRateLimitWait    time.Duration
	MaxAmbiguousRetries int
	MaxSinkWait         time.Duration
}

// Options configure a Rotator. API, Sink, Logger and Metrics are required.
type Options struct {
	API     API
	Sink    Sink
	Logger  *zap.Logger
	Metrics *metrics.Metrics
	Policy  Policy
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done; nil means a timer. Tests record waits with it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1); nil means math/rand/v2.
	Jitter func() float64
	// OnResult, when set, is called after each rotation (the demo prints a line with it).
	OnResult func(Result)
}

func (o *Options) validate() error {
	switch {
	case o.API == nil:
		return errors.New("rotate: Options.API is required")
	case o.Sink == nil:
		return errors.New("rotate: Options.Sink is required")
	case o.Logger == nil:
		return errors.New("rotate: Options.Logger is required")
	case o.Metrics == nil:
		return errors.New("rotate: Options.Metrics is required")
	case o.Policy.InitialBackoff <= 0 || o.Policy.MaxBackoff < o.Policy.InitialBackoff:
		return errors.New("rotate: Policy needs 0 < InitialBackoff <= MaxBackoff")
	case o.Policy.MaxRetryAfter <= 0 || o.Policy.MaxRateLimitWait <= 0 || o.Policy.MaxSinkWait <= 0:
		return errors.New("rotate: Policy needs positive MaxRetryAfter, MaxRateLimitWait and MaxSinkWait")
	}
	return nil
}

// Rotator rotates destinations, never two rotations of one destination at once.
type Rotator struct {
	opts Options
	log  *zap.Logger

	mu     sync.Mutex
	states map[string]*destState // by destination id
}

// destState is what the Rotator remembers of a destination between rotations.
type destState struct {
	lock chan struct{} // held (full) while a rotation runs
	// unverified is set after an ambiguous outcome that was not yet checked: rotate must not
	// be sent before a listing compares the active key with baseline.
	unverified bool
	baseline   string
	// received is the newest key id whose secret this process received, if the sink may not
	// hold it (its write failed): the sink's key id is then stale as a baseline.
	received string
}

// New validates opts. It starts no goroutines.
func New(opts Options) (*Rotator, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	return &Rotator{opts: opts, log: opts.Logger.Named("rotate"), states: map[string]*destState{}}, nil
}

// Result is what one rotation did. It never holds the secret.
type Result struct {
	Destination string
	Trigger     string
	// KeyID is the stored key's id on success.
	KeyID string
	// Location is where the secret was stored.
	Location string
	OK       bool
	// Reason is the failure reason (one of FailureReasons); empty on success.
	Reason string
	// RotateCalls counts rotate requests sent.
	RotateCalls int
	// LostKeyIDs are keys minted for this destination whose secrets never arrived.
	LostKeyIDs []string
	Duration   time.Duration
	Err        error
}

func (r *Rotator) state(id string) *destState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.states[id]
	if !ok {
		st = &destState{lock: make(chan struct{}, 1)}
		r.states[id] = st
	}
	return st
}

// Busy reports whether a rotation of the destination is running now.
func (r *Rotator) Busy(destinationID string) bool {
	return len(r.state(destinationID).lock) > 0
}

// Rotate runs one rotation of d and records its metrics and audit log line. It waits while
// another rotation of d runs. Cancelling ctx stops waits (for the lock, for 429s, between
// retries) but never a rotate request in flight nor the storing of a secret already received.
func (r *Rotator) Rotate(ctx context.Context, d Destination, trigger string) Result {
	start := r.opts.Now()
	st := r.state(d.ID)
	res := Result{Destination: d.Name, Trigger: trigger, Location: r.opts.Sink.Location(d.Path)}

	select {
	case st.lock <- struct{}{}:
	case <-ctx.Done():
		res.Reason, res.Err = ReasonCanceled, fmt.Errorf("rotate %s: waiting for the rotation in flight: %w", d.Name, ctx.Err())
		r.finish(&res, start)
		return res
	}
	defer func() { <-st.lock }()
	r.opts.Metrics.RotationsInFlight.Inc()
	defer r.opts.Metrics.RotationsInFlight.Dec()

	r.rotateLocked(ctx, d, st, &res)
	r.finish(&res, start)
	return res
}

// finish records metrics and writes the one audit line of a rotation.
func (r *Rotator) finish(res *Result, start time.Time) {
	end := r.opts.Now()
	res.Duration = end.Sub(start)
	m := r.opts.Metrics
	m.RotationDuration.Observe(res.Duration.Seconds())
	fields := []zap.Field{
		zap.String("destination", res.Destination), zap.String("trigger", res.Trigger),
		zap.Int("rotate_calls", res.RotateCalls), zap.Duration("duration", res.Duration),
		zap.String("sink_location", res.Location),
	}
	if len(res.LostKeyIDs) > 0 {
		fields = append(fields, zap.Strings("lost_key_ids", res.LostKeyIDs))
	}
	if res.OK {
		m.Rotations.WithLabelValues(res.Destination, metrics.ResultSuccess).Inc()
		m.LastSuccess.WithLabelValues(res.Destination).Set(float64(end.Unix()))
		r.log.Info("rotation succeeded", append(fields, zap.String("outcome", "success"), zap.String("key_id", res.KeyID))...)
	} else {
		m.Rotations.WithLabelValues(res.Destination, metrics.ResultFailure).Inc()
		m.RotationFailures.WithLabelValues(res.Destination, res.Reason).Inc()
		r.log.Error("rotation failed", append(fields, zap.String("outcome", "failure"), zap.String("reason", res.Reason), zap.Error(res.Err))...)
	}
	if r.opts.OnResult != nil {
		r.opts.OnResult(*res)
	}
}

// rotateLocked is the rotation proper; the destination's lock is held.
func (r *Rotator) rotateLocked(ctx context.Context, d Destination, st *destState, res *Result) {
	log := r.log.With(zap.String("destination", d.Name))
	// Work that must not be cut short by shutdown (a rotate in flight, storing a received
	// secret) runs on a context that ignores cancellation; each request has its own timeout.
	keep := context.WithoutCancel(ctx)
	budget := &waitBudget{left: r.opts.Policy.MaxRateLimitWait}

	// 1. The last key rotatord knows: the sink's, unless this process knows better.
	stored, err := r.opts.Sink.Get(keep, d.Path)
	switch {
	case errors.Is(err, sink.ErrNotFound):
	case err != nil:
		// A sink we cannot read is one we may not be able to write: mint nothing.
		res.Reason, res.Err = ReasonSink, fmt.Errorf("rotate %s: read the current secret before rotating: %w", d.Name, err)
		return
	}
	baseline := stored.KeyID
	if st.received != "" {
		baseline = st.received
	}
	if st.unverified {
		baseline = st.baseline
	}

	// 2. Without a stored key, take the baseline from a listing just before the request.
	if baseline == "" && !st.unverified {
		keys, o := r.list(ctx, d, budget)
		if o.Class != Success {
			res.Reason, res.Err = o.Reason, fmt.Errorf("rotate %s: list keys before the first rotation: %w", d.Name, o.Err)
			return
		}
		baseline = webhookco.ActiveKeyID(keys)
	}

	verify := st.unverified
	ambiguousLeft := r.opts.Policy.MaxAmbiguousRetries
	backoffStep := 0
	for {
		// 3. After an ambiguous outcome: has a key been minted since baseline?
		if verify {
			keys, o := r.list(ctx, d, budget)
			if o.Class != Success {
				reason := ReasonUnverified
				if o.Reason == ReasonCanceled {
					reason = ReasonCanceled
				}
				res.Reason, res.Err = reason, fmt.Errorf("rotate %s: an earlier rotate may have minted a key and the listing that would tell failed, so rotate is held back: %w", d.Name, o.Err)
				return
			}
			st.unverified, verify = false, false
			if active := webhookco.ActiveKeyID(keys); active != baseline {
				// Minted, and its secret never reached us: recover with one more rotation.
				res.LostKeyIDs = append(res.LostKeyIDs, active)
				r.opts.Metrics.LostSecrets.WithLabelValues(d.Name).Inc()
				r.opts.Metrics.RotationFailures.WithLabelValues(d.Name, ReasonLost).Inc()
				log.Error("signing secret lost: a key was minted whose secret never reached rotatord; rotating once more to recover",
					zap.String("lost_key_id", active), zap.String("previous_key_id", baseline))
				baseline = active
			} else {
				log.Info("ambiguous rotate minted nothing; rotating again", zap.String("active_key_id", active))
			}
		}

		// 4. Rotate.
		res.RotateCalls++
		rotated, err := r.opts.API.Rotate(keep, d.ID)
		o := Classify(err)
		switch o.Class {
		case Success:
			st.received = rotated.KeyID
			r.store(ctx, d, rotated, res)
			return
		case Refused:
			res.Reason, res.Err = o.Reason, fmt.Errorf("rotate %s: refused, not retried: %w", d.Name, err)
			return
		case Retryable:
			if o.Reason == ReasonRateLimited {
				r.opts.Metrics.RateLimited.Inc()
			}
			wait := r.wait(o, &backoffStep)
			log.Warn("rotate not accepted; waiting", zap.String("reason", o.Reason), zap.Int("attempt", res.RotateCalls),
				zap.Duration("retrying_in", wait), zap.Bool("retry_after_header", o.HasRetryAfter))
			if err := budget.sleep(ctx, r.opts.Sleep, wait); err != nil {
				res.Reason, res.Err = reasonForWaitError(err, o.Reason), fmt.Errorf("rotate %s: %w after %d attempts: %w", d.Name, err, res.RotateCalls, o.Err)
				return
			}
		case Ambiguous:
			st.unverified, st.baseline = true, baseline
			if ambiguousLeft == 0 {
				res.Reason, res.Err = o.Reason, fmt.Errorf("rotate %s: outcome unknown, to be checked before the next rotate: %w", d.Name, err)
				return
			}
			ambiguousLeft--
			wait := r.wait(Outcome{}, &backoffStep)
			log.Warn("rotate outcome unknown; listing keys before anything else", zap.String("reason", o.Reason),
				zap.Int("attempt", res.RotateCalls), zap.Duration("retrying_in", wait), zap.Error(err))
			if err := r.opts.Sleep(ctx, wait); err != nil {
				res.Reason, res.Err = ReasonCanceled, fmt.Errorf("rotate %s: outcome unknown, to be checked before the next rotate: %w", d.Name, err)
				return
			}
			verify = true
		}
	}
}

// store writes the received secret, reads it back and compares, retrying with backoff for
// up to MaxSinkWait. It keeps going through shutdown: the secret exists nowhere else.
func (r *Rotator) store(ctx context.Context, d Destination, rotated webhookco.RotatedSecret, res *Result) {
	rec := sink.Record{DestinationID: d.ID, KeyID: rotated.KeyID, Secret: rotated.Secret, RotatedAt: r.opts.Now().UTC()}
	keep := context.WithoutCancel(ctx)
	deadline := r.opts.Now().Add(r.opts.Policy.MaxSinkWait)
	step := 0
	for attempt := 1; ; attempt++ {
		err := r.putAndVerify(keep, d.Path, rec)
		r.opts.Metrics.SinkWrite(err == nil)
		if err == nil {
			res.OK, res.KeyID = true, rec.KeyID
			r.state(d.ID).received = ""
			return
		}
		wait := r.wait(Outcome{}, &step)
		if r.opts.Now().Add(wait).After(deadline) {
			res.LostKeyIDs = append(res.LostKeyIDs, rec.KeyID)
			r.opts.Metrics.LostSecrets.WithLabelValues(d.Name).Inc()
			res.Reason, res.Err = ReasonSink, fmt.Errorf("rotate %s: key %s was minted but could not be stored in %s after %d attempts; the receivers still hold the previous secret, which stays valid until the next rotation: %w",
				d.Name, rec.KeyID, r.opts.Sink.Location(d.Path), attempt, err)
			return
		}
		r.log.Warn("sink write failed; retrying", zap.String("destination", d.Name), zap.String("key_id", rec.KeyID),
			zap.Int("attempt", attempt), zap.Duration("retrying_in", wait), zap.Error(err))
		_ = r.opts.Sleep(keep, wait)
	}
}

// putAndVerify writes rec and reads it back.
func (r *Rotator) putAndVerify(ctx context.Context, path string, rec sink.Record) error {
	if err := r.opts.Sink.Put(ctx, path, rec); err != nil {
		return err
	}
	got, err := r.opts.Sink.Get(ctx, path)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if !got.Same(rec) {
		return fmt.Errorf("read back from %s: stored key %s differs from the written key %s", r.opts.Sink.Location(path), got.KeyID, rec.KeyID)
	}
	return nil
}

// list lists the destination's keys, waiting through 429s and unsent requests.
func (r *Rotator) list(ctx context.Context, d Destination, budget *waitBudget) ([]webhookco.SigningKey, Outcome) {
	step := 0
	for {
		keys, err := r.opts.API.ListSigningSecrets(ctx, d.ID)
		o := Classify(err)
		if o.Class != Retryable {
			return keys, o
		}
		if o.Reason == ReasonRateLimited {
			r.opts.Metrics.RateLimited.Inc()
		}
		wait := r.wait(o, &step)
		r.log.Warn("listing keys not accepted; waiting", zap.String("destination", d.Name), zap.String("reason", o.Reason), zap.Duration("retrying_in", wait))
		if err := budget.sleep(ctx, r.opts.Sleep, wait); err != nil {
			return nil, Outcome{Class: Refused, Reason: reasonForWaitError(err, o.Reason), Err: fmt.Errorf("%w: %w", err, o.Err)}
		}
	}
}

// wait is how long to wait after o: the provider's Retry-After (capped) when it sent one,
// else exponential backoff from InitialBackoff to MaxBackoff, half fixed and half random,
// as the provider's own SDK does. A Retry-After of 0 paces nothing, so backoff applies.
func (r *Rotator) wait(o Outcome, step *int) time.Duration {
	p := r.opts.Policy
	if o.HasRetryAfter && o.RetryAfter > 0 {
		return min(o.RetryAfter, p.MaxRetryAfter)
	}
	d := p.InitialBackoff << min(*step, 20)
	if d <= 0 || d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	*step++
	return d/2 + time.Duration(r.opts.Jitter()*float64(d/2))
}

// errWaitBudget says the rotation waited as long as it may.
var errWaitBudget = errors.New("gave up waiting")

// waitBudget bounds the total time one rotation waits on retryable outcomes.
type waitBudget struct{ left time.Duration }

func (b *waitBudget) sleep(ctx context.Context, sleep func(context.Context, time.Duration) error, d time.Duration) error {
	if d > b.left {
		return fmt.Errorf("%w: the next wait (%s) would exceed max_rate_limit_wait", errWaitBudget, d)
	}
	b.left -= d
	return sleep(ctx, d)
}

func reasonForWaitError(err error, reason string) string {
	if errors.Is(err, errWaitBudget) {
		return reason
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
