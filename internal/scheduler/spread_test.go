package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// TestSpreadThousandDestinations: 1,000 destinations on @daily with a 1 h window fire spread
// across the hour (no minute holds more than 3x the average), inside the window, and with
// the same offsets after a restart.
func TestSpreadThousandDestinations(t *testing.T) {
	base := mustParse(t, "@daily")
	from := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	midnight := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	perMinute := map[int]int{}
	first := map[string]time.Time{}
	for i := range 1000 {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i*7919, i)
		next := Spread(base, Offset(id, time.Hour)).Next(from)
		if next.Before(midnight) || !next.Before(midnight.Add(time.Hour)) {
			t.Fatalf("%s fires at %s, outside the window", id, next)
		}
		perMinute[int(next.Sub(midnight)/time.Minute)]++
		first[id] = next
	}
	avg := 1000.0 / 60
	for m, n := range perMinute {
		if float64(n) > 3*avg {
			t.Errorf("minute %d holds %d rotations, over 3x the average %.1f", m, n, avg)
		}
	}
	if len(perMinute) < 55 {
		t.Errorf("only %d of 60 minutes used", len(perMinute))
	}
	// A restart computes the same times.
	for id, want := range first {
		if got := Spread(base, Offset(id, time.Hour)).Next(from); !got.Equal(want) {
			t.Fatalf("%s: %s after a restart, %s before", id, got, want)
		}
	}
	// The next day keeps the offset.
	for id, at := range first {
		if got := Spread(base, Offset(id, time.Hour)).Next(at); !got.Equal(at.Add(24 * time.Hour)) {
			t.Fatalf("%s: next day %s, want %s", id, got, at.Add(24*time.Hour))
		}
		break
	}
}

// TestCatchUpFiresOnceThenSchedule: a job with FirstAt fires once (as a catch-up), then on
// its schedule.
func TestCatchUpFiresOnceThenSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var fires []Fire
		s, err := New(Options{
			Jobs: []Job{{Name: "a", Schedule: mustParse(t, "@every 1h"), FirstAt: time.Now(), Run: func(_ context.Context, f Fire) {
				mu.Lock()
				fires = append(fires, f)
				mu.Unlock()
			}}},
			MaxConcurrent: 1, ShutdownTimeout: time.Second, Logger: zap.NewNop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(90 * time.Minute)
		cancel()
		<-done
		if len(fires) != 2 || !fires[0].CatchUp || fires[1].CatchUp {
			t.Errorf("fires = %+v, want one catch-up then one scheduled", fires)
		}
	})
}

// TestUpdateReplacesJobs: after Update, removed jobs stop and new ones fire; a run in
// flight finishes and is not started twice.
func TestUpdateReplacesJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		count := map[string]int{}
		job := func(name, spec string, d time.Duration) Job {
			return Job{Name: name, Schedule: mustParse(t, spec), Run: func(context.Context, Fire) {
				mu.Lock()
				count[name]++
				mu.Unlock()
				time.Sleep(d)
			}}
		}
		s, err := New(Options{Jobs: []Job{job("a", "@every 10s", 15*time.Second), job("b", "@every 10s", 0)},
			MaxConcurrent: 4, ShutdownTimeout: time.Minute, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(11 * time.Second) // a and b ran once; a is still running
		if err := s.Update(ctx, []Job{job("a", "@every 10s", 15*time.Second), job("c", "@every 10s", 0)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(24 * time.Second) // to 35 s, between fire times
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		// a: at 10 s (runs to 25 s); after the update at 11 s it fires at 21 s (skipped: still
		// running) and 31 s. b: only at 10 s. c: at 21 s and 31 s.
		if count["b"] != 1 || count["c"] != 2 || count["a"] != 2 {
			t.Errorf("runs = %v, want a:2 b:1 c:2", count)
		}
	})
}

// TestJitterStaysInsideTheWindow: offset plus jitter never leaves the window.
func TestJitterStaysInsideTheWindow(t *testing.T) {
	base := mustParse(t, "@daily")
	from := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	midnight := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	window, jitter := time.Hour, 10*time.Minute
	seen := map[time.Time]bool{}
	for i := range 200 {
		id := fmt.Sprintf("dest-%d", i)
		s := SpreadJitter(base, Offset(id, window-jitter), jitter, nil)
		for range 5 {
			next := s.Next(from)
			if next.Before(midnight) || !next.Before(midnight.Add(window)) {
				t.Fatalf("%s fires at %s, outside the window", id, next)
			}
			seen[next] = true
		}
	}
	if len(seen) < 500 {
		t.Errorf("only %d distinct fire times: the jitter does not vary", len(seen))
	}
}

// TestDeferFiresOnceMoreForTheSameSlot: a run that defers gets one more fire of the same
// slot at the asked time, on top of (not instead of) the schedule's own fires.
func TestDeferFiresOnceMoreForTheSameSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var fires []Fire
		s, err := New(Options{
			Jobs: []Job{{Name: "a", Schedule: mustParse(t, "@every 1h"), Run: func(_ context.Context, f Fire) {
				mu.Lock()
				fires = append(fires, f)
				mu.Unlock()
				if f.Retry == 0 && len(fires) == 1 {
					f.Defer(f.At.Add(10 * time.Minute))
				}
			}}},
			MaxConcurrent: 1, ShutdownTimeout: time.Second, Logger: zap.NewNop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(2*time.Hour + time.Minute)
		cancel()
		<-done
		if len(fires) != 3 {
			t.Fatalf("fires = %+v, want the first slot, its deferred fire, the second slot", fires)
		}
		first := fires[0].At
		if got := fires[1]; got.Retry != 1 || !got.Slot.Equal(fires[0].Slot) || !got.At.Equal(first.Add(10*time.Minute)) {
			t.Errorf("deferred fire = %+v; want retry 1 of slot %s at %s", got, fires[0].Slot, first.Add(10*time.Minute))
		}
		if got := fires[2]; got.Retry != 0 || !got.At.Equal(first.Add(time.Hour)) {
			t.Errorf("third fire = %+v; want the schedule's next at %s", got, first.Add(time.Hour))
		}
	})
}

// TestMissedSlotIgnoresJitter: two replicas with jitter draw different fire times, yet find
// the same missed slot after the same stored rotation; a slot whose spread time is still
// ahead is not missed.
func TestMissedSlotIgnoresJitter(t *testing.T) {
	hourly := mustParse(t, "@hourly")
	last := time.Date(2026, 12, 1, 9, 10, 30, 0, time.UTC) // the 09:00 slot, rotated at its spread time
	low := SpreadJitter(hourly, 10*time.Minute, 5*time.Minute, func() float64 { return 0 })
	high := SpreadJitter(hourly, 10*time.Minute, 5*time.Minute, func() float64 { return 0.999 })
	for _, now := range []time.Time{
		time.Date(2026, 12, 1, 10, 12, 0, 0, time.UTC), // between the two replicas' jittered fire times
		time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC),
	} {
		a, okA := Missed(low, last, now)
		b, okB := Missed(high, last, now)
		if !okA || !okB || !a.Equal(b) || !a.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("now %s: replicas found %s %v and %s %v, want both 10:00", now.Format("15:04"), a, okA, b, okB)
		}
	}
	if _, ok := Missed(low, last, time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC)); ok {
		t.Error("10:05: the 10:00 slot fires at 10:10 and is not missed")
	}
}

// TestLateRetryServesTheLatestSlot: a deferred fire (a replica waited for a peer's lease)
// that runs after the destination's next slot came stands for that slot: the rotation it
// makes is labelled with it, so the fire for that slot, here or on a peer, finds it done.
// One that runs before the next slot keeps its own.
func TestLateRetryServesTheLatestSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var fires []Fire
		s, err := New(Options{
			Jobs: []Job{{Name: "a", Schedule: Spread(mustParse(t, "@every 10m"), time.Minute), Run: func(_ context.Context, f Fire) {
				mu.Lock()
				fires = append(fires, f)
				n := len(fires)
				mu.Unlock()
				switch n {
				case 1:
					f.Defer(f.At.Add(2 * time.Minute)) // before the next slot
				case 2:
					f.Defer(f.At.Add(25 * time.Minute)) // two slots later
				}
			}}},
			MaxConcurrent: 1, ShutdownTimeout: time.Second, Logger: zap.NewNop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(45 * time.Minute)
		cancel()
		<-done
		first := fires[0]
		var early, late *Fire
		for i := range fires {
			switch fires[i].Retry {
			case 1:
				early = &fires[i]
			case 2:
				late = &fires[i]
			}
		}
		if early == nil || !early.Slot.Equal(first.Slot) {
			t.Errorf("retry before the next slot = %+v; want slot %s (fires %+v)", early, first.Slot, fires)
		}
		if late == nil {
			t.Fatalf("no second retry: %+v", fires)
		}
		// Run 27 minutes after the first slot: slots at +10 and +20 min (fire times +11 and
		// +21 with the 1 min spread) have come; +20 is the latest.
		if want := first.Slot.Add(20 * time.Minute); !late.Slot.Equal(want) {
			t.Errorf("late retry slot = %s, want the latest slot %s", late.Slot, want)
		}
	})
}
