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
	"slices"
	"sync"
	"sync/atomic"
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

// Sink stores secrets: the contract sink.Sink, which every backend under internal/sink/
// implements and asserts.
type Sink = sink.Sink

var _ API = (*webhookco.Client)(nil)

// Lease serialises rotations of a destination across processes: the contract
// lease.Lease, which every backend under internal/lease/ implements and asserts.
type Lease = lease.Lease

// Destination is what a rotation needs to know of a configured destination.
type Destination struct {
	ID   string
	Name string
	Path string
	// MinInterval keeps rotations of the destination at least this far apart, whatever
	// started them (0: no bound); a forced rotation passes it.
	MinInterval time.Duration
	// Outputs are files the stored record is also written to after each store; the secret
	// stays in the spool until every one has it.
	Outputs []string
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
	// SettlePeriod is how long after an unknown outcome without the provider's answer keys
	// are listed before rotatord decides the rotate minted nothing (api.retry.settle_period):
	// the provider commits a rotate its client gave up on seconds later. 0: one listing.
	SettlePeriod time.Duration
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
	// request starts, so that it cannot expire with the request in flight; an intent found
	// at start settles from its time plus this. Required with a Lease.
	RequestTimeout time.Duration
	// RateGate, when set, is the rate budget shared by all API calls of this API key.
	RateGate *RateGate
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
	// HistoryBudget bounds the history entries of stored records the rotator keeps in
	// memory, across destinations (0: DefaultHistoryBudget).
	HistoryBudget int
	// OnResult, when set, is called after each rotation (the demo prints a line with it).
	OnResult func(Result)
	// Resolve, when set, names the configured destination of a destination id. A spooled
	// secret is then stored at the path the config gives, never at the path its spool entry
	// records, and one whose destination left the config stays in the spool.
	Resolve func(destinationID string) (Destination, bool)
	// OnWait, when set, is called before each wait on a retryable outcome (a 429, an
	// unreachable webhook.co), so a person running `rotatord rotate` sees why it waits.
	OnWait func(Wait)
	// Gate, when set, is asked before a rotation mints, with the record stored now: an
	// error holds the rotation (nothing is minted; Status Held, reason held) and says why,
	// naming the consumer that still needs the key the rotation would revoke. A forced
	// rotation does not ask it.
	Gate func(ctx context.Context, d Destination, stored sink.Record) error
	// OnStored, when set, is called once for every secret the sink takes, the write proven,
	// whether it came from a fresh rotation or from the spool's replay: the one place after
	// a store where what follows it (notifying receivers, a history) attaches.
	OnStored func(Stored)
}

// Stored is a secret the sink has taken, without the secret.
type Stored struct {
	DestinationID, Destination string
	KeyID                      string
	// Location is where it is stored; Version the sink's version of it ("" without versions).
	Location  string
	Version   sink.Version
	RotatedAt time.Time
	// Revoked is the key the rotation revoked at the provider, as rotatord's record names
	// it: the key stored before the one this store replaced ("" when none is known).
	Revoked string
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
	// wake is signalled when a secret stays in the spool, so the replayer retries soon.
	wake chan struct{}
	// holding counts received secrets that rotations are storing right now; spooled the
	// spool's entries as last counted (countSpool).
	holding, spooled atomic.Int64
	// historyKept counts the history entries of the remembered records (remember), against
	// Options.HistoryBudget.
	historyKept atomic.Int64
}

// DefaultHistoryBudget is how many history entries of stored records the rotator keeps in
// memory across destinations: about 80 bytes each as the stored text, 20 MiB (parsed, they
// took 130 bytes each, 32 MiB). Remembering a stored record spares a rotation its read of
// the sink, but a record names up to sink.HistoryLength earlier keys: a fleet of 100,000
// that has rotated weekly for a year would keep 860 MB of parsed histories.
// Beyond the budget a remembered record keeps no history, and its next store reads the
// sink for it (one read a rotation, where the whole fleet's histories do not fit).
const DefaultHistoryBudget = 1 << 18

// destState is what the Rotator keeps in memory of a destination.
type destState struct {
	lock chan struct{} // held (full) while a rotation or replay of the destination runs
	// received is the newest key id whose secret this process received; it counts as known
	// when an ambiguous outcome is checked.
	received string
	// spoolClear: this process's last rotation of the destination left its write-ahead
	// record clear and nothing of it in the spool. Trusted as the stored record is (no
	// lease, or a lease this process was the last to hold), it spares the next rotation its
	// questions to the spool before the intent (see rotation.spoolTrusted). Read and written
	// under lock.
	spoolClear bool

	// stored is what this process last read from the sink or wrote to it (with its version;
	// an empty record: nothing stored), nil when unknown. A rotation uses it instead of a
	// read when no other process can have written since (see rotation.readStored).
	mu     sync.Mutex
	stored *remembered
	// historyDropped says stored's history was left out (over the rotator's budget).
	historyDropped bool
	// lost are keys minted for this destination whose secrets never reached rotatord; the
	// next stored record names them in its history (for `rotatord report`).
	lost []sink.HistoryEntry
	// revoked is the key the last store's rotation revoked (rotatord's record names it).
	revoked string
}

// noteLost records keys minted and lost, for the history of the next stored record.
func (r *Rotator) noteLost(id string, at time.Time, keyIDs ...string) {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, k := range keyIDs {
		st.lost = append(st.lost, sink.HistoryEntry{KeyID: k, At: at.UTC(), Lost: true})
	}
}

// pendingLost returns the lost keys not yet named by a stored record.
func (r *Rotator) pendingLost(id string) []sink.HistoryEntry {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.lost)
}

// lostRecorded drops the lost keys a stored history now names.
func (r *Rotator) lostRecorded(id string, h sink.History) {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lost = slices.DeleteFunc(st.lost, func(e sink.HistoryEntry) bool {
		return slices.ContainsFunc(h.Entries, func(o sink.HistoryEntry) bool { return o.KeyID == e.KeyID }) || e.At.Before(h.Since)
	})
}

// remember records what the sink holds for id (after a read or a proven write), without
// its secret: a rotation needs the key id, times, version and history of what is stored,
// never the stored secret, so a fleet's secrets are not kept in memory for the process's
// life (storeOnce reads the sink when a secret must be compared). Its history is kept while
// the rotator's history budget allows (see DefaultHistoryBudget); else recall says so.
func (r *Rotator) remember(id string, rec sink.Record) {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	r.releaseHistory(st)
	kept := &remembered{destinationID: rec.DestinationID, keyID: rec.KeyID, rotatedAt: rec.RotatedAt,
		slot: rec.Slot, fence: rec.Fence, version: rec.Version, unreadable: rec.History.Unreadable}
	if rec.DestinationID == id {
		kept.destinationID = id // the state's own key, not a second copy of it
	}
	if n := len(rec.History.Entries); n > 0 && r.historyKept.Add(int64(n)) > int64(r.historyBudget()) {
		r.historyKept.Add(-int64(n))
		st.historyDropped = true
	} else {
		kept.history, kept.historyEntries = rec.History.String(), n
	}
	st.stored = kept
}

// remembered is a stored record as remember keeps it: what a rotation reads of it, in
// about half of a sink.Record's room (no secret; the history as the text the sink stores;
// the destination id the state's key when it is the same): 9 MB less at 100,000
// destinations, and the history in about 80 bytes an entry where its parsed entries took
// about 130.
type remembered struct {
	destinationID, keyID string
	rotatedAt, slot      time.Time
	fence                int64
	version              sink.Version
	// history is the record's history as sink.History.String writes it ("": none, or left
	// out: destState.historyDropped), parsed again by record; historyEntries counts its
	// entries against the budget.
	history        string
	historyEntries int
	unreadable     string // sink.History.Unreadable of the record read
}

// record is the sink.Record m stands for, without a secret.
func (m *remembered) record() sink.Record {
	rec := sink.Record{DestinationID: m.destinationID, KeyID: m.keyID, RotatedAt: m.rotatedAt,
		Slot: m.slot, Fence: m.fence, Version: m.version}
	if m.history != "" {
		h, err := sink.ParseHistory(m.history)
		if err != nil { // String's own output: never; if it were, the next store starts the history again
			h = sink.History{Unreadable: err.Error()}
		}
		rec.History = h
	}
	if m.unreadable != "" {
		rec.History.Unreadable = m.unreadable
	}
	return rec
}

func (r *Rotator) historyBudget() int {
	if r.opts.HistoryBudget > 0 {
		return r.opts.HistoryBudget
	}
	return DefaultHistoryBudget
}

// releaseHistory takes st's remembered history out of the budget; st.mu is held.
func (r *Rotator) releaseHistory(st *destState) {
	if st.stored != nil {
		r.historyKept.Add(-int64(st.stored.historyEntries))
	}
	st.historyDropped = false
}

// forget drops what was known of id's stored record (a conflict: someone else wrote).
func (r *Rotator) forget(id string) {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	r.releaseHistory(st)
	st.stored = nil
}

// recall returns a copy of what is known to be stored for id, or nil; whole is false when
// its history was not kept (a store must read the sink for it).
func (r *Rotator) recall(id string) (rec *sink.Record, whole bool) {
	st := r.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stored == nil {
		return nil, false
	}
	cp := st.stored.record()
	return &cp, !st.historyDropped
}

// Know tells the rotator what the sink holds for a destination (the daemon's start-up
// reads); found false: nothing stored.
func (r *Rotator) Know(destinationID string, rec sink.Record, found bool) {
	if !found {
		rec = sink.Record{}
	}
	r.remember(destinationID, rec)
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

// Status is what one rotation came to: exactly one of these.
type Status int

// Statuses of a rotation.
const (
	// Failed: nothing new is stored; Reason and Err say why.
	Failed Status = iota
	// Rotated: a new key was minted and its secret stored, the write proven (see storeOnce).
	Rotated
	// Spooled: a new key was minted and its secret waits in the spool for the sink (a
	// failure with a reason, but nothing is lost).
	Spooled
	// Skipped: an automatic rotation did not run: another process was rotating the
	// destination, had already rotated it for this slot, or drift settled; Err says which.
	Skipped
	// DryRun: nothing was rotated or written on purpose; Plan says what would have been.
	DryRun
	// Held: nothing was minted because a guard said not yet: min_interval since the last
	// rotation, or a consumer still holding only the key this rotation would revoke (Gate).
	// Reason is HeldForMinInterval or HeldForConsumer, Err says who and until when.
	Held
)

// OK reports whether the rotation stored a new secret.
func (r Result) OK() bool { return r.Status == Rotated }

// Result is what one rotation did. It never holds the secret.
type Result struct {
	Destination string
	Trigger     string
	// KeyID is the stored key's id on success.
	KeyID string
	// Location is where the secret was stored.
	Location string
	// Status is what the rotation came to (the zero value, Failed, until it is known).
	Status Status
	// Reason is the failure reason (one of FailureReasons); empty on success.
	Reason string
	// RotateCalls counts rotate requests sent.
	RotateCalls int
	// LostKeyIDs are keys minted for this destination whose secrets never arrived.
	LostKeyIDs []string
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
	// Plan says, for a dry run, what would have been done.
	Plan string
	// Forced is set on a rotation that passed min_interval and the gate by --force.
	Forced bool
	// Revoked is the key this rotation revoked at the provider (the key stored before the
	// one it replaced), when rotatord's record names it: said in the audit line.
	Revoked  string
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

// RecheckSlot is RotateSlot for a slot whose lease another replica held at the last look:
// with shared leases it first reads the stored slot, and skips without touching the lease
// when the holder stored it (a look costs one read, no lease write).
func (r *Rotator) RecheckSlot(ctx context.Context, d Destination, trigger string, slot time.Time) Result {
	return r.rotate(ctx, d, trigger, condition{slot: slot, recheck: true})
}

// RotateDrifted is the rotation of on_drift: rotate after drift, a drifted result of
// CheckDrift. It skips when the sink no longer holds the key the check saw: another process
// rotated in between, and the drift is settled.
func (r *Rotator) RotateDrifted(ctx context.Context, d Destination, drift Drift) Result {
	stored := drift.Stored
	return r.rotate(ctx, d, TriggerDrift, condition{stored: &stored})
}

// RotateForced is a manual rotation that passes min_interval and the consumers' gate (an
// incident): it is audited as forced.
func (r *Rotator) RotateForced(ctx context.Context, d Destination) Result {
	return r.rotate(ctx, d, TriggerManual, condition{force: true})
}

// RotateFirst is the first rotation of a destination with nothing stored (started with
// first_rotation: at_start). It skips when the sink holds a secret by the time it runs:
// another replica, or a manual rotate, stored one first.
func (r *Rotator) RotateFirst(ctx context.Context, d Destination) Result {
	return r.rotate(ctx, d, TriggerFirst, condition{nothingStored: true})
}

// condition is what a rotation checks once it holds the destination, before rotating.
type condition struct {
	// force passes min_interval and the gate.
	force bool
	// nothingStored, when set, skips the rotation if the sink holds any secret.
	nothingStored bool
	// slot, when set, skips the rotation if the sink holds this slot or a later one.
	slot time.Time
	// stored, when set, skips the rotation unless the sink still holds this key id.
	stored *string
	// waited marks stored as what was stored when a manual rotation began to wait for
	// another process's: a changed key is that rotation, reported instead of a second one.
	waited bool
	// recheck, for a slot another replica held the lease for, reads the stored slot before
	// touching the lease. What it read is not reused under the lease: a peer may have
	// stored the slot and released the lease in between.
	recheck bool
}

// GiveWayLook is how long after giving way to a lease's last holder a scheduled fire looks
// again: by then the holder has stored the slot, or is gone.
const GiveWayLook = time.Second

// shared is a lease that processes on several hosts take turns with (Vault leases).
type shared interface{ Shared() bool }

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
	if r.storedByPeer(ctx, d, cond, &res) {
		r.finish(&res, start)
		return res
	}
	var held lease.Claim // nil without a Lease
	if r.opts.Lease != nil {
		claim, ok := r.takeLease(ctx, d, trigger, &cond, &res)
		if !ok {
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

// storedByPeer is the look of a replica at a slot another replica held the lease for: a
// slot a peer already stored is skipped before the lease is touched, so a replica that
// looks (again) costs one read and no lease write. It records the skip in res.
func (r *Rotator) storedByPeer(ctx context.Context, d Destination, cond condition, res *Result) bool {
	sh, ok := r.opts.Lease.(shared)
	if !ok || !sh.Shared() || !cond.recheck || cond.slot.IsZero() {
		return false
	}
	stored, err := r.opts.Sink.Get(ctx, d.Path)
	if err != nil {
		return false
	}
	dec, skips := skipFor(condition{slot: cond.slot}, &stored)
	if !skips {
		return false
	}
	res.Status, res.KeyID, res.Err = Skipped, stored.KeyID, dec.err
	r.opts.Metrics.Fleet.SetRotated(d.Name, stored.RotatedAt)
	return true
}

// takeLease takes d's lease for a rotation by trigger. Only a person waits (or is told who
// holds it); the daemon's own triggers skip, with a time to look again when there is one.
// When it cannot take it, it records why in res and reports false.
func (r *Rotator) takeLease(ctx context.Context, d Destination, trigger string, cond *condition, res *Result) (lease.Claim, bool) {
	manual := trigger == TriggerManual
	wait := r.opts.LeaseWait
	var opts []lease.AcquireOption
	if !manual {
		wait = 0
	}
	if !manual && !cond.recheck {
		// Every replica fires for this slot now: the last holder takes it first.
		opts = append(opts, lease.GiveWay())
	}
	claim, err := r.acquireOrWait(ctx, d, wait, cond, opts)
	switch {
	case err == nil:
		return claim, true
	case errors.Is(err, lease.ErrHeld) && !manual:
		res.Status, res.Err = Skipped, err
		res.RetryAt = r.lookAgainAt(err)
		if res.RetryAt.IsZero() {
			// The holder's rotation is not ours to count, but what is stored keeps the
			// freshness of this replica's metrics true. (With a look to come, that look
			// reads it.)
			if stored, gerr := r.opts.Sink.Get(ctx, d.Path); gerr == nil {
				r.opts.Metrics.Fleet.SetRotated(d.Name, stored.RotatedAt)
			}
		}
	case errors.Is(err, lease.ErrHeld):
		res.Reason, res.Err = ReasonBusy, fmt.Errorf("rotate %s: %w", d.Name, err)
	default:
		res.Reason, res.Err = ReasonLease, fmt.Errorf("rotate %s: not rotating without the destination's lease: %w", d.Name, err)
	}
	return nil, false
}

// lookAgainAt is when a scheduled fire that found the lease held looks again: soon after
// giving way to its last holder (the stored slot, or the lease if that holder is gone),
// else just after the holder's lease expires; zero when the holder named no expiry.
func (r *Rotator) lookAgainAt(err error) time.Time {
	held := (*lease.HeldError)(nil)
	switch {
	case errors.As(err, &held) && held.GivingWay:
		return r.opts.Now().Add(GiveWayLook)
	case held != nil && !held.ExpiresAt.IsZero():
		return held.ExpiresAt.Add(lease.MaxClockSkew + time.Second)
	}
	return time.Time{}
}

// acquireOrWait takes d's lease. When another process holds it and this rotation may wait
// (a person's, with --wait), that process's rotation stands for this one unless it stores
// nothing new: what is stored now is noted in cond, for the rotation to skip on a change.
func (r *Rotator) acquireOrWait(ctx context.Context, d Destination, wait time.Duration, cond *condition, opts []lease.AcquireOption) (lease.Claim, error) {
	claim, err := r.acquireLease(ctx, d, 0, opts...)
	if !errors.Is(err, lease.ErrHeld) || wait <= 0 {
		return claim, err
	}
	if stored, gerr := r.opts.Sink.Get(ctx, d.Path); gerr == nil || errors.Is(gerr, sink.ErrNotFound) {
		cond.stored, cond.waited = &stored.KeyID, true
	}
	return r.acquireLease(ctx, d, wait, opts...)
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
	if res.Status == Spooled {
		fields = append(fields, zap.Bool("spooled", true))
	}
	if res.Status == DryRun {
		r.log.Info("dry run: "+res.Plan, append(fields, zap.String("outcome", "dry_run"))...)
		if r.opts.OnResult != nil {
			r.opts.OnResult(*res)
		}
		return
	}
	if res.Status == Held {
		m.HeldRotations.WithLabelValues(res.Destination, res.Reason).Inc()
		r.log.Warn("rotation held: nothing minted", append(fields, zap.String("outcome", "held"), zap.String("reason", res.Reason), zap.Error(res.Err))...)
		if r.opts.OnResult != nil {
			r.opts.OnResult(*res)
		}
		return
	}
	if res.Forced {
		fields = append(fields, zap.Bool("forced", true))
	}
	if res.Status == Skipped {
		m.Skipped(res.Destination)
		r.log.Info("rotation skipped: another process holds the destination or already rotated it for this slot", append(fields, zap.String("outcome", "skipped"), zap.Error(res.Err))...)
		if r.opts.OnResult != nil {
			r.opts.OnResult(*res)
		}
		return
	}
	m.RecordOutcome(res.Destination, res.OK(), res.Reason)
	if res.OK() {
		m.Fleet.SetRotated(res.Destination, res.RotatedAt)
		if res.Warning != "" {
			r.log.Warn("rotation succeeded with a warning", append(fields, zap.String("outcome", "success"), zap.String("key_id", res.KeyID), zap.String("warning", res.Warning))...)
		} else {
			if res.Revoked != "" {
				fields = append(fields, zap.String("revoked_key_id", res.Revoked))
			}
			r.log.Info("rotation succeeded", append(fields, zap.String("outcome", "success"), zap.String("key_id", res.KeyID))...)
		}
	} else {
		m.Failure(res.Destination, res.Reason)
		if res.KeyID != "" {
			fields = append(fields, zap.String("key_id", res.KeyID))
		}
		if res.Reason == ReasonCanceled {
			// Shutdown came first: counted as a failure, but not an error to page anyone for.
			r.log.Info("rotation stopped at shutdown", append(fields, zap.String("outcome", "failure"), zap.String("reason", res.Reason), zap.Error(res.Err))...)
		} else {
			r.log.Error("rotation failed", append(fields, zap.String("outcome", "failure"), zap.String("reason", res.Reason), zap.Error(res.Err))...)
		}
	}
	if r.opts.OnResult != nil {
		r.opts.OnResult(*res)
	}
}
