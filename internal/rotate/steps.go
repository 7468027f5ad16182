package rotate

// The rotation proper, step by step, once the destination is held: store what waits, read
// what is stored, find the baseline key, then send rotate, settling every unknown outcome
// with a listing before anything is sent again.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// rotation is one rotation of one destination in progress: what it knows, and its result
// (spool.Attempt is its write-ahead record on disk).
type rotation struct {
	r     *Rotator
	d     Destination
	st    *destState
	res   *Result
	cond  condition
	claim lease.Claim // nil without a Lease
	log   *zap.Logger
	// detached is ctx without its cancellation: a rotate in flight and the spooling of a
	// received secret are never cut short by shutdown; each request has its own timeout.
	detached context.Context
	budget   *waitBudget

	// known are the key ids rotatord holds: stored, received by this process, or the
	// baseline of a durable intent. A listed active key outside it was lost.
	known map[string]bool
	// stored is what the sink held; before is it for the policy and the first check-and-set
	// (an empty record: nothing stored; nil: the sink could not be read, so the write reads
	// first). partial says before is remembered without its history (over the rotator's
	// budget): the write reads the sink first too, for the history the next record carries.
	stored  sink.Record
	before  *sink.Record
	partial bool
	// baseline is the active key before this rotation; verify says a listing must settle
	// an unknown outcome before rotate is sent.
	baseline string
	verify   bool
	// settleBy is when an unknown outcome counts as settled if no key newer than the
	// baseline appeared by then: the outcome's time plus the settle period.
	settleBy time.Time
	// record is the write-ahead record of the rotate request in flight (nil before one).
	record *spool.Attempt
}

// rotateLocked is the rotation proper; the destination's lock (and lease) is held.
func (r *Rotator) rotateLocked(ctx context.Context, d Destination, st *destState, res *Result, cond condition, claim lease.Claim) {
	if r.opts.DryRun {
		r.dryRun(ctx, d, res)
		return
	}
	a := &rotation{r: r, d: d, st: st, res: res, cond: cond, claim: claim, log: r.log.With(zap.String("destination", d.Name)),
		detached: context.WithoutCancel(ctx), budget: r.newWaitBudget(d, claim), known: map[string]bool{}}
	// 1. A secret received earlier and not yet stored comes first: rotating again now would
	// revoke the key the receivers may still hold. (Nothing to ask when this process left
	// the destination's record clear and nobody else can have written since.)
	if a.spoolTrusted() {
		a.log.Debug("the spool holds nothing of this destination: this process left it clear")
	} else if err := r.replayPending(ctx, d, claim); err != nil {
		res.Reason, res.Err = ClassifySink(err).Reason, fmt.Errorf("rotate %s: not rotating while a secret received earlier waits in the spool: %w", d.Name, err)
		return
	}
	// 2. What is stored, and whether the rotation's condition still holds, and whether the
	// guards let it mint: min_interval, and no consumer still needing the key it revokes.
	if a.readStored(); a.decides(ctx) {
		return
	}
	// 3. The baseline: the key rotatord knows is active, or a listing says.
	if !a.findBaseline(ctx) {
		return
	}
	// 4 and 5. Rotate, settling each unknown outcome with a listing first. The record's
	// file is let go of whatever the outcome (an unknown one leaves its intent on disk).
	defer func() { a.record.Close() }()
	a.send(ctx)
}

// spoolTrusted says whether this process's memory of the destination's spool (its record
// left clear, nothing pending) may stand for asking the spool: the same trust as the
// stored record's (readStored).
func (a *rotation) spoolTrusted() bool { return a.st.spoolClear && a.nobodyElseSince() }

// nobodyElseSince says whether what this process remembers of the destination (its stored
// record, its spool) is still so: no lease (coordination none: this process alone rotates
// the destination), or a lease this process was the last to hold.
func (a *rotation) nobodyElseSince() bool {
	return a.r.opts.Lease == nil || (a.claim != nil && a.claim.Continues())
}

// readStored reads what the sink holds (step 2): known keys and the check-and-set base.
// Without a read when this process knows it and nobody else can have written since: no
// lease (coordination none: this process alone rotates the destination), or a lease this
// process was the last to hold. Anything written outside every lease makes the
// check-and-set fail, and the write then reads and decides again.
func (a *rotation) readStored() {
	rec, whole := a.r.recall(a.d.ID)
	trusted := rec != nil && a.nobodyElseSince()
	if trusted {
		if rec.KeyID == "" {
			a.before = &sink.Record{}
			return
		}
		a.stored, a.before, a.partial = *rec, rec, !whole
		a.known[rec.KeyID] = true
		return
	}
	stored, err := a.r.opts.Sink.Get(a.detached, a.d.Path)
	switch {
	case err == nil:
		a.stored, a.before = stored, &stored
		a.known[stored.KeyID] = true
		a.r.remember(a.d.ID, stored)
	case errors.Is(err, sink.ErrNotFound):
		a.before = &sink.Record{} // nothing stored: check-and-set version 0
		a.r.remember(a.d.ID, sink.Record{})
	default:
		a.log.Warn("sink unreadable before rotating; the spool will hold the new secret until it is back", zap.Error(err))
	}
}

// decides runs the policy (decide) over what readStored gathered, asking the consumers'
// gate only when the policy needs its answer, and records a skip or a hold in the result.
// It reports whether the rotation stops here.
func (a *rotation) decides(ctx context.Context) bool {
	f := facts{cond: a.cond, stored: a.before, now: a.r.opts.Now(), minInterval: a.d.MinInterval, gate: a.r.opts.Gate != nil}
	d := decide(f)
	if d.verdict == askGate {
		f.gateAsked, f.gateErr = true, a.r.opts.Gate(ctx, a.d, a.stored)
		d = decide(f)
	}
	switch d.verdict {
	case skip:
		a.res.Status, a.res.KeyID, a.res.Err = Skipped, a.stored.KeyID, d.err
		if a.stored.KeyID != "" {
			a.r.opts.Metrics.Fleet.SetRotated(a.d.Name, a.stored.RotatedAt)
		}
		return true
	case hold:
		a.res.Status, a.res.Reason, a.res.KeyID, a.res.Err = Held, d.reason, a.stored.KeyID, fmt.Errorf("rotate %s: %w", a.d.Name, d.err)
		return true
	}
	if a.cond.force {
		a.res.Forced = true
		a.log.Warn("forced rotation: min_interval and the consumers' gate are not checked")
	}
	return false
}

// findBaseline settles the key rotatord takes for active before it rotates (step 3): the
// newest it holds, a durable intent's baseline (an outcome never learnt: list first), or
// a listing just before the request. It returns false when the rotation cannot go on.
func (a *rotation) findBaseline(ctx context.Context) bool {
	if a.st.received != "" {
		a.known[a.st.received] = true
	}
	var intent spool.Intent
	var unverified bool
	if !a.spoolTrusted() {
		var err error
		if intent, unverified, err = a.r.opts.Spool.Intent(a.d.ID); err != nil {
			a.res.Reason, a.res.Err = ReasonSpool, fmt.Errorf("rotate %s: %w", a.d.Name, err)
			return false
		}
	}
	a.baseline = a.stored.KeyID
	if a.st.received != "" {
		a.baseline = a.st.received
	}
	if unverified && intent.BaselineKeyID != "" {
		a.baseline = intent.BaselineKeyID
		a.known[a.baseline] = true
	}
	if unverified {
		// The request the intent records may still commit until a settle period after its
		// outcome, which came at the latest a request timeout after it was sent.
		a.settleBy = intent.StartedAt.Add(a.r.opts.RequestTimeout + a.r.opts.Policy.SettlePeriod)
	}
	// The lease's previous holder may have sent a rotate whose outcome nobody learnt (it
	// died holding the lease): list first, as after our own ambiguous outcome.
	if a.claim != nil && a.claim.Unsettled() && !unverified {
		a.log.Warn("the lease's previous holder left a rotation unsettled; listing keys before rotating",
			zap.Bool("took_over_expired_lease", a.claim.TookOver()), zap.Int64("lease_fence", a.claim.Fence()))
		unverified = true
		// When that request was sent is not known here: a whole settle period from now.
		a.settleBy = a.r.opts.Now().Add(a.r.opts.Policy.SettlePeriod)
	}
	a.verify = unverified
	if a.baseline != "" || unverified {
		return true
	}
	keys, o := a.r.list(ctx, a.d, a.budget)
	if o.Class != Success {
		a.res.Reason, a.res.Err = o.Reason, fmt.Errorf("rotate %s: list keys before rotating: %w", a.d.Name, o.Err)
		return false
	}
	a.baseline = webhookco.ActiveKeyID(keys)
	a.known[a.baseline] = true
	return true
}

// settle lists the keys after an unknown outcome (step 4) until it is known: a key newer
// than the baseline that rotatord does not hold was minted (counted lost; the next rotate
// recovers), or the settle period passed with none, so nothing was minted. No rotate is
// sent meanwhile: the provider may still commit the one in doubt. It returns false when a
// listing failed or the wait was cut short: rotate is then held back.
func (a *rotation) settle(ctx context.Context) bool {
	step := 0
	for {
		keys, o := a.r.list(ctx, a.d, a.budget)
		if o.Class != Success {
			return a.holdBack(o.Reason, o.Err)
		}
		if lost := a.unknownKeys(keys); len(lost) > 0 {
			a.recordLost(lost)
			a.baseline, a.verify = lost[0], false
			return true
		}
		now := a.r.opts.Now()
		if !now.Before(a.settleBy) {
			active := webhookco.ActiveKeyID(keys)
			a.log.Info("the unknown outcome minted no key rotatord lacks; rotating", zap.String("active_key_id", active))
			a.baseline, a.verify = active, false
			return true
		}
		wait := min(a.settleBy.Sub(now), a.r.wait(Outcome{}, &step))
		if step == 1 {
			a.log.Warn("rotate outcome still unknown: the provider may commit it late; listing keys until the settle period ends",
				zap.Time("settle_by", a.settleBy), zap.Duration("retrying_in", wait))
		}
		if err := a.budget.pause(ctx, wait); err != nil {
			return a.holdBack(reasonForWaitError(err, ReasonCanceled), err)
		}
	}
}

// holdBack ends a rotation whose earlier rotate may have minted a key it could not check.
func (a *rotation) holdBack(reason string, err error) bool {
	if reason != ReasonCanceled && reason != ReasonLeaseLost {
		reason = ReasonUnverified
	}
	a.res.Reason, a.res.Err = reason, fmt.Errorf("rotate %s: an earlier rotate may have minted a key and the listing that would tell did not, so rotate is held back: %w", a.d.Name, err)
	return false
}

// unknownKeys returns the listed keys newer than every key rotatord holds, newest first:
// minted, and their secrets never reached rotatord. When rotatord holds none of the listed
// keys (nothing stored, and a record too damaged to name its baseline) the older ones are
// not known to be its own: only the newest counts, as the one a recovery replaces.
func (a *rotation) unknownKeys(keys []webhookco.SigningKey) []string {
	var out []string
	for _, k := range keys {
		if a.known[k.ID] {
			return out
		}
		out = append(out, k.ID)
	}
	return out[:min(len(out), 1)]
}

// recordLost counts and logs keys minted whose secrets never reached rotatord.
func (a *rotation) recordLost(lost []string) {
	a.r.noteLost(a.d.ID, a.r.opts.Now(), lost...)
	for _, id := range lost {
		a.res.LostKeyIDs = append(a.res.LostKeyIDs, id)
		a.r.opts.Metrics.LostSecrets.WithLabelValues(a.d.Name).Inc()
		a.r.opts.Metrics.Failure(a.d.Name, ReasonLost)
		a.known[id] = true
		a.log.Error("signing secret lost: a key was minted whose secret never reached rotatord; rotating once more to recover",
			zap.String("lost_key_id", id), zap.String("previous_key_id", a.baseline))
	}
}

// send rotates (step 5), through 429s and unknown outcomes, until the outcome is known or
// a bound is reached.
func (a *rotation) send(ctx context.Context) {
	ambiguousLeft := a.r.opts.Policy.MaxAmbiguousRetries
	backoffStep := 0
	for {
		if a.verify && !a.settle(ctx) {
			return
		}
		o, rotated, ok := a.request(ctx)
		if !ok {
			return
		}
		switch o.Class {
		case Success:
			failpoint("after_response")
			a.st.received = rotated.KeyID
			base := a.before
			if a.partial {
				base = nil // the store reads the record whole
			}
			a.r.spoolAndStore(ctx, a.d, a.record, rotated, a.res, base, a.cond.slot, a.claim)
			return
		case Refused:
			a.endRecord()
			a.res.Reason, a.res.Err = o.Reason, fmt.Errorf("rotate %s: refused, not retried: %w", a.d.Name, o.Err)
			return
		case Retryable:
			if !a.waitRetryable(ctx, o, &backoffStep) {
				return
			}
		case Ambiguous:
			// The intent stays: until a listing settles it, even a restart lists first.
			if ambiguousLeft == 0 || !a.waitAmbiguous(ctx, o, &backoffStep) {
				if ambiguousLeft == 0 {
					a.res.Reason, a.res.Err = o.Reason, fmt.Errorf("rotate %s: outcome unknown, to be checked before the next rotate: %w", a.d.Name, o.Err)
				}
				return
			}
			ambiguousLeft--
			a.verify = true
		}
	}
}

// request records the intent durably, keeps the lease for the request's time and sends
// one rotate. ok is false when it was not sent (the result says why).
func (a *rotation) request(ctx context.Context) (o Outcome, rotated webhookco.RotatedSecret, ok bool) {
	r, d := a.r, a.d
	a.st.spoolClear = false // until this request's record is cleared again
	a.record.Close()        // an earlier request's, whose outcome a listing settled
	record, err := r.opts.Spool.Begin(spool.Intent{DestinationID: d.ID, Destination: d.Name, BaselineKeyID: a.baseline, StartedAt: r.opts.Now().UTC()})
	if err != nil {
		a.res.Reason, a.res.Err = ReasonSpool, fmt.Errorf("rotate %s: not rotating without a durable record of the attempt: %w", d.Name, err)
		return Outcome{}, rotated, false
	}
	a.record = record
	// The lease must outlive the request: renewed now if less is left, and a lease lost
	// (another process may rotate) stops here, before anything is minted.
	if a.claim != nil {
		if err := a.claim.Keep(ctx, r.opts.RequestTimeout); err != nil {
			a.endRecord()
			a.res.Reason, a.res.Err = ReasonLease, fmt.Errorf("rotate %s: not rotating: %w", d.Name, err)
			if errors.Is(err, lease.ErrLost) {
				r.opts.Metrics.LeaseLost.Inc()
				a.res.Reason = ReasonLeaseLost
			}
			return Outcome{}, rotated, false
		}
	}
	failpoint("before_request")
	probe, err := r.acquire(ctx)
	if err != nil {
		a.endRecord()
		a.res.Reason, a.res.Err = ReasonCanceled, fmt.Errorf("rotate %s: waiting for the rate budget: %w", d.Name, err)
		return Outcome{}, rotated, false
	}
	a.res.RotateCalls++
	rotated, err = r.opts.API.Rotate(a.detached, d.ID)
	o = Classify(err)
	if a.settleBy = r.opts.Now(); o.MayCommitLate {
		a.settleBy = a.settleBy.Add(r.opts.Policy.SettlePeriod)
	}
	r.release(probe, o)
	return o, rotated, true
}

// endRecord ends the rotate request's write-ahead record: its outcome is known.
func (a *rotation) endRecord() {
	if err := a.record.Settle(); err != nil {
		a.log.Warn("could not clear a rotate intent; the next rotation will list keys first", zap.Error(err))
		return
	}
	a.st.spoolClear = true
}

// waitRetryable waits after a 429 or an unsent request, within the rotation's bounds; it
// returns false when the rotation gives up (the intent is cleared: nothing was minted).
func (a *rotation) waitRetryable(ctx context.Context, o Outcome, step *int) bool {
	if o.Reason == ReasonRateLimited {
		a.r.opts.Metrics.RateLimited.Inc()
	}
	wait := a.r.wait(o, step)
	a.log.Warn("rotate not accepted; waiting", zap.String("reason", o.Reason), zap.Int("attempt", a.res.RotateCalls),
		zap.Duration("retrying_in", wait), zap.Bool("retry_after_header", o.HasRetryAfter))
	if err := a.budget.sleep(ctx, o.Reason, wait); err != nil {
		a.endRecord()
		a.res.Reason, a.res.Err = reasonForWaitError(err, o.Reason), fmt.Errorf("rotate %s: %w after %d attempts: %w", a.d.Name, err, a.res.RotateCalls, o.Err)
		return false
	}
	return true
}

// waitAmbiguous backs off before the listing that settles an unknown outcome; it returns
// false at shutdown (the intent stays, so the next start lists first).
func (a *rotation) waitAmbiguous(ctx context.Context, o Outcome, step *int) bool {
	wait := a.r.wait(Outcome{}, step)
	a.log.Warn("rotate outcome unknown; listing keys before anything else", zap.String("reason", o.Reason),
		zap.Int("attempt", a.res.RotateCalls), zap.Duration("retrying_in", wait), zap.Error(o.Err))
	if err := a.budget.pause(ctx, wait); err != nil {
		a.res.Reason, a.res.Err = reasonForWaitError(err, ReasonCanceled), fmt.Errorf("rotate %s: outcome unknown, to be checked before the next rotate: %w", a.d.Name, err)
		return false
	}
	return true
}
