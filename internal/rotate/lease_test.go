package rotate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/lease/local"
	filesink "github.com/rotatord/rotatord/internal/sink/file"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
)

// fakeLease hands out one scripted claim per Acquire and records what happens to it. It
// stands for a lease shared between hosts (fences, unsettled), as *vaultlease.Lease.
type fakeLease struct {
	next     func() *fakeClaim
	acquired []*fakeClaim
}

func (l *fakeLease) Shared() bool { return true }

func (l *fakeLease) Acquire(context.Context, string, time.Duration, ...lease.AcquireOption) (lease.Claim, error) {
	c := l.next()
	if c.acquireErr != nil {
		return nil, c.acquireErr
	}
	l.acquired = append(l.acquired, c)
	return c, nil
}

type fakeClaim struct {
	fence               int64
	unsettled, tookOver bool
	acquireErr, keepErr error
	keeps               []time.Duration
	released            bool
	releasedUnsettled   bool
}

func (c *fakeClaim) Fence() int64    { return c.fence }
func (c *fakeClaim) Unsettled() bool { return c.unsettled }
func (c *fakeClaim) TookOver() bool  { return c.tookOver }
func (c *fakeClaim) Continues() bool { return false }
func (c *fakeClaim) Keep(_ context.Context, d time.Duration) error {
	c.keeps = append(c.keeps, d)
	return c.keepErr
}
func (c *fakeClaim) Release(_ context.Context, unsettled bool) error {
	c.released, c.releasedUnsettled = true, unsettled
	return nil
}

func withLease(t *testing.T, h *harness, l rotate.Lease) *rotate.Rotator {
	t.Helper()
	opts := h.opts
	opts.Lease, opts.RequestTimeout = l, 2*time.Second
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSlotAndFenceTravelWithTheSecret: the lease's fencing number and the slot are stored
// with the secret; a second rotation for a stored slot (a replica late to it) skips
// without a request; the next slot rotates; the claim is kept for the request timeout
// before each rotate and released settled.
func TestSlotAndFenceTravelWithTheSecret(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	fence := int64(6)
	l := &fakeLease{next: func() *fakeClaim { fence++; return &fakeClaim{fence: fence} }}
	r := withLease(t, h, l)
	ctx := context.Background()
	slot := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

	res := r.RotateSlot(ctx, h.dest, rotate.TriggerSchedule, slot)
	if !res.OK() || res.Fence != 7 {
		t.Fatalf("first slot: %+v", res)
	}
	got, err := h.sink.Get(ctx, h.dest.Path)
	if err != nil || got.Fence != 7 || !got.Slot.Equal(slot) {
		t.Fatalf("stored: fence %d slot %s (%v); want 7 and %s", got.Fence, got.Slot, err, slot)
	}
	res = r.RotateSlot(ctx, h.dest, rotate.TriggerSchedule, slot)
	if res.Status != rotate.Skipped || res.OK() || !strings.Contains(fmt.Sprint(res.Err), "slot 2026-11-26T03:00:00Z already rotated") {
		t.Fatalf("same slot again: %+v", res)
	}
	res = r.RotateSlot(ctx, h.dest, rotate.TriggerSchedule, slot.Add(time.Minute))
	if !res.OK() || res.Fence != 9 {
		t.Fatalf("next slot: %+v", res)
	}
	if n := len(h.em.RequestsFor("rotate", h.dest.ID)); n != 2 {
		t.Errorf("rotate requests = %d, want 2 (the repeated slot sends none)", n)
	}
	for i, c := range l.acquired {
		if !c.released || c.releasedUnsettled {
			t.Errorf("claim %d: released %v, unsettled %v; want released settled", i, c.released, c.releasedUnsettled)
		}
	}
	if k := l.acquired[0].keeps; len(k) == 0 || k[0] != 2*time.Second {
		t.Errorf("claim kept for %v before the rotate, want the request timeout (2s) first", k)
	}
	if got := testutil.ToFloat64(h.m.LeaseAcquisitions.WithLabelValues(metrics.LeaseAcquired)); got != 3 {
		t.Errorf("lease_acquisitions_total{acquired} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(h.m.LeasesHeld); got != 0 {
		t.Errorf("leases_held = %v after the rotations, want 0", got)
	}
}

// TestUnsettledLeaseListsFirst: the previous holder died after the provider minted a key
// (its lease was taken over): the new holder lists first, reports that key lost, and
// rotates once to recover, so the sink ends with the provider's active key.
func TestUnsettledLeaseListsFirst(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	ctx := context.Background()
	plain, err := rotate.New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	if res := plain.Rotate(ctx, h.dest, rotate.TriggerManual); !res.OK() {
		t.Fatal(res.Err)
	}
	minted, err := h.em.RotateDirect(h.dest.ID) // the dead holder's key: minted, never stored
	if err != nil {
		t.Fatal(err)
	}
	l := &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 12, unsettled: true, tookOver: true} }}
	before := len(h.ops())
	res := withLease(t, h, l).Rotate(ctx, h.dest, rotate.TriggerSchedule)
	if !res.OK() || len(res.LostKeyIDs) != 1 || res.LostKeyIDs[0] != minted {
		t.Fatalf("result = %+v; want success with lost key %s", res, minted)
	}
	if got, want := strings.Join(h.ops()[before:], ","), "list_signing_secrets,rotate"; got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	h.assertStoredActive(t)
	if got := testutil.ToFloat64(h.m.LeaseAcquisitions.WithLabelValues(metrics.LeaseTakenOver)); got != 1 {
		t.Errorf("lease_acquisitions_total{taken_over} = %v, want 1", got)
	}
}

// TestLostLeaseStopsBeforeRotate: a claim that cannot be kept for the request stops the
// rotation before anything is minted, and says so in reason and metric.
func TestLostLeaseStopsBeforeRotate(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	lost := fmt.Errorf("lease kv/data/rotatord/leases/x (fence 3): another process wrote it: %w", lease.ErrLost)
	l := &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 3, keepErr: lost} }}
	res := withLease(t, h, l).Rotate(context.Background(), h.dest, rotate.TriggerSchedule)
	if res.OK() || res.Reason != rotate.ReasonLeaseLost || !errors.Is(res.Err, lease.ErrLost) {
		t.Fatalf("result = %+v; want reason lease_lost", res)
	}
	if n := len(h.em.RequestsFor("rotate", h.dest.ID)); n != 0 {
		t.Errorf("rotate requests = %d, want 0", n)
	}
	if got := testutil.ToFloat64(h.m.LeaseLost); got != 1 {
		t.Errorf("lease_lost_total = %v, want 1", got)
	}
	if _, unverified, _ := h.spool.Intent(h.dest.ID); unverified {
		t.Error("an intent remains although no rotate was sent")
	}
}

// TestHeldLeaseSkipsAutomaticRefusesManual: a scheduled rotation of a destination another
// process holds is skipped; a manual one fails with reason busy, naming the holder.
func TestHeldLeaseSkipsAutomaticRefusesManual(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	expires := time.Date(2026, 11, 26, 3, 0, 30, 0, time.UTC)
	held := &lease.HeldError{DestinationID: h.dest.ID, Holder: "pid 7 on host-b (rotatord run)", ExpiresAt: expires}
	r := withLease(t, h, &fakeLease{next: func() *fakeClaim { return &fakeClaim{acquireErr: held} }})
	// Skipped, with a time to look again: once the holder's lease could be taken over.
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); res.Status != rotate.Skipped || res.OK() ||
		!res.RetryAt.Equal(expires.Add(lease.MaxClockSkew+time.Second)) {
		t.Errorf("scheduled: %+v; want skipped, retry at %s", res, expires.Add(lease.MaxClockSkew+time.Second))
	}
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.Reason != rotate.ReasonBusy || !strings.Contains(res.Err.Error(), "pid 7 on host-b") {
		t.Errorf("manual: %+v; want busy naming the holder", res)
	}
	if got := testutil.ToFloat64(h.m.LeaseAcquisitions.WithLabelValues(metrics.LeaseHeld)); got != 2 {
		t.Errorf("lease_acquisitions_total{held} = %v, want 2", got)
	}
	if n := len(h.em.Requests()); n != 0 {
		t.Errorf("%d API requests, want none", n)
	}
}

// TestGivingWayLooksAgainASecondLater: a scheduled fire that gave way to the lease's last
// holder is skipped with a look a second later (the holder stores the slot by then), not at
// once (it would race the holder for the lease) and not at some expiry.
func TestGivingWayLooksAgainASecondLater(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	gave := &lease.HeldError{DestinationID: h.dest.ID, Holder: "pid 7 on host-b (rotatord run), which released it at …", GivingWay: true,
		ExpiresAt: time.Now().Add(-time.Minute)}
	r := withLease(t, h, &fakeLease{next: func() *fakeClaim { return &fakeClaim{acquireErr: gave} }})
	before := time.Now()
	res := r.RotateSlot(context.Background(), h.dest, rotate.TriggerSchedule, time.Now().Truncate(time.Minute))
	if res.Status != rotate.Skipped || res.RetryAt.Before(before.Add(rotate.GiveWayLook)) || res.RetryAt.After(time.Now().Add(rotate.GiveWayLook)) {
		t.Errorf("gave way: %+v; want skipped with a look %s later", res, rotate.GiveWayLook)
	}
	if n := len(h.em.Requests()); n != 0 {
		t.Errorf("%d API requests, want none", n)
	}
}

// TestFenceDecidesReplay: a spooled secret minted under an older lease (a holder that lost
// its lease, back from a partition) never replaces one minted under a newer lease, even
// with a later rotated_at; one minted under a newer lease replaces an older-fenced one.
func TestFenceDecidesReplay(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	ctx := context.Background()
	r := withLease(t, h, &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 50} }})
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	stored := sink.Record{DestinationID: h.dest.ID, KeyID: "0b3a9c7e-1f2d-4e5a-8b6c-7d8e9f0a1b2c", Secret: secret.New("whsec_newer_lease"), RotatedAt: t0, Fence: 9}
	if _, err := h.sink.Put(ctx, h.dest.Path, stored, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	old := spool.Entry{DestinationID: h.dest.ID, Destination: h.dest.Name, Path: h.dest.Path, KeyID: "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f",
		Secret: secret.New("whsec_older_lease"), RotatedAt: t0.Add(time.Minute), SpooledAt: t0.Add(time.Minute), Fence: 5}
	if err := h.spool.Put(old); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Replay(ctx); n != 0 || err != nil {
		t.Fatalf("replay: %d left, %v", n, err)
	}
	if got, _ := h.sink.Get(ctx, h.dest.Path); got.KeyID != stored.KeyID {
		t.Errorf("stored key %s, want %s (fence 9 beats fence 5)", got.KeyID, stored.KeyID)
	}
	if got := testutil.ToFloat64(h.m.StaleWritesSkipped); got != 1 {
		t.Errorf("stale_writes_skipped_total = %v, want 1", got)
	}
	newer := old
	newer.KeyID, newer.Secret, newer.Fence, newer.RotatedAt = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", secret.New("whsec_newest_lease"), 11, t0.Add(-time.Minute)
	if err := h.spool.Put(newer); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Replay(ctx); n != 0 || err != nil {
		t.Fatalf("replay: %d left, %v", n, err)
	}
	if got, _ := h.sink.Get(ctx, h.dest.Path); got.KeyID != newer.KeyID || got.Fence != 11 {
		t.Errorf("stored key %s fence %d, want %s fence 11 (fence 11 beats fence 9)", got.KeyID, got.Fence, newer.KeyID)
	}
}

// TestSpooledSecretLeavesLeaseUnsettled: a secret that could not be stored waits in this
// process's spool; the lease is released unsettled, so that if this host never returns
// the next holder lists keys and reports the key instead of superseding it silently.
func TestSpooledSecretLeavesLeaseUnsettled(t *testing.T) {
	fs, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHarness(t, harnessOpts{sink: downSink{fs}, maxSinkWait: time.Nanosecond})
	l := &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 4} }}
	res := withLease(t, h, l).Rotate(context.Background(), h.dest, rotate.TriggerSchedule)
	if res.Status != rotate.Spooled {
		t.Fatalf("result = %+v; want the secret spooled", res)
	}
	if c := l.acquired[0]; !c.released || !c.releasedUnsettled {
		t.Errorf("claim released %v, unsettled %v; want released unsettled", c.released, c.releasedUnsettled)
	}
	entries, _, err := h.spool.List(false)
	if err != nil || len(entries) != 1 || entries[0].Fence != 4 {
		t.Errorf("spool = %+v, %v; want one entry with fence 4", entries, err)
	}
}

// TestDriftRotationSkipsWhenSettled: drift seen with one stored key is not acted on once
// another process has stored a newer key; while the key is unchanged it rotates. A drift
// check of a destination whose lease is held elsewhere checks nothing.
func TestDriftRotationSkipsWhenSettled(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	ctx := context.Background()
	l := &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 1} }}
	r := withLease(t, h, l)
	if res := r.Rotate(ctx, h.dest, rotate.TriggerManual); !res.OK() {
		t.Fatal(res.Err)
	}
	if _, err := h.em.RotateDirect(h.dest.ID); err != nil { // rotated outside rotatord
		t.Fatal(err)
	}
	drift, err := r.CheckDrift(ctx, h.dest)
	if err != nil || !drift.Drifted {
		t.Fatalf("drift = %+v, %v; want drifted", drift, err)
	}
	// Another replica rotates (on its schedule) before this one acts on the drift.
	if res := r.Rotate(ctx, h.dest, rotate.TriggerSchedule); !res.OK() {
		t.Fatal(res.Err)
	}
	rotates := len(h.em.RequestsFor("rotate", h.dest.ID))
	res := r.RotateDrifted(ctx, h.dest, drift)
	if res.Status != rotate.Skipped || !strings.Contains(fmt.Sprint(res.Err), "drift settled") || len(h.em.RequestsFor("rotate", h.dest.ID)) != rotates {
		t.Fatalf("drift rotation after another rotation: %+v; want skipped without a request", res)
	}
	// Drift again, acted on at once: it rotates.
	if _, err := h.em.RotateDirect(h.dest.ID); err != nil {
		t.Fatal(err)
	}
	if drift, err = r.CheckDrift(ctx, h.dest); err != nil || !drift.Drifted {
		t.Fatalf("drift = %+v, %v", drift, err)
	}
	if res := r.RotateDrifted(ctx, h.dest, drift); !res.OK() || res.Trigger != rotate.TriggerDrift {
		t.Fatalf("drift rotation: %+v", res)
	}
	h.assertStoredActive(t)

	held := withLease(t, h, &fakeLease{next: func() *fakeClaim { return &fakeClaim{acquireErr: &lease.HeldError{DestinationID: h.dest.ID}} }})
	if _, err := h.em.RotateDirect(h.dest.ID); err != nil {
		t.Fatal(err)
	}
	if drift, err := held.CheckDrift(ctx, h.dest); err != nil || drift.Checked {
		t.Errorf("drift check while another process holds the lease: %+v, %v; want not checked", drift, err)
	}
}

// TestFreshKeyIsStoredWhateverTheStoredFence: a lease entry deleted in Vault starts its
// fences again at 1, below the fence of the stored secret. A key the provider has just
// minted is still stored: the provider's answer makes it the active key.
func TestFreshKeyIsStoredWhateverTheStoredFence(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	ctx := context.Background()
	k := h.em.Keys(h.dest.ID)[0]
	old := sink.Record{DestinationID: h.dest.ID, KeyID: k.ID, Secret: secret.New(k.Secret), RotatedAt: time.Now(), Fence: 57}
	if _, err := h.sink.Put(ctx, h.dest.Path, old, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	r := withLease(t, h, &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 1} }})
	if res := r.Rotate(ctx, h.dest, rotate.TriggerSchedule); !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	h.assertStoredActive(t)
	if got := testutil.ToFloat64(h.m.StaleWritesSkipped); got != 0 {
		t.Errorf("stale_writes_skipped_total = %v, want 0", got)
	}
}

// sharedLease is fakeLease with a hook that runs while the lease is being taken: what a
// peer does between this replica's look at the stored slot and its taking the lease.
type sharedLease struct {
	fakeLease
	during func()
}

func (l *sharedLease) Acquire(ctx context.Context, id string, wait time.Duration, opts ...lease.AcquireOption) (lease.Claim, error) {
	if l.during != nil {
		l.during()
	}
	return l.fakeLease.Acquire(ctx, id, wait, opts...)
}

// TestRecheckReadsAgainUnderTheLease: a replica looks again at a slot (RecheckSlot) and
// finds it not stored; before it has the lease, a peer rotates the slot, stores it and
// releases. Under the lease the replica must read the stored slot again and skip: what it
// read before the lease is stale. (Seen with three replicas on @every 10s: two rotations of
// one slot 32 ms apart.)
func TestRecheckReadsAgainUnderTheLease(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	ctx := context.Background()
	slot := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	peer := withLease(t, h, &fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 1} }})
	l := &sharedLease{fakeLease: fakeLease{next: func() *fakeClaim { return &fakeClaim{fence: 2} }}}
	l.during = func() {
		if res := peer.RotateSlot(ctx, h.dest, rotate.TriggerSchedule, slot); !res.OK() {
			t.Errorf("the peer's rotation: %+v", res)
		}
	}
	r := withLease(t, h, l)
	res := r.RecheckSlot(ctx, h.dest, rotate.TriggerSchedule, slot)
	if res.Status != rotate.Skipped || !strings.Contains(fmt.Sprint(res.Err), "already rotated") {
		t.Errorf("recheck after the peer stored the slot: %+v; want skipped as already rotated", res)
	}
	if n := len(h.em.RequestsFor("rotate", h.dest.ID)); n != 1 {
		t.Errorf("%d rotate requests for one slot, want 1 (the peer's)", n)
	}
}

// TestLeaseIsKeptThroughWaits: a holder that waits (here 10 s on a 429's Retry-After, the
// same for an unreachable webhook.co or a settle period) renews its lease all along, in
// steps no longer than a request's timeout, so a peer never takes over a live holder; a
// lease lost during the wait stops the rotation before any rotate is sent again.
func TestLeaseIsKeptThroughWaits(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	claim := &fakeClaim{fence: 1}
	r := withLease(t, h, &fakeLease{next: func() *fakeClaim { return claim }})
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "10"})
	if res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual); !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	var kept time.Duration
	for _, d := range claim.keeps {
		if d > 2*time.Second {
			t.Errorf("a keep of %s: more than the request timeout the lease can promise", d)
		}
		kept += d
	}
	// One keep of 2 s before each of the two rotates, and the 10 s wait covered between.
	if kept < 14*time.Second {
		t.Errorf("keeps %v cover %s; want the 10 s wait covered besides both requests", claim.keeps, kept)
	}

	lost := &fakeClaim{fence: 2}
	r = withLease(t, h, &fakeLease{next: func() *fakeClaim { return lost }})
	h.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "10"})
	before := len(h.em.RequestsFor(emulator.OpRotate, ""))
	// The lease is lost once the first request has gone (a peer took it over).
	h.em.OnRequest(func(req emulator.Request) {
		if req.Operation == emulator.OpRotate {
			lost.keepErr = fmt.Errorf("taken over: %w", lease.ErrLost)
		}
	})
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.OK() || res.Reason != rotate.ReasonLeaseLost {
		t.Errorf("lease lost while waiting: result %+v, want reason %s", res, rotate.ReasonLeaseLost)
	}
	if n := len(h.em.RequestsFor(emulator.OpRotate, "")) - before; n != 1 {
		t.Errorf("%d rotates sent, want 1 (none after the lease was lost)", n)
	}
}

// TestManualRotationWaitingStandsForTheOther: `rotate --wait` finds another process
// rotating the destination, waits for it, and reports that rotation instead of adding a
// second one (which would revoke the key receivers just got). If the other one stored
// nothing new, it rotates.
func TestManualRotationWaitingStandsForTheOther(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	h.storeCurrent(t, h.dest)
	ctx := context.Background()
	var peerKey string
	calls := 0
	l := &fakeLease{next: func() *fakeClaim {
		calls++
		if calls == 1 {
			return &fakeClaim{acquireErr: &lease.HeldError{DestinationID: h.dest.ID, Holder: "pid 7 on peer (rotatord run)"}}
		}
		// The holder finished its rotation while this one waited.
		id, err := h.em.RotateDirect(h.dest.ID)
		if err != nil {
			t.Fatal(err)
		}
		peerKey = id
		k := h.em.Keys(h.dest.ID)[0]
		if _, err := h.sink.Put(ctx, h.dest.Path, sink.Record{DestinationID: h.dest.ID, KeyID: k.ID, Secret: secret.New(k.Secret), RotatedAt: time.Now()}, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
		return &fakeClaim{fence: 9}
	}}
	opts := h.opts
	opts.Lease, opts.RequestTimeout, opts.LeaseWait = l, 2*time.Second, time.Minute
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Rotate(ctx, h.dest, rotate.TriggerManual)
	if res.Status != rotate.Skipped || res.KeyID != peerKey || !strings.Contains(fmt.Sprint(res.Err), "rotated by another process while this one waited") {
		t.Errorf("result = %+v, want the peer's rotation (key %s) reported", res, peerKey)
	}
	if n := len(h.em.RequestsFor(emulator.OpRotate, "")); n != 0 {
		t.Errorf("%d rotates sent after waiting for the other rotation, want 0", n)
	}
	// The holder stored nothing new: the waiting rotation rotates.
	calls = 0
	l.next = func() *fakeClaim {
		calls++
		if calls == 1 {
			return &fakeClaim{acquireErr: &lease.HeldError{DestinationID: h.dest.ID}}
		}
		return &fakeClaim{fence: 10}
	}
	if res := r.Rotate(ctx, h.dest, rotate.TriggerManual); !res.OK() {
		t.Errorf("after a holder that stored nothing: %+v", res)
	}
}

// TestSpoolIsAskedAfterAnotherProcess: a process that left a destination's spool clear asks
// the spool nothing before its next rotation, unless another process held the destination
// since. Here another process (the `rotate` command beside the daemon: the same state_dir,
// local locks) rotated it and its sink write failed, so its secret waits in the spool; the
// daemon's next rotation stores that secret first, and only then rotates.
func TestSpoolIsAskedAfterAnotherProcess(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	daemonLocks, err := local.New(h.stateDir, "rotatord run")
	if err != nil {
		t.Fatal(err)
	}
	daemon := withLease(t, h, daemonLocks)
	ctx := context.Background()
	if res := daemon.Rotate(ctx, h.dest, rotate.TriggerSchedule); !res.OK() {
		t.Fatalf("first rotation: %v", res.Err)
	}
	// The other process: its own lock holder name, its own Rotator, the same spool, and a
	// sink that refuses the write.
	otherLocks, err := local.New(h.stateDir, "rotatord rotate")
	if err != nil {
		t.Fatal(err)
	}
	opts := h.opts
	opts.Lease, opts.RequestTimeout = otherLocks, 2*time.Second
	opts.Sink = &flakySink{Sink: h.sink, failures: 1000}
	opts.Policy.MaxSinkWait = time.Millisecond
	other, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	res := other.Rotate(ctx, h.dest, rotate.TriggerManual)
	if res.Status != rotate.Spooled {
		t.Fatalf("the other process: %v %v, want its secret spooled", res.Status, res.Err)
	}
	waiting := res.KeyID
	if res := daemon.Rotate(ctx, h.dest, rotate.TriggerSchedule); !res.OK() {
		t.Fatalf("the daemon's next rotation: %v", res.Err)
	}
	stored, err := h.sink.Get(ctx, h.dest.Path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range stored.History.Entries {
		found = found || e.KeyID == waiting
	}
	if !found || stored.KeyID == waiting {
		t.Errorf("the secret that waited (%s) was not stored before the daemon rotated again: history %s", waiting, stored.History)
	}
	if ids, _ := h.spool.PendingKeyIDs(h.dest.ID); len(ids) != 0 {
		t.Errorf("still in the spool: %v", ids)
	}
	h.assertStoredActive(t)
}
