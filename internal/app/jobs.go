package app

// What each destination's fires do, and the first fire after a start: a catch-up for a
// missed slot, the first rotation of a destination with nothing stored.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/backoff"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/scheduler"
	"github.com/rotatord/rotatord/internal/sink"
)

// maxLeaseRetries bounds the extra fires of one slot that wait for another replica's lease:
// looks 1, 2, 4 … s apart (each a read of the stored slot, no lease write), and one at the
// lease's expiry, which is the takeover if its holder died. Twelve cover a lease_ttl of an hour.
const maxLeaseRetries = 12

// leaseLooks spaces those looks: 1 s, 2 s, 4 s … (capped by the lease's expiry).
var leaseLooks = backoff.Policy{Initial: time.Second, Max: time.Hour}

// StartedFile, in state_dir, says when `rotatord run` first started there: before it, a
// stored secret older than its last slot was not "missed while rotatord was down".
const StartedFile = "first-started"

// jobs builds the scheduler's jobs: enabled destinations on their spread schedules, a
// catch-up fire for those that missed a scheduled time (policy missed: run_once), a first
// rotation inside the window for those with nothing stored (first_rotation: at_start), and
// blocked destinations (refused by the preflight) failing without rotating. It reads each
// destination's stored rotated_at once, for these decisions and the freshness metrics.
func jobs(ctx context.Context, c *App, blocked map[string]error, now time.Time) ([]scheduler.Job, error) {
	cfg := c.config()
	shared := cfg.Coordination.Mode == config.CoordinationVault
	awaited := 0 // slots not stored that a replica may be rotating
	var firstAtStart, firstOnSchedule []string
	out := make([]scheduler.Job, 0, len(cfg.Destinations))
	readCtx, cancel := c.startCtx(ctx)
	reads := readStored(readCtx, c.sink, cfg.Destinations)
	cancel()
	// A slot "missed while rotatord was down" needs rotatord to have run here before.
	_, statErr := os.Stat(filepath.Join(cfg.StateDir, StartedFile))
	ranBefore := statErr == nil
	for i, d := range cfg.Destinations {
		sched, err := d.SpreadSchedule()
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		c.metrics.Fleet.SetMaxAge(d.Name, d.EffectiveMaxAge(now))
		stored, err := reads[i].rec, reads[i].err
		neverRotated := errors.Is(err, sink.ErrNotFound)
		if c.rotator != nil && (err == nil || neverRotated) {
			c.rotator.Know(d.ID, stored, err == nil) // a rotation that may trust it reads nothing
		}
		switch {
		case err == nil:
			c.metrics.Fleet.SetRotated(d.Name, stored.RotatedAt)
		case neverRotated:
			// Nothing stored is overdue at once: receivers have no secret from rotatord.
			c.metrics.Fleet.SetNeverRotated(d.Name)
		}
		if !d.IsEnabled() {
			c.log.Info("destination paused (enabled: false); not scheduled", zap.String("destination", d.Name))
			c.metrics.Fleet.SetNext(d.Name, time.Time{})
			continue
		}
		job := scheduler.Job{Name: d.Name, Schedule: sched}
		st := firstFire(startFacts{d: d, sched: sched, stored: stored, found: err == nil, neverRotated: neverRotated, now: now})
		job.FirstAt, job.FirstSlot = st.at, st.slot
		switch st.kind {
		case startFirst:
			c.log.Debug("destination never rotated; first rotation at start, inside its window", zap.String("destination", d.Name), zap.Time("first_at", job.FirstAt))
			firstAtStart = append(firstAtStart, d.Name)
		case startOnSchedule:
			c.log.Debug("destination never rotated; first rotation at its next scheduled time (first_rotation: on_schedule)", zap.String("destination", d.Name))
			firstOnSchedule = append(firstOnSchedule, d.Name)
		case startMissed:
			fields := []zap.Field{zap.String("destination", d.Name), zap.Time("missed_slot", st.missed), zap.Time("last_rotated", stored.RotatedAt),
				zap.String("missed", d.Missed), zap.Time("catch_up_at", job.FirstAt)}
			if shared {
				// Replicas: a peer may be rotating this slot right now (this process
				// restarted in the middle of a burst). The catch-up reads the stored
				// slot first and skips it if a peer stored it; only a catch-up that
				// rotates says the slot was missed.
				awaited++
				c.log.Debug("slot not stored yet; another replica may be rotating it", fields...)
			} else if ranBefore {
				c.log.Warn("scheduled rotation missed while rotatord was down", fields...)
			} else {
				c.log.Info("stored secret older than its last scheduled time, at rotatord's first start with this state_dir; one catch-up rotation", fields...)
			}
		}
		job.Run = runFunc(c, Destination(d), neverRotated, shared, blocked[d.Name])
		out = append(out, job)
	}
	// One line each, however large the fleet (each destination's at debug level).
	if len(firstAtStart) > 0 {
		c.log.Info("destinations never rotated; first rotation at start, each inside its window", zap.Int("destinations", len(firstAtStart)), zap.Strings("first", firstAtStart[:min(len(firstAtStart), 10)]))
	}
	if len(firstOnSchedule) > 0 {
		c.log.Warn("destinations never rotated; first rotation at their next scheduled time (first_rotation: on_schedule)", zap.Int("destinations", len(firstOnSchedule)), zap.Strings("first", firstOnSchedule[:min(len(firstOnSchedule), 10)]))
	}
	if awaited > 0 {
		c.log.Info("slots not stored yet; another replica may be rotating them. Each is checked at its catch-up time (missed: run_once) and rotated only if still not stored",
			zap.Int("destinations", awaited))
	}
	return out, nil
}

// startKind is what a destination's first fire after a start is.
type startKind int

const (
	startOnTime     startKind = iota // nothing missed: its next scheduled time
	startFirst                       // never rotated, first_rotation: at_start
	startOnSchedule                  // never rotated, first_rotation: on_schedule
	startMissed                      // a slot between the stored rotation and now was missed
)

// startFacts is what the start knows of one enabled destination.
type startFacts struct {
	d      config.Destination
	sched  scheduler.Schedule
	stored sink.Record
	// found: the sink holds a record; neverRotated: the sink said it holds none (neither:
	// the sink could not be read, and the schedule alone decides).
	found, neverRotated bool
	now                 time.Time
}

// startPlan is firstFire's answer: the kind, and the first fire's time and slot (zero:
// the schedule's next time); missed is the slot that was missed.
type startPlan struct {
	kind     startKind
	at, slot time.Time
	missed   time.Time
}

// firstFire decides a destination's first fire after a start, from what is stored (the
// sink is the state): a first rotation at start, or a catch-up of a missed slot (missed:
// run_once), each at the destination's stable offset inside its window. Pure.
func firstFire(f startFacts) startPlan {
	d := f.d
	switch {
	case f.neverRotated && d.FirstRotation == config.FirstRotationAtStart:
		return startPlan{kind: startFirst, at: f.now.Add(d.Offset())}
	case f.neverRotated:
		return startPlan{kind: startOnSchedule}
	case !f.found:
		return startPlan{kind: startOnTime}
	}
	slot, missed := scheduler.Missed(f.sched, f.stored.RotatedAt, f.now)
	if !missed {
		return startPlan{kind: startOnTime}
	}
	p := startPlan{kind: startMissed, missed: slot}
	if d.Missed == config.MissedRunOnce {
		// The unjittered slot: every replica that finds the same stored rotation finds
		// the same missed slot, whatever its jitter.
		p.at, p.slot = f.now.Add(d.Offset()), slot
	}
	return p
}

// startReads bounds the sink reads in flight at start or reload: thousands of destinations
// are read in parallel, not one after the other, without a burst that a shared Vault feels.
const startReads = 16

// storedRead is what the sink answered for one destination.
type storedRead struct {
	rec sink.Record
	err error
}

// lister is a sink that can say which secrets a folder holds in one request (Vault).
type lister interface {
	Listed(ctx context.Context, dir string) (map[string]bool, error)
}

// readStored reads every destination's stored record, startReads at a time, in order. A
// sink that can list a folder is asked once per folder first: a secret not listed is not
// stored, with no read (a fleet that starts with nothing stored costs one request).
func readStored(ctx context.Context, s rotate.Sink, dests []config.Destination) []storedRead {
	out := make([]storedRead, len(dests))
	absent := make([]bool, len(dests))
	if l, ok := s.(lister); ok {
		folders := map[string]map[string]bool{}
		for i, d := range dests {
			dir, name := path.Split(d.VaultPath)
			listed, seen := folders[dir]
			if !seen {
				var err error
				if listed, err = l.Listed(ctx, dir); err != nil {
					listed = nil // unknown: read each secret
				}
				folders[dir] = listed
			}
			if listed != nil && !listed[name] {
				absent[i] = true
				out[i].err = fmt.Errorf("%s is not stored: %w", d.VaultPath, sink.ErrNotFound)
			}
		}
	}
	slots := make(chan struct{}, startReads)
	var wg sync.WaitGroup
	for i, d := range dests {
		if absent[i] {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			out[i].rec, out[i].err = s.Get(ctx, d.VaultPath)
		}()
	}
	wg.Wait()
	return out
}

// runFunc is what a destination's fire does: a blocked destination (refused by the
// preflight) fails without rotating; the first fire of one never rotated rotates unless a
// replica stored a secret meanwhile; the others rotate for their slot. With shared leases
// (replicas), a catch-up reads the stored slot before it touches the lease, and warns that
// the slot was missed only when it finds nobody rotated it and rotates it itself.
func runFunc(c *App, dest rotate.Destination, neverRotated, shared bool, blocked error) func(context.Context, scheduler.Fire) {
	if blocked != nil {
		return func(context.Context, scheduler.Fire) {
			c.rotator.Block(dest, rotate.TriggerSchedule, rotate.ReasonPreflight, fmt.Errorf("not rotated: %w", blocked))
		}
	}
	return func(ctx context.Context, f scheduler.Fire) {
		var res rotate.Result
		switch {
		case f.CatchUp && neverRotated:
			res = c.rotator.RotateFirst(ctx, dest)
		case f.Retry > 0 || f.CatchUp:
			res = c.rotator.RecheckSlot(ctx, dest, map[bool]string{true: rotate.TriggerCatchUp, false: rotate.TriggerSchedule}[f.CatchUp], f.Slot)
		default:
			res = c.rotator.RotateSlot(ctx, dest, rotate.TriggerSchedule, f.Slot)
		}
		if shared && f.CatchUp && !neverRotated && res.Status == rotate.Rotated {
			c.log.Warn("scheduled rotation missed: no replica had stored its slot; rotated now", zap.String("destination", dest.Name), zap.Time("slot", f.Slot))
		}
		// Another replica holds the lease. If it dies mid-rotation, its lease expires
		// and this slot is still to do (the slot check skips it if the holder finished).
		if !res.RetryAt.IsZero() && f.Retry < maxLeaseRetries && f.Defer != nil {
			// The holder usually stores the slot within a second: look again soon, backing
			// off, and at the latest when its lease expires.
			next := time.Now().Add(leaseLooks.Delay(f.Retry, nil))
			if next.After(res.RetryAt) {
				next = res.RetryAt
			}
			f.Defer(next)
		}
	}
}
