package scheduler

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

func mustParse(t *testing.T, spec string) Schedule {
	t.Helper()
	s, err := ParseSchedule(spec, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFiresOnSchedule runs a fake minute and counts the runs of each job.
func TestFiresOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var a, b atomic.Int32
		var mu sync.Mutex
		next := map[string]time.Time{}
		s, err := New(Options{
			Jobs: []Job{
				{Name: "a", Schedule: mustParse(t, "@every 10s"), Run: func(context.Context, Fire) { a.Add(1) }},
				{Name: "b", Schedule: mustParse(t, "@every 25s"), Run: func(context.Context, Fire) { b.Add(1) }},
			},
			MaxConcurrent: 2, ShutdownTimeout: time.Second, Logger: zap.NewNop(),
			OnNext: func(name string, at time.Time) { mu.Lock(); next[name] = at; mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		start := time.Now()
		go func() { done <- s.Run(ctx) }()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		mu.Lock()
		if got, want := next["a"], start.Add(70*time.Second); !got.Equal(want) {
			t.Errorf("next fire of a = %s, want %s", got, want)
		}
		mu.Unlock()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if a.Load() != 6 || b.Load() != 2 {
			t.Errorf("runs: a=%d b=%d, want 6 and 2", a.Load(), b.Load())
		}
		if !next["a"].IsZero() {
			t.Errorf("next fire after shutdown = %s, want zero", next["a"])
		}
	})
}

// TestSkipsWhileRunning: a run longer than the interval makes the next fire a skip.
func TestSkipsWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs, skips atomic.Int32
		s, err := New(Options{
			Jobs: []Job{{Name: "slow", Schedule: mustParse(t, "@every 10s"), Run: func(context.Context, Fire) {
				runs.Add(1)
				time.Sleep(15 * time.Second)
			}}},
			MaxConcurrent: 4, ShutdownTimeout: time.Minute, Logger: zap.NewNop(),
			OnSkip: func(string) { skips.Add(1) },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(45 * time.Second) // fires at 10 (runs to 25), 20 skip, 30 (runs to 45), 40 skip
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if runs.Load() != 2 || skips.Load() != 2 {
			t.Errorf("runs=%d skips=%d, want 2 and 2", runs.Load(), skips.Load())
		}
	})
}

// TestConcurrencyBound: ten jobs due at once never run more than MaxConcurrent at a time.
func TestConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cur, peak, total atomic.Int32
		var jobs []Job
		for i := range 10 {
			jobs = append(jobs, Job{Name: string(rune('a' + i)), Schedule: mustParse(t, "@every 1m"), Run: func(context.Context, Fire) {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Second)
				cur.Add(-1)
				total.Add(1)
			}})
		}
		s, err := New(Options{Jobs: jobs, MaxConcurrent: 3, ShutdownTimeout: time.Minute, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(70 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if peak.Load() != 3 || total.Load() != 10 {
			t.Errorf("peak=%d total=%d, want 3 and 10", peak.Load(), total.Load())
		}
	})
}

// TestBurstRunsOnWorkers: 200 jobs due at once with MaxConcurrent 4 run in the order they
// fired on at most 4 goroutines (a goroutine per fire grew its stack again for every
// rotation of a burst, and parked one goroutine per job waiting); at shutdown the jobs still
// waiting are dropped and only those running are waited for.
func TestBurstRunsOnWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, workers = 200, 4
		var mu sync.Mutex
		var order []int
		var peakGoroutines int
		base := runtime.NumGoroutine()
		var jobs []Job
		for i := range n {
			jobs = append(jobs, Job{Name: fmt.Sprintf("d%03d", i), Schedule: mustParse(t, "0 0 * * *"), Run: func(context.Context, Fire) {
				mu.Lock()
				order = append(order, i)
				peakGoroutines = max(peakGoroutines, runtime.NumGoroutine()-base)
				mu.Unlock()
				time.Sleep(time.Second)
			}})
		}
		// Every job's first fire at the same instant, in the config's order.
		at := time.Now().Add(time.Minute)
		for i := range jobs {
			jobs[i].FirstAt, jobs[i].FirstSlot = at.Add(time.Duration(i)*time.Nanosecond), at
		}
		s, err := New(Options{Jobs: jobs, MaxConcurrent: workers, ShutdownTimeout: time.Minute, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		// 200 jobs of 1 s on 4 workers take 50 s; stop after 20 s, while a batch runs.
		time.Sleep(time.Minute + 20*time.Second + time.Second/2)
		cancel()
		stop := time.Now()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(stop); took < 400*time.Millisecond || took > time.Second/2+time.Microsecond {
			t.Errorf("shutdown took %s, want the running batch's 500ms", took)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(order) != 21*workers {
			t.Errorf("%d jobs ran, want the %d started before the shutdown and none of those waiting", len(order), 21*workers)
		}
		for k, i := range order {
			if i != k {
				t.Fatalf("job %d ran as number %d: want the order they fired in (%v)", i, k, order[:k+1])
			}
		}
		// The scheduler's own goroutine, the test's, the workers, and the runtime's timers:
		// nowhere near one per job waiting.
		if peakGoroutines > workers+4 {
			t.Errorf("%d goroutines while 200 jobs were due, want at most the %d workers and a few", peakGoroutines, workers)
		}
	})
}

// TestShutdownWaitsBounded: shutdown waits for a run in flight, but not beyond the timeout.
func TestShutdownWaitsBounded(t *testing.T) {
	for _, tt := range []struct {
		runFor, timeout time.Duration
		wantErr         bool
	}{
		{runFor: 5 * time.Second, timeout: 10 * time.Second},
		{runFor: time.Minute, timeout: 2 * time.Second, wantErr: true},
	} {
		synctest.Test(t, func(t *testing.T) {
			var finished atomic.Bool
			s, err := New(Options{
				Jobs: []Job{{Name: "billing", Schedule: mustParse(t, "@every 10s"), Run: func(ctx context.Context, _ Fire) {
					time.Sleep(tt.runFor) // work that ignores ctx, like a rotate request in flight
					finished.Store(true)
				}}},
				MaxConcurrent: 1, ShutdownTimeout: tt.timeout, Logger: zap.NewNop(),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- s.Run(ctx) }()
			time.Sleep(11 * time.Second) // the job started at 10s
			cancel()
			stop := time.Now()
			err = <-done
			took := time.Since(stop)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "billing") || took != tt.timeout {
					t.Errorf("err = %v after %s, want an error naming billing after %s", err, took, tt.timeout)
				}
				time.Sleep(tt.runFor) // let the abandoned job end inside the bubble
				return
			}
			if err != nil || !finished.Load() || took != 4*time.Second {
				t.Errorf("err = %v, finished %v, after %s; want a clean stop after 4s", err, finished.Load(), took)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	job := Job{Name: "a", Schedule: mustParse(t, "@daily"), Run: func(context.Context, Fire) {}}
	for _, o := range []Options{
		{Jobs: []Job{job}, MaxConcurrent: 0, ShutdownTimeout: time.Second, Logger: zap.NewNop()},
		{Jobs: []Job{job, job}, MaxConcurrent: 1, ShutdownTimeout: time.Second, Logger: zap.NewNop()},
		{Jobs: []Job{{Name: "x"}}, MaxConcurrent: 1, ShutdownTimeout: time.Second, Logger: zap.NewNop()},
		{Jobs: []Job{job}, MaxConcurrent: 1, ShutdownTimeout: time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// TestCatchUpOfARunningJob: a catch-up added to a running job (its stored state read after
// the start) fires once, as a catch-up for the slot it stands for, marked first when asked;
// the job keeps its regular fires; a name no job has is dropped.
func TestCatchUpOfARunningJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var fires []Fire
		s, err := New(Options{
			Jobs: []Job{{Name: "a", Schedule: mustParse(t, "@every 1h"), Run: func(_ context.Context, f Fire) {
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
		start := time.Now()
		go func() { done <- s.Run(ctx) }()
		slot := start.Add(-30 * time.Minute)
		if err := s.CatchUp(ctx, "a", start.Add(time.Minute), slot, true); err != nil {
			t.Fatal(err)
		}
		if err := s.CatchUp(ctx, "gone", start.Add(time.Minute), slot, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(61*time.Minute + time.Second)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(fires) != 2 {
			t.Fatalf("%d fires, want the catch-up and the regular one: %+v", len(fires), fires)
		}
		if c := fires[0]; !c.CatchUp || !c.First || c.At != start.Add(time.Minute) || c.Slot.IsZero() {
			t.Errorf("the catch-up fired as %+v", c)
		}
		if r := fires[1]; r.CatchUp || r.First || r.At != start.Add(time.Hour) {
			t.Errorf("the regular fire fired as %+v", r)
		}
	})
}
