package rotate

// Storing a received secret: spool it, then write it to the sink with stale-write
// protection and proof of the write (the version KV v2 names, else a read-back),
// classifying what the sink answers (ClassifySink).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// spoolAndStore spools a received secret, then stores it. Once spooled, a failed store leaves the
// secret in the spool for the replayer; the rotation reports reason sink.
// record is the rotate request's write-ahead record (see spool.Attempt).
func (r *Rotator) spoolAndStore(ctx context.Context, d Destination, record *spool.Attempt, rotated webhookco.RotatedSecret, res *Result, before *sink.Record, slot time.Time, claim lease.Claim) {
	now := r.opts.Now().UTC()
	e := spool.Entry{DestinationID: d.ID, Destination: d.Name, Path: d.Path, KeyID: rotated.KeyID, Secret: rotated.Secret, RotatedAt: now, SpooledAt: now, Slot: slot}
	if claim != nil {
		e.Fence = claim.Fence()
	}
	res.KeyID, res.RotatedAt = rotated.KeyID, now
	// Spooled durably, the key is known: the write-ahead record has served.
	spoolErr := record.Received(e)
	if spoolErr != nil {
		r.log.Error("could not spool a received secret; storing it from memory", zap.String("destination", d.Name), zap.String("key_id", e.KeyID), zap.Error(spoolErr))
	} else {
		failpoint("after_spool_write")
	}
	// The provider just answered with this key: it is the active one. That decides against
	// whatever is stored, whatever its rotated_at or fence (a lease entry deleted in Vault
	// starts its fences again at 1). The claim, checked before each write, and
	// check-and-set keep a holder that lost its lease from writing.
	r.holding.Add(1) // counted in rotatord_spooled_secrets while the sink has not taken it
	r.updateSpoolGauge()
	warning, err := r.store(ctx, e, e.KeyID, r.opts.Policy.MaxSinkWait, before, claim)
	r.holding.Add(-1)
	reason := ClassifySink(err).Reason
	switch {
	case err == nil:
		res.Status, res.Warning = Rotated, warning
		res.Revoked = r.takeRevoked(d.ID)
		if spoolErr == nil {
			failpoint("before_spool_remove")
			if rmErr := record.Stored(); rmErr != nil {
				r.log.Error("secret stored, but its spool entry could not be removed; the replayer will find it already stored", zap.String("destination", d.Name), zap.Error(rmErr))
			} else {
				r.state(d.ID).spoolClear = true
			}
		} else if err := record.Settle(); err != nil {
			r.log.Warn("could not clear a rotate intent; the next rotation will list keys first", zap.String("destination", d.Name), zap.Error(err))
		} else {
			r.state(d.ID).spoolClear = true
		}
	case spoolErr == nil:
		res.Status = Spooled
		if err := record.Keep(e); err != nil {
			r.log.Error("could not hand a spooled secret to the replayer; it stays in the rotation's record", zap.String("destination", d.Name), zap.String("key_id", e.KeyID), zap.Error(err))
		}
		r.countSpool()
		res.Reason, res.Err = reason, fmt.Errorf("rotate %s: key %s is kept in the spool until %s accepts it: %w", d.Name, e.KeyID, r.opts.Sink.Location(d.Path), err)
		r.wakeReplayer()
	default:
		res.LostKeyIDs = append(res.LostKeyIDs, e.KeyID)
		r.noteLost(d.ID, r.opts.Now(), e.KeyID)
		r.opts.Metrics.LostSecrets.WithLabelValues(d.Name).Inc()
		res.Reason, res.Err = reason, fmt.Errorf("rotate %s: key %s was received but neither spooled (%v) nor stored in %s: %w", d.Name, e.KeyID, spoolErr, r.opts.Sink.Location(d.Path), err)
	}
}

// store writes e to the sink with stale-write protection, retrying with backoff for up to
// maxWait (and no longer once ctx is done). active, when known, is the provider's active key.
// before, when set, is what the sink held when the rotation began: the first attempt uses
// it instead of reading again; a conflict or a failure makes the next attempt read.
// claim, when set, must still be held before each attempt.
// It returns the warning of a write that succeeded only in part (see ClassifySink).
func (r *Rotator) store(ctx context.Context, e spool.Entry, active string, maxWait time.Duration, before *sink.Record, claim lease.Claim) (string, error) {
	detached := context.WithoutCancel(ctx)
	deadline := r.opts.Now().Add(maxWait)
	step := 0
	for attempt := 1; ; attempt++ {
		var err error
		if claim != nil {
			// Never write with a fencing number that another holder has superseded.
			if err = claim.Keep(detached, 0); errors.Is(err, lease.ErrLost) {
				r.opts.Metrics.LeaseLost.Inc()
				return "", fmt.Errorf("not written, the secret stays in the spool: %w", err)
			}
		}
		var warning string
		if err == nil {
			warning, err = r.storeOnce(detached, e, active, before)
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
	case known == nil || known.KeyID == e.KeyID:
		// Unknown, or remembered as this very key: what is remembered holds no secret to
		// compare with (remember), so the sink is read.
		if cur, err = r.opts.Sink.Get(ctx, e.Path); err == nil {
			r.remember(e.DestinationID, cur)
		}
	case known.KeyID == "":
		err = sink.ErrNotFound
	default:
		cur = *known
	}
	var version sink.Version // nothing stored
	switch {
	case errors.Is(err, sink.ErrNotFound):
	case err != nil:
		return "", err
	default:
		if cur.Same(rec) {
			// Already stored (a crash between the write and the spool removal, or outputs
			// that failed last time): the outputs still need it.
			return "", r.writeOutputs(e, cur)
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
	rec.History = nextHistory(cur, r.pendingLost(e.DestinationID))
	created, err := r.opts.Sink.Put(ctx, e.Path, rec, version)
	if err != nil {
		o := ClassifySink(err)
		if o.Class != Success {
			if errors.Is(err, sink.ErrConflict) {
				r.forget(e.DestinationID)
			}
			return "", err
		}
		// The secret is written; its description is not. Not a silent success.
		r.opts.Metrics.SinkPartialWrites.Inc()
		r.log.Warn("secret stored, but the sink refused its metadata", zap.String("destination", e.Destination),
			zap.String("key_id", e.KeyID), zap.String("warning", o.Reason), zap.Error(err))
		warning = o.Reason
	}
	failpoint("after_sink_write")
	if created != "" {
		// The sink's answer named the version this write created: proof enough, no read-back.
		rec.Version = created
		r.remember(e.DestinationID, rec)
		r.lostRecorded(e.DestinationID, rec.History)
		r.opts.Metrics.SinkWrite(true)
		if err := r.writeOutputs(e, rec); err != nil {
			return "", err
		}
		r.stored(e, rec, revokedBy(cur))
		return warning, nil
	}
	got, err := r.opts.Sink.Get(ctx, e.Path)
	if err != nil {
		r.forget(e.DestinationID)
		return "", fmt.Errorf("read back: %w", err)
	}
	if !got.Same(rec) {
		r.forget(e.DestinationID)
		return "", fmt.Errorf("read back from %s: stored key %s differs from the written key %s", r.opts.Sink.Location(e.Path), got.KeyID, rec.KeyID)
	}
	r.remember(e.DestinationID, got)
	r.lostRecorded(e.DestinationID, rec.History)
	r.opts.Metrics.SinkWrite(true)
	if err := r.writeOutputs(e, got); err != nil {
		return "", err
	}
	r.stored(e, got, revokedBy(cur))
	return warning, nil
}

// nextHistory is the history a record written over cur carries: cur's own, with cur's key
// (and the version that held it) and the keys found lost since added. A history that could
// not be read starts again (from cur's key on).
func nextHistory(cur sink.Record, lost []sink.HistoryEntry) sink.History {
	h := cur.History
	if h.Unreadable != "" {
		h = sink.History{Since: cur.RotatedAt}
	}
	if cur.KeyID != "" {
		lost = append(lost, sink.HistoryEntry{KeyID: cur.KeyID, At: cur.RotatedAt, Version: cur.Version})
	}
	return h.With(lost...)
}

// writeOutputs writes rec to the destination's outputs (the config in force names them),
// each atomically, as the file sink writes a record. A failure keeps the secret in the
// spool: the store is retried like a sink write, and the replay writes what is missing.
func (r *Rotator) writeOutputs(e spool.Entry, rec sink.Record) error {
	if r.opts.Resolve == nil {
		return nil
	}
	d, ok := r.opts.Resolve(e.DestinationID)
	if !ok || len(d.Outputs) == 0 {
		return nil
	}
	fields := rec.Fields()
	fields[sink.FieldManagedBy] = sink.ManagedBy
	body, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return err
	}
	for _, f := range d.Outputs {
		if err := durable.WriteFile(f, append(body, '\n')); err != nil {
			return fmt.Errorf("output %s: %w", f, err)
		}
	}
	return nil
}

// revokedBy is the key a rotation that replaces cur revoked: the newest key rotatord's
// record names before cur's (the provider's retiring key when the rotation began).
func revokedBy(cur sink.Record) string {
	if h := cur.History.Entries; len(h) > 0 {
		return h[len(h)-1].KeyID
	}
	return ""
}

// takeRevoked returns (and forgets) the key the destination's last store revoked.
func (r *Rotator) takeRevoked(id string) string {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	k := st.revoked
	st.revoked = ""
	return k
}

// stored tells OnStored of a proven write of e (rec as the sink holds it).
func (r *Rotator) stored(e spool.Entry, rec sink.Record, revoked string) {
	st := r.state(e.DestinationID)
	st.mu.Lock()
	st.revoked = revoked
	st.mu.Unlock()
	if r.opts.OnStored == nil {
		return
	}
	r.opts.OnStored(Stored{DestinationID: e.DestinationID, Destination: e.Destination, KeyID: rec.KeyID,
		Location: r.opts.Sink.Location(e.Path), Version: rec.Version, RotatedAt: rec.RotatedAt, Revoked: revoked})
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
