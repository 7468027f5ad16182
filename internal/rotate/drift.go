package rotate

// Drift: is the provider's active key the stored one? And the dry run.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Drift is the result of one drift check.
type Drift struct {
	// Checked is false when the destination was busy (a rotation runs) or has no stored secret.
	Checked bool
	// Drifted is true when the provider's active key is neither the stored one nor one
	// rotatord holds in its spool: rotated outside rotatord, or a response lost.
	Drifted             bool
	ActiveKeyID, Stored string
	// Held: the active key is not the stored one but one rotatord holds (received, waiting
	// in the spool for the sink): not drift.
	Held bool
}

// CompareKeys is the one drift comparison (the daemon's drift check and `status --online`):
// the provider's active key among keys against the stored key id and the key ids rotatord
// holds otherwise (received, or waiting in the spool). Drifted: the active key is neither.
func CompareKeys(keys []webhookco.SigningKey, stored string, held []string) Drift {
	active := webhookco.ActiveKeyID(keys)
	d := Drift{Checked: true, ActiveKeyID: active, Stored: stored}
	switch {
	case active == stored, active == "": // the stored key, or no active key listed to compare
	case slices.Contains(held, active):
		d.Held = true
	default:
		d.Drifted = true
	}
	return d
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
	keys, o := r.list(ctx, d, r.newWaitBudget(d, nil))
	if o.Class != Success {
		return Drift{}, fmt.Errorf("drift check of %s: %w", d.Name, o.Err)
	}
	held, _ := r.opts.Spool.PendingKeyIDs(d.ID)
	if st.received != "" {
		held = append(held, st.received)
	}
	res := CompareKeys(keys, stored.KeyID, held)
	active := res.ActiveKeyID
	if res.Drifted {
		r.opts.Metrics.Fleet.SetDrift(d.Name, true)
		r.opts.Metrics.DriftDetected.WithLabelValues(d.Name).Inc()
		r.log.Warn("drift: the provider's active key is not the stored one (rotated outside rotatord, or a response was lost)",
			zap.String("destination", d.Name), zap.String("active_key_id", active), zap.String("stored_key_id", stored.KeyID))
	} else {
		r.opts.Metrics.Fleet.SetDrift(d.Name, false)
	}
	return res, nil
}

// dryRun reads what a rotation would read and says what it would do.
func (r *Rotator) dryRun(ctx context.Context, d Destination, res *Result) {
	res.Status = DryRun
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
