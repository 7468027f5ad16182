package rotate

// The one decision a rotation makes once it has gathered what it needs: go on and mint,
// skip (the condition it was started for no longer holds), or hold (a guard says not
// now). Pure: no request, no clock, no metric, so every case is a row of a table test.

import (
	"fmt"
	"time"

	"github.com/rotatord/rotatord/internal/sink"
)

// verdict is what decide says a rotation does.
type verdict int

const (
	// proceed: mint a new secret.
	proceed verdict = iota
	// skip: not needed any more (Status Skipped).
	skip
	// hold: a guard holds it (Status Held, nothing minted).
	hold
	// askGate: the consumers' gate must be asked before deciding; decide again with its answer.
	askGate
)

// facts is what a rotation gathered before deciding, once per fire.
type facts struct {
	cond condition
	// stored is what the sink holds; nil when it could not be read (nothing to skip for
	// and nothing to guard: the rotation goes on and spools what it gets). A record with
	// no KeyID is "nothing stored".
	stored *sink.Record
	now    time.Time
	// minInterval is the destination's min_interval (0: none).
	minInterval time.Duration
	// gate says whether a consumers' gate is configured; gateAsked and gateErr are its
	// answer once asked (nil: every consumer holds the stored key).
	gate      bool
	gateAsked bool
	gateErr   error
}

// decision is decide's answer: the verdict, and for a skip or a hold its reason and why.
type decision struct {
	verdict verdict
	reason  string // HeldFor… for a hold
	err     error
}

// decide is the policy every rotation runs through between reading what is stored and
// minting. In order: the trigger's own condition (a slot already stored, a first rotation
// that found a secret, a wait that ended in another process's rotation, a drift settled
// meanwhile), then force, then min_interval, then the consumers' gate.
func decide(f facts) decision {
	if d, ok := skipFor(f.cond, f.stored); ok {
		return d
	}
	if f.cond.force || f.stored == nil || f.stored.KeyID == "" {
		return decision{verdict: proceed}
	}
	s := f.stored
	if mi := f.minInterval; mi > 0 && f.now.Sub(s.RotatedAt) < mi {
		return decision{verdict: hold, reason: HeldForMinInterval, err: fmt.Errorf("the last rotation was at %s, and min_interval is %s: not before %s",
			s.RotatedAt.UTC().Format(time.RFC3339), mi, s.RotatedAt.Add(mi).UTC().Format(time.RFC3339))}
	}
	switch {
	case !f.gate:
		return decision{verdict: proceed}
	case !f.gateAsked:
		return decision{verdict: askGate}
	case f.gateErr != nil:
		return decision{verdict: hold, reason: HeldForConsumer, err: f.gateErr}
	}
	return decision{verdict: proceed}
}

// skipFor says whether cond no longer holds for what is stored.
func skipFor(cond condition, stored *sink.Record) (decision, bool) {
	if stored == nil {
		return decision{}, false
	}
	held := stored.KeyID != ""
	var err error
	switch {
	case !cond.slot.IsZero() && held && !stored.Slot.Before(cond.slot):
		// A replica (or this process, before a restart) already rotated for this slot.
		err = fmt.Errorf("slot %s already rotated: key %s stored at %s under lease fence %d", cond.slot.UTC().Format(time.RFC3339),
			stored.KeyID, stored.RotatedAt.UTC().Format(time.RFC3339), stored.Fence)
	case cond.nothingStored && held:
		err = fmt.Errorf("first rotation: key %s was stored meanwhile, at %s", stored.KeyID, stored.RotatedAt.UTC().Format(time.RFC3339))
	case cond.waited && stored.KeyID != *cond.stored:
		err = fmt.Errorf("rotated by another process while this one waited: key %s stored at %s", stored.KeyID, stored.RotatedAt.UTC().Format(time.RFC3339))
	case cond.stored != nil && !cond.waited && stored.KeyID != *cond.stored:
		// Drift seen with one stored key, and another is stored now: someone rotated since.
		err = fmt.Errorf("drift settled: the stored key changed from %s to %s since the drift check", *cond.stored, stored.KeyID)
	default:
		return decision{}, false
	}
	return decision{verdict: skip, err: err}, true
}
