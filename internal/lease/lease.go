// Package lease makes sure one process at a time rotates a destination. The provider does
// not serialise rotations: two rotate calls in flight for one destination can leave two
// active keys. Two implementations share one contract (Claim):
//
//   - Local is the lock between processes that share a state directory (a `rotatord rotate`
//     next to `rotatord run`): an advisory flock per destination whose file names the holder.
//   - Vault is the lease between hosts (replicas, a standby host): a KV v2 entry per
//     destination, taken and renewed with check-and-set, that expires when its holder stops
//     renewing it, and whose KV version is a fencing number carried into the stored secret.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	// ErrHeld is returned when another process holds the destination.
	ErrHeld = errors.New("another process is rotating this destination")
	// ErrLost is returned by Claim.Keep when the claim may no longer be ours: its renewal
	// failed past its expiry, or another process has taken it over.
	ErrLost = errors.New("lease lost")
)

// Claim is a held lease on one destination. It is used by one goroutine at a time.
type Claim interface {
	// Fence is the claim's fencing number: larger for every later holder of the
	// destination; 0 where there is none (Local).
	Fence() int64
	// Unsettled reports that the previous holder may have sent a rotate request whose
	// outcome nobody learnt: it died holding the lease, or released it with the outcome
	// unknown. The new holder lists the destination's keys before it rotates.
	Unsettled() bool
	// TookOver reports that the claim was taken from a holder whose lease had expired.
	TookOver() bool
	// Continues reports that this very process was the destination's last holder and
	// nobody held it since: what this process last read or wrote of the destination is
	// still what is stored (unless something wrote outside every lease, which a
	// check-and-set then catches).
	Continues() bool
	// Keep makes sure the claim stays held for at least d more, renewing it when needed.
	// An error wrapping ErrLost means another process may hold it: stop before calling
	// the provider, and never write with this claim's fencing number.
	Keep(ctx context.Context, d time.Duration) error
	// Release lets go of the claim. unsettled tells the next holder that a rotate request's
	// outcome is unknown, so it lists keys before rotating.
	Release(ctx context.Context, unsettled bool) error
}

// MaxClockSkew is how far the clocks of two rotatord hosts may disagree. A lease is taken
// over only this long after the expiry its holder wrote, and a holder never starts a
// rotate request it could not finish that long before its expiry.
const MaxClockSkew = 2 * time.Second

// AcquireOption changes how Acquire takes a lease.
type AcquireOption func(*AcquireOptions)

// AcquireOptions is what the options given to Acquire ask, for a backend to read.
type AcquireOptions struct {
	// GiveWay: see GiveWay.
	GiveWay bool
}

// ApplyOptions folds a backend's Acquire options into AcquireOptions.
func ApplyOptions(opts []AcquireOption) AcquireOptions {
	var o AcquireOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// GiveWay is for a scheduled fire, which every replica makes for the same slot at about
// the same moment: when another process released the lease last, Acquire writes nothing
// and fails at once with a *HeldError that is GivingWay, so that process, which fires for
// the same slot, takes it with one write and nobody races it. The caller looks again
// shortly without GiveWay, in case the last holder is gone. Local locks ignore it.
func GiveWay() AcquireOption { return func(o *AcquireOptions) { o.GiveWay = true } }

// HeldError says who holds the destination.
type HeldError struct {
	DestinationID string
	Holder        string // "pid 1234 on host (rotatord run), …"; empty when unknown
	// ExpiresAt is when the holder's lease runs out unless renewed; zero for a lock that
	// lives as long as its holder (Local). For GivingWay, when the lease was released.
	ExpiresAt time.Time
	// GivingWay: nobody holds it, but Acquire gave way to its last holder (see GiveWay).
	GivingWay bool
}

// Error implements error.
func (e *HeldError) Error() string {
	if e.GivingWay {
		return fmt.Sprintf("destination %s: its last holder, %s, takes the next rotation first", e.DestinationID, e.Holder)
	}
	if e.Holder == "" {
		return fmt.Sprintf("destination %s is being rotated by another process", e.DestinationID)
	}
	return fmt.Sprintf("destination %s is being rotated by %s", e.DestinationID, e.Holder)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lease serialises rotations of a destination across processes: the contract the
// rotator uses (rotate.Lease). The backends under internal/lease/ implement it (local: one
// host; vaultlease: several) and assert it.
type Lease interface {
	// Acquire returns the destination's claim (see the Claim contract), or an error
	// wrapping ErrHeld when another process holds the destination past wait.
	Acquire(ctx context.Context, destinationID string, wait time.Duration, opts ...AcquireOption) (Claim, error)
}
