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

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
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
	// Put with ifVersion >= 0 is a check-and-set where the sink has versions (KV v2): it
	// fails with an error wrapping sink.ErrConflict unless the stored version is ifVersion.
	Put(ctx context.Context, path string, rec sink.Record, ifVersion int) error
}

var (
	_ API  = (*webhookco.Client)(nil)
	_ Sink = (*sink.Vault)(nil)
	_ Sink = (*sink.File)(nil)
)

// Lease serialises rotations of a destination across processes. *lease.Local (one host)
// and *lease.Vault (several hosts) implement it.
type Lease interface {
	// Acquire returns the destination's claim (see the lease.Claim contract), or an error
	// wrapping lease.ErrHeld when another process holds the destination past wait.
	Acquire(ctx context.Context, destinationID string, wait time.Duration) (lease.Claim, error)
}

var (
	_ Lease = (*lease.Local)(nil)
	_ Lease = (*lease.Vault)(nil)
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
	TriggerReplay   = "replay"
	TriggerDrift    = "drift"
	// TriggerCatchUp is the one extra rotation of a destination whose scheduled time passed
	// while rotatord was down.
	TriggerCatchUp = "catch_up"
	// TriggerFirst is the rotation at start of a destination with nothing stored.
	TriggerFirst = "first"
)

// Policy bounds waiting and retrying; see config.Retry for each field's meaning.
type Policy struct {
	InitialBackoff   time.Duration
	MaxBackoff       time.Duration
	MaxRetryAfter    time.Duration
	MaxRateLimitWait time.Duration
	// MaxUnreachableWait bounds the waits for a webhook.co that cannot be reached; 0 means 2m.
	MaxUnreachableWait  time.Duration
	MaxAmbiguousRetries int
	MaxSinkWait         time.Duration
}

// Options configure a Rotator. API, Sink, Spool, Logger and Metrics are required.
type Options struct {
	API  API
	Sink Sink
	// Spool keeps each received secret until the sink has it, and the intents of rotate
	// requests whose outcome is not yet known.
	Spool *spool.Spool
	// Lease, when set, keeps other processes from rotating a destination at the same time.
	Lease Lease
	// LeaseWait bounds how long a manual rotation waits for another process's rotation of
	// the same destination (0: fail at once, naming the holder). Scheduled ones never wait.
	LeaseWait time.Duration
	// RequestTimeout bounds one rotate request: a claim must stay held that long when the
	// request starts, so that it cannot expire with the request in flight.
	RequestTimeout time.Duration
	// Budget, when set, is the rate budget shared by all API calls of this API key.
	Budget *Budget
	// DryRun does everything but the rotate call and the sink write, and says what it
	// would have done.
	DryRun  bool
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
	// Resolve, when set, names the configured destination of a destination id. A spooled
	// secret is then stored at the path the config gives, never at the path its spool entry
	// records, and one whose destination left the config stays in the spool.
	Resolve func(destinationID string) (Destination, bool)
	// OnWait, when set, is called before each wait on a retryable outcome (a 429, an
	// unreachable webhook.co), so a person running `rotatord rotate` sees why it waits.
	OnWait func(Wait)
}

func (o *Options) validate() error {
	switch {
	case o.API == nil:
		return errors.New("rotate: Options.API is required")
	case o.Sink == nil:
		return errors.New("rotate: Options.Sink is required")
	case o.Spool == nil:
		return errors.New("rotate: Options.Spool is required")
	case o.Logger == nil:
		return errors.New("rotate: Options.Logger is required")
	case o.Metrics == nil:
		return errors.New("rotate: Options.Metrics is required")
	case o.Policy.InitialBackoff <= 0 || o.Policy.MaxBackoff < o.Policy.InitialBackoff:
		return errors.New("rotate: Policy needs 0 < InitialBackoff <= MaxBackoff")
	case o.Policy.MaxRetryAfter <= 0 || o.Policy.MaxRateLimitWait <= 0 || o.Policy.MaxSinkWait <= 0:
		return errors.New("rotate: Policy needs positive MaxRetryAfter, MaxRateLimitWait and MaxSinkWait")
	case o.Lease != nil && o.RequestTimeout <= 0:
		return errors.New("rotate: Options.RequestTimeout is required with a Lease")
	}
	return nil
}

// Rotator rotates destinations, never two rotations of one destination at once.
type Rotator struct {
	opts Options
	log  *zap.Logger

	mu     sync.Mutex
	states map[string]*destState // by destination id
	// replayErr is the last error of storing a spooled secret (nil: the spool drains).
	replayErr error
	// wake is signalled when a secret stays in the spool, so the replayer retries soon.
	wake chan struct{}
}

// destState is what the Rotator keeps in memory of a destination.
type destState struct {
	lock chan struct{} // held (full) while a rotation or replay of the destination runs
	// received is the newest key id whose secret this process received; it counts as known
	// when an ambiguous outcome is checked.
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
	if opts.Policy.MaxUnreachableWait <= 0 {
		opts.Policy.MaxUnreachableWait = 2 * time.Minute
	}
	return &Rotator{opts: opts, log: opts.Logger.Named("rotate"), states: map[string]*destState{}, wake: make(chan struct{}, 1)}, nil
}

// Wait describes one wait of a rotation on a retryable outcome.
type Wait struct {
	Destination string
	// Reason is the outcome waited on: ReasonRateLimited or ReasonUnreachable.
	Reason string
	// For is this wait; Waited is what the rotation waited for this reason before it, of Max.
	For, Waited, Max time.Duration
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
	// Spooled is true when the received secret is waiting in the spool for the sink.
	Spooled bool
	// Skipped is true when an automatic rotation (schedule, catch-up, drift) did not run
	// because another process was rotating the destination, or had already rotated it for
	// this slot; Err says which.
	Skipped bool
	// Fence is the fencing number of the lease the rotation held (0: none).
	Fence int64
	// RetryAt, set on a rotation skipped because another process holds an expiring lease,
	// is when that lease can be taken over: if its holder died mid-rotation, trying again
	// then recovers the slot within the lease TTL instead of a whole schedule period.
	RetryAt time.Time
	// RotatedAt is the stored secret's rotated_at on success.
	RotatedAt time.Time
	// Warning, on a success, names what did not go as it should (WarningMetadataRefused).
	Warning string
	// DryRun is true when nothing was rotated or written on purpose; Plan says what would have been.
	DryRun   bool
	Plan     string
	Duration time.Duration
	Err      error
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

// Rotate runs one rotation of d and records its metrics and audit log line. It waits while
// another rotation of d runs. Cancelling ctx stops waits (for the lock, for 429s, between
// retries) but never a rotate request in flight nor the spooling of a secret received.
func (r *Rotator) Rotate(ctx context.Context, d Destination, trigger string) Result {
	return r.RotateSlot(ctx, d, trigger, time.Time{})
}

// RotateSlot is Rotate for a scheduled slot (scheduler.Fire.Slot): when the sink shows the
// slot already rotated (by another replica), it skips. A zero slot never skips.
func (r *Rotator) RotateSlot(ctx context.Context, d Destination, trigger string, slot time.Time) Result {
	return r.rotate(ctx, d, trigger, condition{slot: slot})
}

// RotateDrifted is the rotation of on_drift: rotate after drift, a drifted result of
// CheckDrift. It skips when the sink no longer holds the key the check saw: another process
// rotated in between, and the drift is settled.
func (r *Rotator) RotateDrifted(ctx context.Context, d Destination, drift Drift) Result {
	stored := drift.Stored
	return r.rotate(ctx, d, TriggerDrift, condition{stored: &stored})
}

// RotateFirst is the first rotation of a destination with nothing stored (started with
// first_rotation: at_start). It skips when the sink holds a secret by the time it runs:
// another replica, or a manual rotate, stored one first.
func (r *Rotator) RotateFirst(ctx context.Context, d Destination) Result {
	return r.rotate(ctx, d, TriggerFirst, condition{nothingStored: true})
}

// condition is what a rotation checks once it holds the destination, before rotating.
type condition struct {
	// nothingStored, when set, skips the rotation if the sink holds any secret.
	nothingStored bool
	// slot, when set, skips the rotation if the sink holds this slot or a later one.
	slot time.Time
	// stored, when set, skips the rotation unless the sink still holds this key id.
	stored *string
}

func (r *Rotator) rotate(ctx context.Context, d Destination, trigger string, cond condition) Result {
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
	var held lease.Claim // nil without a Lease
	if r.opts.Lease != nil {
		// Only a person waits (or is told who holds it); the daemon's own triggers skip.
		manual := trigger == TriggerManual
		wait := r.opts.LeaseWait
		if !manual {
			wait = 0
		}
		claim, err := r.acquireLease(ctx, d, wait)
		switch {
		case errors.Is(err, lease.ErrHeld) && !manual:
			res.Skipped, res.Err = true, err
			if held := (*lease.HeldError)(nil); errors.As(err, &held) && !held.ExpiresAt.IsZero() {
				res.RetryAt = held.ExpiresAt.Add(lease.MaxClockSkew + time.Second)
			}
			// The holder's rotation is not ours to count, but what is stored keeps the
			// freshness of this replica's metrics true.
			if stored, gerr := r.opts.Sink.Get(ctx, d.Path); gerr == nil {
				r.opts.Metrics.Freshness.SetRotated(d.Name, stored.RotatedAt)
			}
			r.finish(&res, start)
			return res
		case errors.Is(err, lease.ErrHeld):
			res.Reason, res.Err = ReasonBusy, fmt.Errorf("rotate %s: %w", d.Name, err)
			r.finish(&res, start)
			return res
		case err != nil:
			res.Reason, res.Err = ReasonLease, fmt.Errorf("rotate %s: not rotating without the destination's lease: %w", d.Name, err)
			r.finish(&res, start)
			return res
		}
		res.Fence = claim.Fence()
		defer r.releaseLease(ctx, d, claim)
		held = claim
	}
	r.opts.Metrics.RotationsInFlight.Inc()
	defer r.opts.Metrics.RotationsInFlight.Dec()

	r.rotateLocked(ctx, d, st, &res, cond, held)
	res.Location = r.opts.Sink.Location(d.Path) // exact once the sink knows its layout (KV version)
	r.finish(&res, start)
	return res
}

// Block records a rotation of d that was not attempted (for example because the sink
// refused its path at start): a failure with reason, counted and logged like any other.
func (r *Rotator) Block(d Destination, trigger, reason string, err error) Result {
	res := Result{Destination: d.Name, Trigger: trigger, Location: r.opts.Sink.Location(d.Path), Reason: reason, Err: err}
	r.finish(&res, r.opts.Now())
	return res
}

// finish records metrics and writes the one audit line of a rotation.
func (r *Rotator) finish(res *Result, start time.Time) {
	end := r.opts.Now()
	res.Duration = end.Sub(start)
	m := r.opts.Metrics
	m.RotationDuration.Observe(res.Duration.Seconds())
	r.updateSpoolGauge()
	fields := []zap.Field{
		zap.String("destination", res.Destination), zap.String("trigger", res.Trigger),
		zap.Int("rotate_calls", res.RotateCalls), zap.Duration("duration", res.Duration),
		zap.String("sink_location", res.Location),
	}
	if len(res.LostKeyIDs) > 0 {
		fields = append(fields, zap.Strings("lost_key_ids", res.LostKeyIDs))
	}
	if res.Spooled {
		fields = append(fields, zap.Bool("spooled", true))
	}
	if res.DryRun {
		r.log.Info("dry run: "+res.Plan, append(fields, zap.String("outcome", "dry_run"))...)
		if r.opts.OnResult != nil {
			r.opts.OnResult(*res)
		}
		return
	}
	if res.Skipped {
		m.SkippedRotations.WithLabelValues(res.Destination).Inc()
		r.log.Info("rotation skipped: another process holds the destination or already rotated it for this slot", append(fields, zap.String("outcome", "skipped"), zap.Error(res.Err))...)
		if r.opts.OnResult != nil {
			r.opts.OnResult(*res)
		}
		return
	}
	m.RecordOutcome(res.Destination, res.OK, res.Reason)
	if res.OK {
		m.Rotations.WithLabelValues(res.Destination, metrics.ResultSuccess).Inc()
		m.LastSuccess.WithLabelValues(res.Destination).Set(float64(end.Unix()))
		m.Freshness.SetRotated(res.Destination, res.RotatedAt)
		if res.Warning != "" {
			r.log.Warn("rotation succeeded with a warning", append(fields, zap.String("outcome", "success"), zap.String("key_id", res.KeyID), zap.String("warning", res.Warning))...)
		} else {
			r.log.Info("rotation succeeded", append(fields, zap.String("outcome", "success"), zap.String("key_id", res.KeyID))...)
		}
	} else {
		m.Rotations.WithLabelValues(res.Destination, metrics.ResultFailure).Inc()
		m.RotationFailures.WithLabelValues(res.Destination, res.Reason).Inc()
		if res.KeyID != "" {
			fields = append(fields, zap.String("key_id", res.KeyID))
		}
		r.log.Error("rotation failed", append(fields, zap.String("outcome", "failure"), zap.String("reason", res.Reason), zap.Error(res.Err))...)
	}
	if r.opts.OnResult != nil {
		r.opts.OnResult(*res)
	}
}

// rotateLocked is the rotation proper; the destination's lock (and lease) is held.
// claim is the destination's lease claim, nil without a Lease.
func (r *Rotator) rotateLocked(ctx context.Context, d Destination, st *destState, res *Result, cond condition, claim lease.Claim) {
	log := r.log.With(zap.String("destination", d.Name))
	// Work that must not be cut short by shutdown (a rotate in flight, spooling a received
	// secret) runs on a context that ignores cancellation; each request has its own timeout.
	keep := context.WithoutCancel(ctx)
	budget := r.newWaitBudget(d)

	// 1. A secret received earlier and not yet stored comes first: rotating again now would
	// revoke the key the receivers may still hold.
	if r.opts.DryRun {
		r.dryRun(ctx, d, res)
		return
	}
	if err := r.storePending(ctx, d, claim); err != nil {
		res.Reason, res.Err = ClassifySink(err).Reason, fmt.Errorf("rotate %s: not rotating while a secret received earlier waits in the spool: %w", d.Name, err)
		return
	}

	// 2. The keys rotatord knows: the sink's, this process's latest, and a durable intent
	// left by a rotate whose outcome was never learnt (a crash, an ambiguous answer).
	known := map[string]bool{}
	stored, err := r.opts.Sink.Get(keep, d.Path)
	// before is what the sink held before rotating: the first write checks-and-sets against
	// it (nil when the sink could not be read: the write then reads first).
	var before *sink.Record
	switch {
	case err == nil:
		known[stored.KeyID] = true
		before = &stored
	case errors.Is(err, sink.ErrNotFound):
		before = &sink.Record{} // nothing stored: check-and-set version 0
	default:
		log.Warn("sink unreadable before rotating; the spool will hold the new secret until it is back", zap.Error(err))
	}
	// A replica (or this process, before a restart) already rotated for this slot.
	if slot := cond.slot; !slot.IsZero() && before != nil && before.KeyID != "" && !before.Slot.Before(slot) {
		res.Skipped, res.KeyID = true, stored.KeyID
		res.Err = fmt.Errorf("slot %s already rotated: key %s stored at %s under lease fence %d", slot.UTC().Format(time.RFC3339),
			stored.KeyID, stored.RotatedAt.UTC().Format(time.RFC3339), stored.Fence)
		r.opts.Metrics.Freshness.SetRotated(d.Name, stored.RotatedAt)
		return
	}
	if cond.nothingStored && before != nil && before.KeyID != "" {
		res.Skipped, res.KeyID = true, stored.KeyID
		res.Err = fmt.Errorf("first rotation: key %s was stored meanwhile, at %s", stored.KeyID, stored.RotatedAt.UTC().Format(time.RFC3339))
		r.opts.Metrics.Freshness.SetRotated(d.Name, stored.RotatedAt)
		return
	}
	// Drift seen with one stored key, and another is stored now: someone rotated since.
	if cond.stored != nil && before != nil && before.KeyID != *cond.stored {
		res.Skipped, res.KeyID = true, stored.KeyID
		res.Err = fmt.Errorf("drift settled: the stored key changed from %s to %s since the drift check", *cond.stored, stored.KeyID)
		return
	}
	if st.received != "" {
		known[st.received] = true
	}
	intent, unverified, err := r.opts.Spool.Intent(d.ID)
	if err != nil {
		res.Reason, res.Err = ReasonSpool, fmt.Errorf("rotate %s: %w", d.Name, err)
		return
	}
	baseline := stored.KeyID
	if st.received != "" {
		baseline = st.received
	}
	if unverified && intent.BaselineKeyID != "" {
		baseline = intent.BaselineKeyID
		known[baseline] = true
	}
	// The lease's previous holder may have sent a rotate whose outcome nobody learnt (it
	// died holding the lease): list first, as after our own ambiguous outcome.
	if claim != nil && claim.Unsettled() && !unverified {
		log.Warn("the lease's previous holder left a rotation unsettled; listing keys before rotating",
			zap.Bool("took_over_expired_lease", claim.TookOver()), zap.Int64("lease_fence", claim.Fence()))
		unverified = true
	}

	// 3. Without a known key, take the baseline from a listing just before the request.
	if baseline == "" && !unverified {
		keys, o := r.list(ctx, d, budget)
		if o.Class != Success {
			res.Reason, res.Err = o.Reason, fmt.Errorf("rotate %s: list keys before rotating: %w", d.Name, o.Err)
			return
		}
		baseline = webhookco.ActiveKeyID(keys)
		known[baseline] = true
	}

	verify := unverified
	ambiguousLeft := r.opts.Policy.MaxAmbiguousRetries
	backoffStep := 0
	for {
		// 4. After an ambiguous outcome: has a key been minted that rotatord does not hold?
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
			verify = false
			if active := webhookco.ActiveKeyID(keys); !known[active] {
				// Minted, and its secret never reached us: recover with one more rotation.
				res.LostKeyIDs = append(res.LostKeyIDs, active)
				r.opts.Metrics.LostSecrets.WithLabelValues(d.Name).Inc()
				r.opts.Metrics.RotationFailures.WithLabelValues(d.Name, ReasonLost).Inc()
				log.Error("signing secret lost: a key was minted whose secret never reached rotatord; rotating once more to recover",
					zap.String("lost_key_id", active), zap.String("previous_key_id", baseline))
				baseline = active
				known[active] = true
			} else {
				log.Info("the unknown outcome minted no key rotatord lacks; rotating", zap.String("active_key_id", active))
				baseline = active
			}
		}

		// 5. Record the intent durably, then rotate.
		if err := r.opts.Spool.PutIntent(spool.Intent{DestinationID: d.ID, Destination: d.Name, BaselineKeyID: baseline, StartedAt: r.opts.Now().UTC()}); err != nil {
			res.Reason, res.Err = ReasonSpool, fmt.Errorf("rotate %s: not rotating without a durable record of the attempt: %w", d.Name, err)
			return
		}
		// The lease must outlive the request: renewed now if less is left, and a lease lost
		// (another process may rotate) stops here, before anything is minted.
		if claim != nil {
			if err := claim.Keep(ctx, r.opts.RequestTimeout); err != nil {
				r.clearIntent(d)
				res.Reason, res.Err = ReasonLease, fmt.Errorf("rotate %s: not rotating: %w", d.Name, err)
				if errors.Is(err, lease.ErrLost) {
					r.opts.Metrics.LeaseLost.Inc()
					res.Reason = ReasonLeaseLost
				}
				return
			}
		}
		failpoint("before_request")
		probe, err := r.acquire(ctx)
		if err != nil {
			r.clearIntent(d)
			res.Reason, res.Err = ReasonCanceled, fmt.Errorf("rotate %s: waiting for the rate budget: %w", d.Name, err)
			return
		}
		res.RotateCalls++
		rotated, err := r.opts.API.Rotate(keep, d.ID)
		o := Classify(err)
		r.release(probe, o)
		switch o.Class {
		case Success:
			failpoint("after_response")
			st.received = rotated.KeyID
			r.keep(ctx, d, rotated, res, before, cond.slot, claim)
			return
		case Refused:
			r.clearIntent(d)
			res.Reason, res.Err = o.Reason, fmt.Errorf("rotate %s: refused, not retried: %w", d.Name, err)
			return
		case Retryable:
			if o.Reason == ReasonRateLimited {
				r.opts.Metrics.RateLimited.Inc()
			}
			wait := r.wait(o, &backoffStep)
			log.Warn("rotate not accepted; waiting", zap.String("reason", o.Reason), zap.Int("attempt", res.RotateCalls),
				zap.Duration("retrying_in", wait), zap.Bool("retry_after_header", o.HasRetryAfter))
			if err := budget.sleep(ctx, o.Reason, wait); err != nil {
				r.clearIntent(d)
				res.Reason, res.Err = reasonForWaitError(err, o.Reason), fmt.Errorf("rotate %s: %w after %d attempts: %w", d.Name, err, res.RotateCalls, o.Err)
				return
			}
		case Ambiguous:
			// The intent stays: until a listing settles it, even a restart lists first.
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

// Drift is the result of one drift check.
type Drift struct {
	// Checked is false when the destination was busy (a rotation runs) or has no stored secret.
	Checked bool
	// Drifted is true when the provider's active key is neither the stored one nor one
	// rotatord holds in its spool: rotated outside rotatord, or a response lost.
	Drifted             bool
	ActiveKeyID, Stored string
}

// CheckDrift compares the provider's active key of d with the stored one, and records the
// result in rotatord_drift{destination}.
func (r *Rotator) CheckDrift(ctx context.Context, d Destination) (Drift, error) {
	st := r.state(d.ID)
	select {
	case st.lock <- struct{}{}:
	default:
		return Drift{}, nil // a rotation runs; it settles the key itself
	}
	defer func() { <-st.lock }()
	if r.opts.Lease != nil {
		// Another process rotating it would look like drift: check only while holding it.
		claim, err := r.acquireLease(ctx, d, 0)
		if errors.Is(err, lease.ErrHeld) {
			return Drift{}, nil
		}
		if err != nil {
			return Drift{}, fmt.Errorf("drift check of %s: %w", d.Name, err)
		}
		defer r.releaseLease(ctx, d, claim)
	}
	stored, err := r.opts.Sink.Get(ctx, d.Path)
	if errors.Is(err, sink.ErrNotFound) {
		return Drift{}, nil
	}
	if err != nil {
		return Drift{}, fmt.Errorf("drift check of %s: %w", d.Name, err)
	}
	keys, o := r.list(ctx, d, r.newWaitBudget(d))
	if o.Class != Success {
		return Drift{}, fmt.Errorf("drift check of %s: %w", d.Name, o.Err)
	}
	active := webhookco.ActiveKeyID(keys)
	known := map[string]bool{stored.KeyID: true, st.received: true}
	if ids, err := r.opts.Spool.PendingKeyIDs(d.ID); err == nil {
		for _, id := range ids {
			known[id] = true
		}
	}
	res := Drift{Checked: true, Drifted: !known[active], ActiveKeyID: active, Stored: stored.KeyID}
	if res.Drifted {
		r.opts.Metrics.Drift.WithLabelValues(d.Name).Set(1)
		r.opts.Metrics.DriftDetected.WithLabelValues(d.Name).Inc()
		r.log.Warn("drift: the provider's active key is not the stored one (rotated outside rotatord, or a response was lost)",
			zap.String("destination", d.Name), zap.String("active_key_id", active), zap.String("stored_key_id", stored.KeyID))
	} else {
		r.opts.Metrics.Drift.WithLabelValues(d.Name).Set(0)
	}
	return res, nil
}

// dryRun reads what a rotation would read and says what it would do.
func (r *Rotator) dryRun(ctx context.Context, d Destination, res *Result) {
	res.DryRun = true
	pending, _ := r.opts.Spool.PendingKeyIDs(d.ID)
	current := "no stored secret"
	stored, err := r.opts.Sink.Get(ctx, d.Path)
	res.Location = r.opts.Sink.Location(d.Path)
	if err == nil {
		current = "stored key " + stored.KeyID + " rotated " + stored.RotatedAt.Format(time.RFC3339)
	} else if !errors.Is(err, sink.ErrNotFound) {
		current = "sink unreadable: " + err.Error()
	}
	if len(pending) > 0 {
		res.Plan = fmt.Sprintf("would first store spooled keys %v, then rotate %s (%s) and store the new secret at %s", pending, d.Name, current, res.Location)
		return
	}
	res.Plan = fmt.Sprintf("would rotate %s (%s) and store the new secret at %s", d.Name, current, res.Location)
}

// keep spools a received secret, then stores it. Once spooled, a failed store leaves the
// secret in the spool for the replayer; the rotation reports reason sink.
func (r *Rotator) keep(ctx context.Context, d Destination, rotated webhookco.RotatedSecret, res *Result, before *sink.Record, slot time.Time, claim lease.Claim) {
	now := r.opts.Now().UTC()
	e := spool.Entry{DestinationID: d.ID, Destination: d.Name, Path: d.Path, KeyID: rotated.KeyID, Secret: rotated.Secret, RotatedAt: now, SpooledAt: now, Slot: slot}
	if claim != nil {
		e.Fence = claim.Fence()
	}
	res.KeyID, res.RotatedAt = rotated.KeyID, now
	spoolErr := r.opts.Spool.Put(e)
	if spoolErr != nil {
		r.log.Error("could not spool a received secret; storing it from memory", zap.String("destination", d.Name), zap.String("key_id", e.KeyID), zap.Error(spoolErr))
	} else {
		failpoint("after_spool_write")
		// The key is known now, durably: the intent has served.
		r.clearIntent(d)
	}
	// The provider just answered with this key: it is the active one. That decides against
	// whatever is stored, whatever its rotated_at or fence (a lease entry deleted in Vault
	// starts its fences again at 1). The claim, checked before each write, and
	// check-and-set keep a holder that lost its lease from writing.
	warning, err := r.store(ctx, e, e.KeyID, r.opts.Policy.MaxSinkWait, before, claim)
	reason := ClassifySink(err).Reason
	switch {
	case err == nil:
		res.OK, res.Warning = true, warning
		if spoolErr == nil {
			failpoint("before_spool_remove")
			if rmErr := r.opts.Spool.Remove(e.DestinationID, e.KeyID); rmErr != nil {
				r.log.Error("secret stored, but its spool entry could not be removed; the replayer will find it already stored", zap.String("destination", d.Name), zap.Error(rmErr))
			}
		} else {
			r.clearIntent(d)
		}
	case spoolErr == nil:
		res.Spooled = true
		res.Reason, res.Err = reason, fmt.Errorf("rotate %s: key %s is kept in the spool until %s accepts it: %w", d.Name, e.KeyID, r.opts.Sink.Location(d.Path), err)
		r.noteReplayError(err)
	default:
		res.LostKeyIDs = append(res.LostKeyIDs, e.KeyID)
		r.opts.Metrics.LostSecrets.WithLabelValues(d.Name).Inc()
		res.Reason, res.Err = reason, fmt.Errorf("rotate %s: key %s was received but neither spooled (%v) nor stored in %s: %w", d.Name, e.KeyID, spoolErr, r.opts.Sink.Location(d.Path), err)
	}
}

func (r *Rotator) clearIntent(d Destination) {
	if err := r.opts.Spool.ClearIntent(d.ID); err != nil {
		r.log.Warn("could not clear a rotate intent; the next rotation will list keys first", zap.String("destination", d.Name), zap.Error(err))
	}
}

// store writes e to the sink with stale-write protection, retrying with backoff for up to
// maxWait (and no longer once ctx is done). active, when known, is the provider's active key.
// before, when set, is what the sink held when the rotation began: the first attempt uses
// it instead of reading again; a conflict or a failure makes the next attempt read.
// claim, when set, must still be held before each attempt.
// It returns the warning of a write that succeeded only in part (see ClassifySink).
func (r *Rotator) store(ctx context.Context, e spool.Entry, active string, maxWait time.Duration, before *sink.Record, claim lease.Claim) (string, error) {
	keep := context.WithoutCancel(ctx)
	deadline := r.opts.Now().Add(maxWait)
	step := 0
	for attempt := 1; ; attempt++ {
		var err error
		if claim != nil {
			// Never write with a fencing number that another holder has superseded.
			if err = claim.Keep(keep, 0); errors.Is(err, lease.ErrLost) {
				r.opts.Metrics.LeaseLost.Inc()
				return "", fmt.Errorf("not written, the secret stays in the spool: %w", err)
			}
		}
		var warning string
		if err == nil {
			warning, err = r.storeOnce(keep, e, active, before)
		}
		before = nil
		if err == nil {
			return warning, nil
		}
		r.opts.Metrics.SinkWrite(false)
		if ClassifySink(err).Class == Refused {
			return "", err // a refusal does not heal within max_sink_wait: the replayer retries slowly
		}
		wait := r.wait(Outcome{}, &step)
		if errors.Is(err, sink.ErrConflict) {
			wait = 0 // someone wrote in between: read again and decide again, at once
		}
		if ctx.Err() != nil || r.opts.Now().Add(wait).After(deadline) {
			return "", err
		}
		r.opts.Metrics.SinkRetries.Inc()
		r.log.Warn("sink write failed; retrying", zap.String("destination", e.Destination), zap.String("key_id", e.KeyID),
			zap.Int("attempt", attempt), zap.Duration("retrying_in", wait), zap.Error(err))
		if err := r.opts.Sleep(ctx, wait); err != nil {
			return "", fmt.Errorf("%w (stopped retrying at shutdown)", err)
		}
	}
}

// storeOnce reads what is stored (unless cur already holds it), refuses to replace a newer
// secret, writes with check-and-set against the version read, and reads back.
func (r *Rotator) storeOnce(ctx context.Context, e spool.Entry, active string, known *sink.Record) (warning string, err error) {
	rec := sink.Record{DestinationID: e.DestinationID, KeyID: e.KeyID, Secret: e.Secret, RotatedAt: e.RotatedAt, Slot: e.Slot, Fence: e.Fence}
	var cur sink.Record
	switch {
	case known == nil:
		cur, err = r.opts.Sink.Get(ctx, e.Path)
	case known.KeyID == "":
		err = sink.ErrNotFound
	default:
		cur = *known
	}
	version := 0
	switch {
	case errors.Is(err, sink.ErrNotFound):
	case err != nil:
		return "", err
	default:
		if cur.Same(rec) {
			return "", nil // already stored (a crash between the write and the spool removal)
		}
		if newer(cur, rec, active) {
			r.log.Warn("secret is older than the stored one; not written", zap.String("destination", e.Destination),
				zap.String("key_id", e.KeyID), zap.String("stored_key_id", cur.KeyID),
				zap.Int64("lease_fence", e.Fence), zap.Int64("stored_lease_fence", cur.Fence))
			r.opts.Metrics.StaleWritesSkipped.Inc()
			return "", nil
		}
		version = cur.Version
	}
	if err := r.opts.Sink.Put(ctx, e.Path, rec, version); err != nil {
		o := ClassifySink(err)
		if o.Class != Success {
			return "", err
		}
		// The secret is written; its description is not. Not a silent success.
		r.opts.Metrics.SinkPartialWrites.Inc()
		r.log.Warn("secret stored, but the sink refused its metadata", zap.String("destination", e.Destination),
			zap.String("key_id", e.KeyID), zap.String("warning", o.Reason), zap.Error(err))
		warning = o.Reason
	}
	failpoint("after_sink_write")
	got, err := r.opts.Sink.Get(ctx, e.Path)
	if err != nil {
		return "", fmt.Errorf("read back: %w", err)
	}
	if !got.Same(rec) {
		return "", fmt.Errorf("read back from %s: stored key %s differs from the written key %s", r.opts.Sink.Location(e.Path), got.KeyID, rec.KeyID)
	}
	r.opts.Metrics.SinkWrite(true)
	return warning, nil
}

// newer reports whether the stored record must be kept over the candidate: the provider's
// active key wins when it is known; else the higher lease fence, when both were minted
// under different leases (a holder that lost its lease never overwrites its successor);
// else the later rotated_at.
func newer(stored, candidate sink.Record, active string) bool {
	switch active {
	case "":
	case candidate.KeyID:
		return false
	case stored.KeyID:
		return true
	}
	if stored.Fence > 0 && candidate.Fence > 0 && stored.Fence != candidate.Fence {
		return stored.Fence > candidate.Fence
	}
	return stored.RotatedAt.After(candidate.RotatedAt)
}

// storePending stores the spooled secrets of d, oldest first. The lock of d is held.
func (r *Rotator) storePending(ctx context.Context, d Destination, claim lease.Claim) error {
	entries, corrupt, err := r.opts.Spool.Pending(d.ID)
	if err != nil {
		return err
	}
	r.reportCorrupt(corrupt)
	for _, e := range entries {
		e.Path = d.Path // the configured path, whatever the entry records
		if err := r.replayEntry(ctx, e, r.opts.Policy.MaxSinkWait, claim); err != nil {
			return err
		}
	}
	return nil
}

// replayEntry stores one spooled secret, with the provider's active key as tie-breaker
// when it can be listed, and removes it from the spool once stored (or found stale).
func (r *Rotator) replayEntry(ctx context.Context, e spool.Entry, maxWait time.Duration, claim lease.Claim) error {
	active := ""
	if keys, err := r.opts.API.ListSigningSecrets(ctx, e.DestinationID); err == nil {
		active = webhookco.ActiveKeyID(keys)
	}
	if _, err := r.store(ctx, e, active, maxWait, nil, claim); err != nil {
		return fmt.Errorf("spooled key %s for %s: %w", e.KeyID, r.opts.Sink.Location(e.Path), err)
	}
	if err := r.opts.Spool.Remove(e.DestinationID, e.KeyID); err != nil {
		return err
	}
	r.log.Info("spooled secret stored", zap.String("destination", e.Destination), zap.String("key_id", e.KeyID),
		zap.Duration("spooled_for", r.opts.Now().Sub(e.SpooledAt)))
	return nil
}

func (r *Rotator) reportCorrupt(corrupt []spool.Corrupt) {
	for _, c := range corrupt {
		r.opts.Metrics.SpoolCorrupt.Inc()
		r.log.Error("unreadable spool entry moved aside; it is kept for inspection", zap.String("file", c.File), zap.String("problem", c.Reason))
	}
}

// Replay tries once to store every spooled secret; a destination whose rotation is running
// is left to that rotation. It returns how many entries remain.
func (r *Rotator) Replay(ctx context.Context) (int, error) {
	entries, corrupt, err := r.opts.Spool.List(true)
	if err != nil {
		r.noteReplayError(err)
		return 0, err
	}
	r.reportCorrupt(corrupt)
	var errs []error
	for _, e := range entries {
		if r.opts.Resolve != nil {
			d, ok := r.opts.Resolve(e.DestinationID)
			if !ok {
				errs = append(errs, fmt.Errorf("spooled key %s: destination %s (%s) is not in the config; the secret stays in the spool until it is again", e.KeyID, e.Destination, e.DestinationID))
				continue
			}
			e.Path = d.Path
		}
		st := r.state(e.DestinationID)
		select {
		case st.lock <- struct{}{}:
		default:
			continue // a rotation of this destination runs and stores it first
		}
		var claim lease.Claim
		if r.opts.Lease != nil {
			var err error
			if claim, err = r.acquireLease(ctx, Destination{ID: e.DestinationID, Name: e.Destination}, 0); err != nil {
				<-st.lock
				if !errors.Is(err, lease.ErrHeld) {
					errs = append(errs, fmt.Errorf("spooled key %s: %w", e.KeyID, err))
				}
				continue // held: another process rotates it and stores it first
			}
		}
		// The entry keeps the fence it was minted under; the claim only guards the write.
		err := r.replayEntry(ctx, e, 0, claim)
		if claim != nil {
			r.releaseLease(ctx, Destination{ID: e.DestinationID, Name: e.Destination}, claim)
		}
		<-st.lock
		if err != nil {
			errs = append(errs, err)
		}
	}
	err = errors.Join(errs...)
	r.noteReplayError(err)
	r.updateSpoolGauge()
	n, _ := r.opts.Spool.Len()
	return n, err
}

// RefusedReplayInterval is how often the replayer tries again while the sink refuses every
// spooled secret (ReasonSinkDenied, ReasonSinkMisconfigured): a fix by an operator is
// picked up within it, without hammering a Vault that answers 403.
const RefusedReplayInterval = 5 * time.Minute

// RunReplayer stores spooled secrets until ctx is done: at once, then with backoff while
// entries remain, and otherwise when a rotation leaves a secret behind or every minute.
func (r *Rotator) RunReplayer(ctx context.Context) error {
	step := 0
	for {
		n, err := r.Replay(ctx)
		wait := time.Minute
		switch {
		case n > 0 && allRefused(err):
			// The sink refuses (permissions, a wrong mount): it will not heal in seconds.
			wait = RefusedReplayInterval
			r.log.Error("spooled secrets are refused by the sink; retrying slowly until it is fixed", zap.Int("spooled", n),
				zap.String("reason", ClassifySink(err).Reason), zap.Duration("retrying_in", wait), zap.Error(err))
		case n > 0:
			wait = r.wait(Outcome{}, &step)
			r.log.Warn("spooled secrets wait for the sink", zap.Int("spooled", n), zap.Duration("retrying_in", wait), zap.Error(err))
		default:
			step = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// SpoolHealth is nil while the spool drains; the daemon's /readyz reports its error.
func (r *Rotator) SpoolHealth() error {
	r.mu.Lock()
	err := r.replayErr
	r.mu.Unlock()
	if err == nil {
		return nil
	}
	if n, _ := r.opts.Spool.Len(); n == 0 {
		return nil
	}
	return fmt.Errorf("spooled secrets cannot be stored: %w", err)
}

func (r *Rotator) noteReplayError(err error) {
	r.mu.Lock()
	r.replayErr = err
	r.mu.Unlock()
	if err != nil {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

func (r *Rotator) updateSpoolGauge() {
	if n, err := r.opts.Spool.Len(); err == nil {
		r.opts.Metrics.SpooledSecrets.Set(float64(n))
	}
}

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
	if r.opts.Budget == nil {
		return false, nil
	}
	return r.opts.Budget.Acquire(ctx)
}

// release tells the shared budget how a call went: a 429 closes the gate for everybody.
func (r *Rotator) release(probe bool, o Outcome) {
	if r.opts.Budget == nil {
		return
	}
	limited := o.Class == Retryable && o.Reason == ReasonRateLimited
	wait := r.opts.Policy.InitialBackoff
	if o.HasRetryAfter && o.RetryAfter > 0 {
		wait = min(o.RetryAfter, r.opts.Policy.MaxRetryAfter)
	}
	r.opts.Budget.Done(probe, limited, wait)
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

// waitBudget bounds the total time one rotation waits on retryable outcomes, with one bound
// per cause: 429s (max_rate_limit_wait) and a webhook.co that cannot be reached
// (max_unreachable_wait). Each wait is announced through Options.OnWait first.
type waitBudget struct {
	r      *Rotator
	dest   string
	waited map[string]time.Duration // by reason
}

func (r *Rotator) newWaitBudget(d Destination) *waitBudget {
	return &waitBudget{r: r, dest: d.Name, waited: map[string]time.Duration{}}
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
	return b.r.opts.Sleep(ctx, d)
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

// acquireLease takes d's lease and counts the outcome.
func (r *Rotator) acquireLease(ctx context.Context, d Destination, wait time.Duration) (lease.Claim, error) {
	claim, err := r.opts.Lease.Acquire(ctx, d.ID, wait)
	m := r.opts.Metrics
	switch {
	case errors.Is(err, lease.ErrHeld):
		m.LeaseAcquisitions.WithLabelValues(metrics.LeaseHeld).Inc()
	case err != nil:
		m.LeaseAcquisitions.WithLabelValues(metrics.LeaseError).Inc()
	case claim.TookOver():
		m.LeaseAcquisitions.WithLabelValues(metrics.LeaseTakenOver).Inc()
		r.log.Warn("took over an expired lease: its holder stopped renewing it (crashed, or cut off from Vault)",
			zap.String("destination", d.Name), zap.Int64("lease_fence", claim.Fence()))
	default:
		m.LeaseAcquisitions.WithLabelValues(metrics.LeaseAcquired).Inc()
	}
	if err == nil {
		m.LeasesHeld.Inc()
	}
	return claim, err
}

// releaseLease lets go of d's claim, telling the next holder to list keys first when a
// key's fate is not settled here: a rotate request's outcome is unknown (a durable intent
// remains), or a received secret still waits in this process's spool. Should this host
// never come back, the next holder then finds that key through the listing and reports it.
func (r *Rotator) releaseLease(ctx context.Context, d Destination, claim lease.Claim) {
	r.opts.Metrics.LeasesHeld.Dec()
	_, unsettled, err := r.opts.Spool.Intent(d.ID)
	if err != nil {
		unsettled = true
	}
	if !unsettled {
		ids, err := r.opts.Spool.PendingKeyIDs(d.ID)
		unsettled = err != nil || len(ids) > 0
	}
	if err := claim.Release(context.WithoutCancel(ctx), unsettled); err != nil {
		r.log.Warn("could not release the lease", zap.String("destination", d.Name), zap.Error(err))
	}
}
