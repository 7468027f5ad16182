package rotate

// Taking and releasing a destination's lease, and counting it.

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/metrics"
)

// acquireLease takes d's lease and counts the outcome.
func (r *Rotator) acquireLease(ctx context.Context, d Destination, wait time.Duration, opts ...lease.AcquireOption) (lease.Claim, error) {
	claim, err := r.opts.Lease.Acquire(ctx, d.ID, wait, opts...)
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
// Only a lease shared with other hosts carries that word; a local lock's next holder shares
// this spool and reads it itself.
func (r *Rotator) releaseLease(ctx context.Context, d Destination, claim lease.Claim) {
	r.opts.Metrics.LeasesHeld.Dec()
	unsettled := false
	// The destination's lock is held: spoolClear is this process's word that it just left
	// the destination's record clear and nothing of it in the spool.
	if sh, ok := r.opts.Lease.(shared); ok && sh.Shared() && !r.state(d.ID).spoolClear {
		_, open, err := r.opts.Spool.Intent(d.ID)
		unsettled = open || err != nil
		if !unsettled {
			ids, err := r.opts.Spool.PendingKeyIDs(d.ID)
			unsettled = err != nil || len(ids) > 0
		}
	}
	if err := claim.Release(context.WithoutCancel(ctx), unsettled); err != nil {
		r.log.Warn("could not release the lease", zap.String("destination", d.Name), zap.Error(err))
	}
}
