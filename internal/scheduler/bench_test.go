package scheduler

import (
	"container/heap"
	"fmt"
	"testing"
	"time"
)

// BenchmarkFireQueue10k is the scheduler's cost per fire with 10,000 destinations queued:
// pop the due entry, compute its next cron time, push it back.
func BenchmarkFireQueue10k(b *testing.B) {
	var q fireQueue
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	jobs := make([]Job, 10000)
	for i := range jobs {
		s, err := ParseSchedule(fmt.Sprintf("%d %d * * *", i%60, (i/60)%24), time.UTC)
		if err != nil {
			b.Fatal(err)
		}
		jobs[i] = Job{Name: fmt.Sprint(i), Schedule: s}
		heap.Push(&q, &fireEntry{at: s.Next(now), job: &jobs[i]})
	}
	b.ReportAllocs()
	for b.Loop() {
		e := heap.Pop(&q).(*fireEntry)
		e.at = e.job.Schedule.Next(e.at)
		heap.Push(&q, e)
	}
}

// BenchmarkCatchUp100k is the scheduler taking one catch-up fire (what the start adds for
// each destination once its stored record is read) with 100,000 jobs: the fire names its
// job, which the scheduler looks up. It was a scan of every job, so the start's 100,000
// catch-ups cost 10^10 name comparisons, most of the daemon's CPU for minutes.
func BenchmarkCatchUp100k(b *testing.B) {
	jobs := make([]Job, 100000)
	for i := range jobs {
		jobs[i] = Job{Name: fmt.Sprintf("d%06d", i)}
	}
	r := &run{byName: make(map[string]*Job, len(jobs))} // as load leaves it
	for i := range jobs {
		r.byName[jobs[i].Name] = &jobs[i]
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.queueFor(&fireEntry{at: at, job: &Job{Name: jobs[i%len(jobs)].Name}, catchUp: true, extra: true})
		if i++; len(r.queue) > 1000 {
			r.queue = r.queue[:0]
		}
	}
}
