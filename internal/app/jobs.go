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
	"runtime/debug"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/backoff"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/gcpace"
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

// inlineStartReads is the largest fleet whose stored records the start reads before the
// scheduler starts. Above it, the scheduler starts first, every destination on its
// schedule, and the records are read after (readLater): each first rotation or catch-up is
// added as its record is read. A fleet of 100,000 with secrets in Vault is 100,000 reads.
var inlineStartReads = 5000

// errNotRead stands for a stored record that the start reads later (readLater).
var errNotRead = errors.New("not read yet")

// jobs builds the scheduler's jobs: enabled destinations on their spread schedules, a
// catch-up fire for those that missed a scheduled time (policy missed: run_once), a first
// rotation inside the window for those with nothing stored (first_rotation: at_start), and
// blocked destinations (refused by the preflight) failing without rotating. It reads each
// destination's stored rotated_at once, for these decisions and the freshness metrics;
// above inlineStartReads destinations it leaves them to readLater.
func jobs(ctx context.Context, c *App, now time.Time) ([]scheduler.Job, error) {
	cfg := c.config()
	st := c.newStartSummary(cfg)
	out := make([]scheduler.Job, 0, len(cfg.Destinations))
	reads := make([]storedRead, len(cfg.Destinations))
	if len(cfg.Destinations) > inlineStartReads {
		for i := range reads {
			reads[i].err = errNotRead
		}
		c.setReadLater(cfg.Destinations)
	} else {
		readCtx, cancel := c.startCtx(ctx)
		reads = readStored(readCtx, c.sink, cfg.Destinations)
		cancel()
		c.setReadLater(nil)
	}
	for i := range cfg.Destinations {
		d := &cfg.Destinations[i]
		sched, err := d.SpreadSchedule()
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		if !d.IsEnabled() {
			c.learnStored(*d, reads[i], now)
			c.log.Info("destination paused (enabled: false); not scheduled", zap.String("destination", d.Name))
			c.metrics.Fleet.SetNext(d.Name, time.Time{})
			continue
		}
		plan, neverRotated := st.plan(c, *d, sched, reads[i], now)
		job := scheduler.Job{Name: d.Name, Schedule: sched, FirstAt: plan.at, FirstSlot: plan.slot}
		job.Run = runFunc(c, d, neverRotated, st.shared)
		out = append(out, job)
	}
	st.log(c)
	return out, nil
}

// startSummary gathers what a start decided, for one line each however large the fleet.
type startSummary struct {
	shared, ranBefore             bool
	awaited                       int
	firstAtStart, firstOnSchedule []string
}

func (c *App) newStartSummary(cfg *config.Config) *startSummary {
	// A slot "missed while rotatord was down" needs rotatord to have run here before.
	_, statErr := os.Stat(filepath.Join(cfg.StateDir, StartedFile))
	return &startSummary{shared: cfg.Coordination.Mode == config.CoordinationVault, ranBefore: statErr == nil}
}

// learnStored hands what the sink answered for d to the rotator and the freshness metrics.
// It reports whether the sink holds nothing for d.
func (c *App) learnStored(d config.Destination, read storedRead, now time.Time) (neverRotated bool) {
	c.metrics.Fleet.SetMaxAge(d.Name, d.EffectiveMaxAge(now))
	stored, err := read.rec, read.err
	neverRotated = errors.Is(err, sink.ErrNotFound)
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
	return neverRotated
}

// plan decides the first fire of enabled destination d from what the sink answered (see
// firstFire), says so (each destination at debug level, a missed slot as a warning), and
// counts it for the summary.
func (st *startSummary) plan(c *App, d config.Destination, sched scheduler.Schedule, read storedRead, now time.Time) (startPlan, bool) {
	neverRotated := c.learnStored(d, read, now)
	p := firstFire(startFacts{d: d, sched: sched, stored: read.rec, found: read.err == nil, neverRotated: neverRotated, now: now})
	switch p.kind {
	case startFirst:
		c.log.Debug("destination never rotated; first rotation at start, inside its window", zap.String("destination", d.Name), zap.Time("first_at", p.at))
		st.firstAtStart = append(st.firstAtStart, d.Name)
	case startOnSchedule:
		c.log.Debug("destination never rotated; first rotation at its next scheduled time (first_rotation: on_schedule)", zap.String("destination", d.Name))
		st.firstOnSchedule = append(st.firstOnSchedule, d.Name)
	case startMissed:
		fields := []zap.Field{zap.String("destination", d.Name), zap.Time("missed_slot", p.missed), zap.Time("last_rotated", read.rec.RotatedAt),
			zap.String("missed", d.Missed), zap.Time("catch_up_at", p.at)}
		switch {
		case st.shared:
			// Replicas: a peer may be rotating this slot right now (this process
			// restarted in the middle of a burst). The catch-up reads the stored slot
			// first and skips it if a peer stored it; only a catch-up that rotates says
			// the slot was missed.
			st.awaited++
			c.log.Debug("slot not stored yet; another replica may be rotating it", fields...)
		case st.ranBefore:
			c.log.Warn("scheduled rotation missed while rotatord was down", fields...)
		default:
			c.log.Info("stored secret older than its last scheduled time, at rotatord's first start with this state_dir; one catch-up rotation", fields...)
		}
	}
	return p, neverRotated
}

// log says in one line each what the start decided for many destinations.
func (st *startSummary) log(c *App) {
	if len(st.firstAtStart) > 0 {
		c.log.Info("destinations never rotated; first rotation at start, each inside its window", zap.Int("destinations", len(st.firstAtStart)), zap.Strings("first", st.firstAtStart[:min(len(st.firstAtStart), 10)]))
	}
	if len(st.firstOnSchedule) > 0 {
		c.log.Warn("destinations never rotated; first rotation at their next scheduled time (first_rotation: on_schedule)", zap.Int("destinations", len(st.firstOnSchedule)), zap.Strings("first", st.firstOnSchedule[:min(len(st.firstOnSchedule), 10)]))
	}
	if st.awaited > 0 {
		c.log.Info("slots not stored yet; another replica may be rotating them. Each is checked at its catch-up time (missed: run_once) and rotated only if still not stored",
			zap.Int("destinations", st.awaited))
	}
}

// setReadLater keeps the destinations whose stored records the start left to readLater.
func (c *App) setReadLater(dests []config.Destination) {
	c.disc.mu.Lock()
	c.readLater = dests
	c.disc.mu.Unlock()
}

// readLaterChunk is how many stored records readLater reads before it schedules what they
// decided (startReads at a time).
const readLaterChunk = 1000

// startReadLater reads, once the scheduler runs, the stored records the start left (see
// inlineStartReads): the freshness metrics learn each, and each first rotation or catch-up
// it decides is added to the running scheduler. The reads stop with ctx.
func (c *App) startReadLater(ctx context.Context, sched *scheduler.Scheduler) {
	c.disc.mu.Lock()
	dests := c.readLater
	c.readLater = nil
	if c.stopReading != nil && len(dests) > 0 {
		c.stopReading() // the earlier jobs' reads: these jobs' reads replace them
	}
	if len(dests) > 0 {
		ctx, c.stopReading = context.WithCancel(ctx)
	}
	c.disc.mu.Unlock()
	if len(dests) == 0 {
		return
	}
	end := c.after.begin()
	go func() {
		defer end()
		began := time.Now()
		st := c.newStartSummary(c.config())
		added := 0
		for from := 0; from < len(dests) && ctx.Err() == nil; from += readLaterChunk {
			chunk := dests[from:min(from+readLaterChunk, len(dests))]
			reads := readStored(ctx, c.sink, chunk)
			now := time.Now()
			for i, d := range chunk {
				sched0, err := d.SpreadSchedule()
				if err != nil || !d.IsEnabled() {
					c.learnStored(d, reads[i], now)
					continue
				}
				p, neverRotated := st.plan(c, d, sched0, reads[i], now)
				if p.at.IsZero() {
					continue
				}
				if err := sched.CatchUp(ctx, d.Name, p.at, p.slot, neverRotated); err != nil {
					return
				}
				added++
			}
		}
		st.log(c)
		c.log.Info("stored records read after the start", zap.Int("destinations", len(dests)), zap.Int("first_rotations_and_catch_ups", added),
			zap.Duration("took", time.Since(began)))
	}()
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

// runFunc is what a destination's fire does: a destination the preflight blocks (c.rights,
// asked first when its rights are still to be asked) fails without rotating; the first fire of one never rotated rotates unless a
// replica stored a secret meanwhile; the others rotate for their slot. With shared leases
// (replicas), a catch-up reads the stored slot before it touches the lease, and warns that
// the slot was missed only when it finds nobody rotated it and rotates it itself.
//
// The fire holds d, an element of the config's list of destinations (which a config never
// writes once loaded), and makes the rotator's Destination from it when it runs: one
// pointer a destination for as long as the jobs live, instead of a copy of its fields
// (8 MB at 100,000 destinations).
func runFunc(c *App, d *config.Destination, neverRotated, shared bool) func(context.Context, scheduler.Fire) {
	return func(ctx context.Context, f scheduler.Fire) {
		dest := Destination(*d)
		if err := c.rights.check(ctx, c, dest.Name); err != nil {
			c.rotator.Block(dest, rotate.TriggerSchedule, rotate.ReasonPreflight, fmt.Errorf("not rotated: %w", err))
			return
		}
		var res rotate.Result
		switch {
		case f.CatchUp && (neverRotated || f.First):
			res = c.rotator.RotateFirst(ctx, dest)
		case f.Retry > 0 || f.CatchUp:
			res = c.rotator.RecheckSlot(ctx, dest, map[bool]string{true: rotate.TriggerCatchUp, false: rotate.TriggerSchedule}[f.CatchUp], f.Slot)
		default:
			res = c.rotator.RotateSlot(ctx, dest, rotate.TriggerSchedule, f.Slot)
		}
		if shared && f.CatchUp && !neverRotated && !f.First && res.Status == rotate.Rotated {
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

// afterStartGC is the collector's GOGC while the work after a large start runs, and a
// reload (at 50 the reads of 100,000 records took the RSS to 389 MiB; at 25, to under the
// start's own peak, with the work no slower: 156-166 s against 168 s). A fleet whose
// records each name 64 earlier keys keeps more live, and at 25 peaked at 309-315 MiB in
// those reads and at 347-354 MiB through a reload after an edit; at 10, 276 and 304 MiB,
// the reads no slower (256 s against 232-288 s), the reload 1.5 s slower.
const afterStartGC = 10

// afterStart is the work a large start leaves for once the daemon is ready (the stored
// records read, the rights not asked at the start), and a SIGHUP reload, which builds the
// new config, listing and jobs beside the running ones. It makes garbage fast (a Vault answer
// decoded per destination), so while any of it runs the collector runs ten times as often
// (GOGC afterStartGC instead of 100): the peak stays nearer the live heap. When the last of
// it ends, the collector is set back and the freed memory goes back to the system at once.
type afterStart struct {
	mu      sync.Mutex
	running int
	release func() // the collector's tighter setting, while any runs
}

func (a *afterStart) begin() (end func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running == 0 {
		a.release = gcpace.Tighten(afterStartGC)
	}
	a.running++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.running--; a.running == 0 {
				a.release()
				debug.FreeOSMemory()
			}
		})
	}
}
