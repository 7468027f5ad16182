package scheduler

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule tells when a job fires next. It is this package's own view of a cron schedule,
// so that robfig/cron/v3 (unmaintained since 2020) stays replaceable behind it.
type Schedule interface {
	// Next returns the first fire time strictly after t, or the zero time if there is none.
	Next(t time.Time) time.Time
}

// specParser accepts the five standard fields and the @-descriptors (@daily, @every 10s, …).
var specParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a five-field cron spec or an @-descriptor, evaluated in loc.
// It never panics: robfig/cron/v3 does on some malformed specs, and that is turned into an error.
func ParseSchedule(spec string, loc *time.Location) (s Schedule, err error) {
	if spec == "" {
		return nil, fmt.Errorf("empty schedule")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("time zone prefixes are not accepted in a schedule; set time_zone instead")
	}
	if interval, ok := strings.CutPrefix(spec, "@every "); ok {
		// robfig/cron/v3 silently turns a negative or sub-second interval into one second.
		d, err := time.ParseDuration(strings.TrimSpace(interval))
		if err != nil {
			return nil, fmt.Errorf("failed to parse duration %q: %w", interval, err)
		}
		if d < time.Second {
			return nil, fmt.Errorf("@every %s: the interval must be at least 1s", d)
		}
		return every(d), nil
	}
	if loc == nil {
		loc = time.UTC
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("malformed schedule: %v", r)
		}
	}()
	parsed, err := specParser.Parse("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return nil, err
	}
	// A spec can be valid field by field and match no date at all (February 30): it would
	// rotate once at start and never again, never overdue. robfig/cron looks five years
	// ahead, so any spec that fires at all (February 29 included) fires from this date.
	if parsed.Next(neverFiresFrom).IsZero() {
		return nil, fmt.Errorf("it never fires: no date matches it (such as February 30)")
	}
	return parsed, nil
}

// neverFiresFrom is the fixed date a schedule's next fire is looked for from, so parsing
// does not depend on the clock.
var neverFiresFrom = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// every fires at the multiples of its interval since the Unix epoch. robfig/cron/v3's
// @every counts from whenever Next is first called, so two processes (or one process
// before and after a restart) would fire at different times, and each replica would
// rotate in its own slot; aligned to the epoch, every process shares the same slots.
type every time.Duration

// Next implements Schedule.
func (e every) Next(t time.Time) time.Time {
	d := int64(e)
	u := t.UnixNano()
	n := u - u%d + d
	if u < 0 && u%d != 0 {
		n -= d
	}
	return time.Unix(0, n).In(t.Location())
}

// Spread shifts every fire time of s by offset, so that a fleet on one schedule fires
// spread across a window instead of all at once. Use Offset for a stable offset.
func Spread(s Schedule, offset time.Duration) Schedule {
	return SpreadJitter(s, offset, 0, nil)
}

// SpreadJitter is Spread plus a random delay in [0, jitter) drawn at each fire (random
// returns [0, 1); nil means math/rand/v2). Keep offset+jitter within the window.
func SpreadJitter(s Schedule, offset, jitter time.Duration, random func() float64) Schedule {
	if offset <= 0 && jitter <= 0 {
		return s
	}
	if random == nil {
		random = rand.Float64
	}
	return spread{base: s, offset: offset, jitter: jitter, random: random}
}

type spread struct {
	base           Schedule
	offset, jitter time.Duration
	random         func() float64
}

// Next implements Schedule: the base time after t-offset, plus offset, plus the jitter.
func (p spread) Next(t time.Time) time.Time {
	at, _ := p.NextSlot(t)
	return at
}

// NextSlot implements Slotted: the slot is the base schedule's time, the same in every
// process whatever its jitter.
func (p spread) NextSlot(t time.Time) (at, slot time.Time) {
	slot = p.base.Next(t.Add(-p.offset))
	if slot.IsZero() {
		return slot, slot
	}
	at = slot.Add(p.offset)
	if p.jitter > 0 {
		at = at.Add(time.Duration(p.random() * float64(p.jitter)))
	}
	return at, slot
}

// Slotted is a Schedule whose fire times are shifted from the times they stand for (a
// spread window): NextSlot returns the fire time after t and the slot it belongs to.
type Slotted interface {
	Schedule
	NextSlot(t time.Time) (at, slot time.Time)
}

// NextSlot returns s's next fire time after t and its slot: the unshifted schedule time
// that every process rotating the destination agrees on (see Fire.Slot).
func NextSlot(s Schedule, t time.Time) (at, slot time.Time) {
	if sl, ok := s.(Slotted); ok {
		return sl.NextSlot(t)
	}
	at = s.Next(t)
	return at, at
}

// Unjittered returns s without its random jitter: the same slots and the same spread
// offsets, so every process computes the same fire times from it.
func Unjittered(s Schedule) Schedule {
	if p, ok := s.(spread); ok {
		p.jitter = 0
		return p
	}
	return s
}

// Served returns the slot that a fire for slot stands for when it runs at now: slot
// itself, or the latest later one whose fire time (spread, never jittered) has passed. A
// retry that runs after the destination's next slot came rotates for that slot too, so its
// rotation is labelled with it, and the fire for it finds the rotation done.
func Served(s Schedule, slot, now time.Time) time.Time {
	if slot.IsZero() {
		return slot // no slot (a first rotation): none to serve
	}
	for range maxServedSteps {
		due, next := slotAfter(s, slot)
		if next.IsZero() || due.After(now) {
			break
		}
		slot = next
	}
	return slot
}

// maxServedSteps bounds Served's walk: a retry hours late on a schedule of seconds stops
// there (its rotation then stands for an earlier slot, which only means one more rotation).
const maxServedSteps = 10000

// slotAfter returns the slot of s after slot, and its fire time without jitter.
func slotAfter(s Schedule, slot time.Time) (due, next time.Time) {
	if p, ok := s.(spread); ok {
		next = p.base.Next(slot)
		if next.IsZero() {
			return next, next
		}
		return next.Add(p.offset), next
	}
	next = s.Next(slot)
	return next, next
}

// Missed reports the first slot of s after last (the stored rotation) whose fire time,
// spread but never jittered, passed before now: a rotation missed while rotatord was down.
// Every replica with the same config finds the same slot, whatever its jitter draws.
func Missed(s Schedule, last, now time.Time) (slot time.Time, missed bool) {
	due, slot := NextSlot(Unjittered(s), last)
	if due.IsZero() || !due.Before(now) {
		return time.Time{}, false
	}
	return slot, true
}

// Offset maps key (a destination id) to a stable offset in [0, window): the same fleet
// spreads the same way after every restart, on every host.
func Offset(key string, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	// Whole seconds: fire times stay readable, and a window under 1 s spreads nothing.
	secs := uint64(window / time.Second)
	if secs == 0 {
		return 0
	}
	return time.Duration(h.Sum64()%secs) * time.Second
}
