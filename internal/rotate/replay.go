package rotate

// The replayer: secrets that wait in the spool are stored before anything else rotates.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// replayPending stores the spooled secrets of d, oldest first. The lock of d is held.
func (r *Rotator) replayPending(ctx context.Context, d Destination, claim lease.Claim) error {
	entries, corrupt, err := r.opts.Spool.Pending(d.ID)
	if err != nil {
		return err
	}
	r.reportCorrupt(corrupt)
	if len(entries) > 0 || len(corrupt) > 0 {
		defer r.countSpool()
	}
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
	var keys []webhookco.SigningKey
	if o := r.Paced(ctx, func(ctx context.Context) (err error) {
		keys, err = r.opts.API.ListSigningSecrets(ctx, e.DestinationID)
		return err
	}); o.Class == Success {
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
	r.countSpool()
	return int(r.spooled.Load()), err
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

// wakeReplayer makes the replayer try soon: a rotation left its secret in the spool. Only
// rotations wake it; its own failed pass waits with backoff.
func (r *Rotator) wakeReplayer() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// countSpool counts the spool's entries again (after a change: a secret kept, replayed, or
// a replayer's pass) and updates the gauge.
func (r *Rotator) countSpool() {
	if n, err := r.opts.Spool.Len(); err == nil {
		r.spooled.Store(int64(n))
	}
	r.updateSpoolGauge()
}

// updateSpoolGauge sets rotatord_spooled_secrets: every secret held and not yet stored,
// in the spool (as last counted) or in a rotation waiting for the sink. It asks the spool
// nothing.
func (r *Rotator) updateSpoolGauge() {
	r.opts.Metrics.SpooledSecrets.Set(float64(r.spooled.Load() + r.holding.Load()))
}
