package metrics

// Each destination's state, kept in plain memory and exported at scrape time: when its
// stored secret was rotated, whether it is overdue (age moves with the clock), its
// rotations by result, its next rotation, its consecutive failures, drift and holds. At
// fleet scale (metrics.destination_series: problems) only the destinations in trouble are
// exported; the aggregates always are.

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Problems a destination can be in, the values of rotatord_destinations_in_trouble{problem}.
const (
	ProblemOverdue  = "overdue"  // the stored secret is older than max_age, or nothing is stored
	ProblemFailing  = "failing"  // its last rotation failed
	ProblemDrifting = "drifting" // the provider's active key is not the stored one
	ProblemHeld     = "held"     // a consumer holds its rotation back
	ProblemLate     = "late"     // its scheduled time passed a minute ago and the scheduler did not move on
)

// problemOrder is the problems in the order destination.problems says them and they are exported.
var problemOrder = [...]string{ProblemOverdue, ProblemFailing, ProblemDrifting, ProblemHeld, ProblemLate}

// Problems lists every problem, in the order they are exported.
var Problems = problemOrder[:]

// lateAfter is how long past its scheduled time a destination's next rotation may stay
// before the destination counts as late (a fire takes moments to move it on).
const lateAfter = time.Minute

// Fleet is the per-destination collector.
type Fleet struct {
	now func() time.Time
	// problemsOnly exports a destination's series only while it is in trouble.
	problemsOnly bool

	rotated, overdue, rotations, next, consecutive, drift, trouble, totals *prometheus.Desc

	mu    sync.Mutex
	state map[string]*destination
	// total counts every destination's rotations by result (success, failure, skipped).
	total map[string]float64
}

// destination is what the Fleet keeps of one destination.
type destination struct {
	rotatedAt time.Time // zero: no stored secret known
	// never is true when the sink was read and holds nothing: overdue at once.
	never                bool
	maxAge               time.Duration
	successes, failures  float64
	next                 time.Time // zero: none (paused, or gone)
	consecutive          float64
	driftChecked, drifts bool
	heldBy               map[string]bool // the consumers holding its rotation back
}

func newFleet(now func() time.Time, problemsOnly bool) *Fleet {
	d := []string{"destination"}
	return &Fleet{
		now: now, problemsOnly: problemsOnly,
		rotated:     prometheus.NewDesc("rotatord_secret_rotated_timestamp_seconds", "Unix time the stored secret was rotated (rotated_at in the sink; 0: none known).", d, nil),
		overdue:     prometheus.NewDesc("rotatord_overdue", "1 when the stored secret is older than max_age, or nothing is stored.", d, nil),
		rotations:   prometheus.NewDesc("rotatord_rotations_total", "Rotations finished, by destination and result (success or failure).", []string{"destination", "result"}, nil),
		next:        prometheus.NewDesc("rotatord_next_rotation_timestamp_seconds", "Unix time of the destination's next scheduled rotation (0: not scheduled).", d, nil),
		consecutive: prometheus.NewDesc("rotatord_consecutive_failures", "Rotations of the destination that failed in a row (0 after a success).", d, nil),
		drift:       prometheus.NewDesc("rotatord_drift", "1 when the provider's active key is not the stored one at the last drift check.", d, nil),
		trouble:     prometheus.NewDesc("rotatord_destinations_in_trouble", "Destinations in each problem (overdue, failing, drifting, held, late), whatever metrics.destination_series says.", []string{"problem"}, nil),
		totals:      prometheus.NewDesc("rotatord_fleet_rotations_total", "Rotations of every destination by result (success, failure, skipped), whatever metrics.destination_series says.", []string{"result"}, nil),
		state:       map[string]*destination{},
		total:       map[string]float64{ResultSuccess: 0, ResultFailure: 0, ResultSkipped: 0},
	}
}

func (f *Fleet) entry(dest string) *destination {
	e, ok := f.state[dest]
	if !ok {
		e = &destination{}
		f.state[dest] = e
	}
	return e
}

// update runs fn on dest's entry under the lock.
func (f *Fleet) update(dest string, fn func(*destination)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.entry(dest))
}

// add creates the destination's series (at 0).
func (f *Fleet) add(dest string) { f.update(dest, func(*destination) {}) }

// remove deletes the destination's series.
func (f *Fleet) remove(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.state, dest)
}

// SetRotated records when the destination's stored secret was rotated.
func (f *Fleet) SetRotated(dest string, at time.Time) {
	f.update(dest, func(e *destination) { e.rotatedAt, e.never = at, false })
}

// SetNeverRotated records that the sink holds no secret for the destination: it counts as
// overdue until one is stored (receivers have nothing from rotatord).
func (f *Fleet) SetNeverRotated(dest string) {
	f.update(dest, func(e *destination) { e.rotatedAt, e.never = time.Time{}, true })
}

// SetMaxAge records the destination's max_age.
func (f *Fleet) SetMaxAge(dest string, d time.Duration) {
	f.update(dest, func(e *destination) { e.maxAge = d })
}

// SetNext records the destination's next scheduled rotation (zero: none).
func (f *Fleet) SetNext(dest string, at time.Time) {
	f.update(dest, func(e *destination) { e.next = at })
}

// SetDrift records the outcome of a drift check.
func (f *Fleet) SetDrift(dest string, drifted bool) {
	f.update(dest, func(e *destination) { e.driftChecked, e.drifts = true, drifted })
}

// Hold records that consumer holds the destination's rotation back (on), or no longer.
func (f *Fleet) Hold(dest, consumer string, on bool) {
	f.update(dest, func(e *destination) {
		switch {
		case on && e.heldBy == nil:
			e.heldBy = map[string]bool{consumer: true}
		case on:
			e.heldBy[consumer] = true
		default:
			delete(e.heldBy, consumer)
		}
	})
}

// outcome counts a rotation's result and keeps the consecutive failures.
func (f *Fleet) outcome(dest string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entry(dest)
	if ok {
		e.successes++
		e.consecutive = 0
		f.total[ResultSuccess]++
		return
	}
	e.failures++
	e.consecutive++
	f.total[ResultFailure]++
}

// skipped counts a skipped rotation in the aggregate.
func (f *Fleet) skipped() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total[ResultSkipped]++
}

// Next is the destination's next scheduled rotation (zero: none or unknown).
func (f *Fleet) Next(dest string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.state[dest]; ok {
		return e.next
	}
	return time.Time{}
}

// Overdue is the one rule for an overdue secret, for the metric and for `rotatord status`:
// nothing stored (never), or a stored secret older than maxAge at now. A secret whose
// rotation time is unknown (zero, not never) is not judged.
func Overdue(rotatedAt time.Time, never bool, maxAge time.Duration, now time.Time) bool {
	if never {
		return true
	}
	return !rotatedAt.IsZero() && maxAge > 0 && now.Sub(rotatedAt) > maxAge
}

// problems says which problems e is in at now.
func (e *destination) problems(now time.Time) (overdue, failing, drifting, held, late bool) {
	return Overdue(e.rotatedAt, e.never, e.maxAge, now), e.consecutive > 0, e.driftChecked && e.drifts, len(e.heldBy) > 0,
		!e.next.IsZero() && now.Sub(e.next) > lateAfter
}

// Describe implements prometheus.Collector.
func (f *Fleet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.rotated, f.overdue, f.rotations, f.next, f.consecutive, f.drift, f.trouble, f.totals} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It copies what it exports under the lock and
// emits it after: the registry takes the series at its own pace (a fleet's scrape takes a
// while), and a rotation's or the scheduler's update does not wait for it.
func (f *Fleet) Collect(ch chan<- prometheus.Metric) {
	rows, in, totals := f.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, r := range rows {
		gauge(f.rotated, r.rotated, r.dest)
		gauge(f.overdue, b2f(r.overdue), r.dest)
		gauge(f.next, r.next, r.dest)
		gauge(f.consecutive, r.consecutive, r.dest)
		ch <- prometheus.MustNewConstMetric(f.rotations, prometheus.CounterValue, r.successes, r.dest, ResultSuccess)
		ch <- prometheus.MustNewConstMetric(f.rotations, prometheus.CounterValue, r.failures, r.dest, ResultFailure)
		if r.driftChecked {
			gauge(f.drift, b2f(r.drifts), r.dest)
		}
	}
	for i, p := range Problems {
		gauge(f.trouble, in[i], p)
	}
	for result, n := range totals {
		ch <- prometheus.MustNewConstMetric(f.totals, prometheus.CounterValue, n, result)
	}
}

// row is one destination's series, as a scrape exports them.
type row struct {
	dest                                            string
	rotated, next, consecutive, successes, failures float64
	overdue, driftChecked, drifts                   bool
}

// snapshot is what a scrape exports, taken under the lock: the rows of the destinations
// exported (all, or those in trouble), the count in each problem (in Problems' order), and
// the aggregate rotations by result.
func (f *Fleet) snapshot() (rows []row, in [len(problemOrder)]float64, totals map[string]float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if !f.problemsOnly {
		rows = make([]row, 0, len(f.state))
	}
	for dest, e := range f.state {
		overdue, failing, drifting, held, late := e.problems(now)
		for i, is := range [...]bool{overdue, failing, drifting, held, late} {
			in[i] += b2f(is)
		}
		if f.problemsOnly && !overdue && !failing && !drifting && !held && !late {
			continue
		}
		r := row{dest: dest, overdue: overdue, consecutive: e.consecutive, successes: e.successes, failures: e.failures,
			driftChecked: e.driftChecked, drifts: e.drifts}
		if !e.rotatedAt.IsZero() {
			r.rotated = float64(e.rotatedAt.Unix())
		}
		if !e.next.IsZero() {
			r.next = float64(e.next.Unix())
		}
		rows = append(rows, r)
	}
	totals = make(map[string]float64, len(f.total))
	for result, n := range f.total {
		totals[result] = n
	}
	return rows, in, totals
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
