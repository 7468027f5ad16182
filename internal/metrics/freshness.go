package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Freshness exports, per destination, when its stored secret was rotated, its max_age, and
// whether it is overdue. Age moves with the clock, so these are computed at scrape time.
type Freshness struct {
	now func() time.Time

	rotated, overdue *prometheus.Desc

	mu    sync.Mutex
	state map[string]*freshness
}

type freshness struct {
	rotatedAt time.Time // zero: no stored secret known
	// never is true when the sink was read and holds nothing: overdue at once.
	never  bool
	maxAge time.Duration
}

func newFreshness(now func() time.Time) *Freshness {
	return &Freshness{
		now:     now,
		rotated: prometheus.NewDesc("rotatord_secret_rotated_timestamp_seconds", "Unix time the stored secret was rotated (rotated_at in the sink; 0: none known).", []string{"destination"}, nil),
		overdue: prometheus.NewDesc("rotatord_overdue", "1 when the stored secret is older than max_age, or nothing is stored.", []string{"destination"}, nil),
		state:   map[string]*freshness{},
	}
}

func (f *Freshness) entry(dest string) *freshness {
	e, ok := f.state[dest]
	if !ok {
		e = &freshness{}
		f.state[dest] = e
	}
	return e
}

// add creates the destination's series (at 0).
func (f *Freshness) add(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entry(dest)
}

// remove deletes the destination's series.
func (f *Freshness) remove(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.state, dest)
}

// SetRotated records when the destination's stored secret was rotated.
func (f *Freshness) SetRotated(dest string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entry(dest)
	e.rotatedAt, e.never = at, false
}

// SetNeverRotated records that the sink holds no secret for the destination: it counts as
// overdue until one is stored (receivers have nothing from rotatord).
func (f *Freshness) SetNeverRotated(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entry(dest)
	e.rotatedAt, e.never = time.Time{}, true
}

// SetMaxAge records the destination's max_age.
func (f *Freshness) SetMaxAge(dest string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entry(dest).maxAge = d
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

// Describe implements prometheus.Collector.
func (f *Freshness) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.rotated
	ch <- f.overdue
}

// Collect implements prometheus.Collector.
func (f *Freshness) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for dest, e := range f.state {
		ts, overdue := 0.0, 0.0
		if !e.rotatedAt.IsZero() {
			ts = float64(e.rotatedAt.Unix())
		}
		if Overdue(e.rotatedAt, e.never, e.maxAge, now) {
			overdue = 1
		}
		ch <- prometheus.MustNewConstMetric(f.rotated, prometheus.GaugeValue, ts, dest)
		ch <- prometheus.MustNewConstMetric(f.overdue, prometheus.GaugeValue, overdue, dest)
	}
}
