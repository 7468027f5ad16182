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
