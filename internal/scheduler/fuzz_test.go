package scheduler

import (
	"testing"
	"time"
)

// FuzzParseSchedule: no spec makes ParseSchedule (or the schedule it returns) panic, and an
// accepted schedule's next fire time is after the time asked about, or zero (never).
func FuzzParseSchedule(f *testing.F) {
	for _, seed := range []string{"@daily", "@every 6h", "0 3 * * 1", "*/5 * * * *", "@every 0s", "0 25 * * *", "@hourly", "CRON_TZ=UTC 0 0 * * *", "@every 1ns", "59 23 31 12 *"} {
		f.Add(seed)
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSchedule(spec, time.UTC)
		if err != nil {
			return
		}
		if next := s.Next(at); !next.IsZero() && !next.After(at) {
			t.Errorf("%q: next after %s is %s", spec, at, next)
		}
	})
}
