// Package scheduler fires each destination's rotation on its cron schedule. It keeps one
// heap of next fire times and one timer (a thousand destinations cost one goroutine while
// idle), bounds how many jobs run at once, never starts a job while its previous run is
// still going, and on shutdown stops firing and waits, bounded, for the runs in flight.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Job is one scheduled task.
type Job struct {
	// Name identifies the job in logs and hooks (the destination name).
	Name     string
	Schedule Schedule
	// FirstAt, when set, adds one fire at that time before the schedule's own (a catch-up).
	FirstAt time.Time
	// FirstSlot is the slot the catch-up fire stands for (the missed schedule time).
	FirstSlot time.Time
	// Run does the work. Its ctx is cancelled at shutdown; Run should stop waiting then,
	// but may finish work that must not be cut short.
	Run func(ctx context.Context, f Fire)
}

// Fire describes one start of a job.
type Fire struct {
	// At is the scheduled time.
	At time.Time
	// CatchUp is true for the extra fire of Job.FirstAt, or of CatchUp.
	CatchUp bool
	// First is true for a catch-up that is the destination's first rotation (nothing was
	// stored when it was decided: see Scheduler.CatchUp).
	First bool
	// Slot is the schedule time the fire stands for, before any spread or jitter: every
	// process with the same config agrees on it, so replicas can tell that a slot's
	// rotation is already done. For a catch-up it is Job.FirstSlot.
	Slot time.Time
	// Retry counts the Defer calls that led to this fire (0: the schedule's own fire).
	Retry int
	// Defer asks for one more fire of the same job and slot at the given time (a replica
	// waits for another's lease to expire). Only Run may call it, at most once, before it
	// returns. The fire is dropped if the job is gone or the scheduler stops.
	Defer func(at time.Time)
}

// Options configure a Scheduler.
type Options struct {
	Jobs []Job
	// MaxConcurrent bounds the jobs running at once.
	MaxConcurrent int
	// ShutdownTimeout bounds the wait for running jobs once ctx is done.
	ShutdownTimeout time.Duration
	Logger          *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnNext, when set, is told each job's next fire time (zero: never).
	OnNext func(name string, next time.Time)
	// OnSkip, when set, is told when a fire time passed while the job's previous run was still going.
	OnSkip func(name string)
}

// Scheduler runs Jobs on their schedules.
type Scheduler struct {
	opts    Options
	log     *zap.Logger
	updates chan []Job
	extras  chan *fireEntry
}

// New validates opts. It starts nothing.
func New(opts Options) (*Scheduler, error) {
	switch {
	case opts.Logger == nil:
		return nil, errors.New("scheduler: Logger is required")
	case opts.MaxConcurrent < 1:
		return nil, fmt.Errorf("scheduler: MaxConcurrent %d: want at least 1", opts.MaxConcurrent)
	case opts.ShutdownTimeout <= 0:
		return nil, errors.New("scheduler: ShutdownTimeout must be positive")
	}
	if err := validateJobs(opts.Jobs); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnNext == nil {
		opts.OnNext = func(string, time.Time) {}
	}
	if opts.OnSkip == nil {
		opts.OnSkip = func(string) {}
	}
	return &Scheduler{opts: opts, log: opts.Logger.Named("scheduler"), updates: make(chan []Job), extras: make(chan *fireEntry)}, nil
}

func validateJobs(jobs []Job) error {
	seen := map[string]bool{}
	for _, j := range jobs {
		if j.Name == "" || j.Schedule == nil || j.Run == nil {
			return fmt.Errorf("scheduler: job %q needs a name, a schedule and Run", j.Name)
		}
		if seen[j.Name] {
			return fmt.Errorf("scheduler: job %q listed twice", j.Name)
		}
		seen[j.Name] = true
	}
	return nil
}

// Update replaces the jobs of a running scheduler (a config reload). Runs in flight go on;
// a job whose name stays is never started twice at once. It blocks until Run takes the
// new set, or ctx is done.
func (s *Scheduler) Update(ctx context.Context, jobs []Job) error {
	if err := validateJobs(jobs); err != nil {
		return err
	}
	select {
	case s.updates <- jobs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CatchUp adds one fire of the running job name at at, for slot (a catch-up decided after
// the start, once the job's stored state was read: Job.FirstAt for a job already running);
// first marks it as the destination's first rotation. The job keeps its regular fires. It
// blocks until Run takes it, or ctx is done; a name no job has is dropped.
func (s *Scheduler) CatchUp(ctx context.Context, name string, at, slot time.Time, first bool) error {
	e := &fireEntry{at: at, slot: slot, job: &Job{Name: name}, catchUp: true, extra: true, first: first}
	select {
	case s.extras <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run fires jobs until ctx is done, then waits up to ShutdownTimeout for running jobs.
// It returns nil after a clean shutdown, or an error naming the jobs still running.
func (s *Scheduler) Run(ctx context.Context) error {
	r := &run{s: s, running: map[string]bool{}, deferred: make(chan *fireEntry)}
	jobs := s.opts.Jobs
	r.load(jobs, s.opts.Now())
	s.log.Info("scheduler started", zap.Int("jobs", len(jobs)), zap.Int("max_concurrent", s.opts.MaxConcurrent))

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Sleep until the earliest fire time (or forever when nothing is scheduled).
		wait := time.Duration(1<<63 - 1)
		if len(r.queue) > 0 {
			wait = max(r.queue[0].at.Sub(s.opts.Now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			r.dropWaiting()
			return s.drain(jobs, &r.wg, r.running, &r.mu)
		case jobs = <-s.updates:
			r.load(jobs, s.opts.Now())
			s.log.Info("scheduler jobs replaced", zap.Int("jobs", len(jobs)))
			continue
		case e := <-r.deferred:
			r.queueFor(e)
			continue
		case e := <-s.extras:
			e.at = later(e.at, s.opts.Now())
			r.queueFor(e)
			continue
		case <-timer.C:
		}
		r.fireDue(ctx, s.opts.Now())
	}
}

// run is the state of one Run: the queue of fire times, the jobs running or waiting for a
// worker, and the workers, at most MaxConcurrent, that run them.
type run struct {
	s        *Scheduler
	queue    fireQueue
	wg       sync.WaitGroup // a job fired and not yet run or dropped
	mu       sync.Mutex
	running  map[string]bool // by name: fired, running or waiting for a worker
	waiting  []fired         // fired, in order, for the next free worker (under mu)
	workers  int             // running now (under mu)
	byName   map[string]*Job // the jobs as they are now (a catch-up or a deferred fire names one)
	deferred chan *fireEntry
}

// fired is a job fired and waiting for a worker.
type fired struct {
	job  *Job
	fire Fire
}

// queueFor queues e for the job of its name as it is now (it may have been replaced or
// removed by a reload: then e is dropped).
func (r *run) queueFor(e *fireEntry) {
	if j, ok := r.byName[e.job.Name]; ok {
		e.job = j
		heap.Push(&r.queue, e)
	}
}

// load queues the first fire of every job: its catch-up (FirstAt), or its schedule's next.
func (r *run) load(jobs []Job, now time.Time) {
	r.queue = r.queue[:0]
	r.byName = make(map[string]*Job, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		r.byName[j.Name] = j
		if !j.FirstAt.IsZero() {
			at := later(j.FirstAt, now)
			heap.Push(&r.queue, &fireEntry{at: at, slot: j.FirstSlot, job: j, catchUp: true})
			r.s.opts.OnNext(j.Name, at)
			continue
		}
		r.s.push(&r.queue, j, now)
	}
}

// fireDue starts every job that is due, and schedules its next fire time; a job whose
// previous run is still going is skipped.
func (r *run) fireDue(ctx context.Context, now time.Time) {
	for len(r.queue) > 0 && !r.queue[0].at.After(now) {
		e := heap.Pop(&r.queue).(*fireEntry)
		if e.retry == 0 && !e.extra { // a deferred or extra fire's job already has its next one queued
			r.s.push(&r.queue, e.job, now)
		}
		r.mu.Lock()
		busy := r.running[e.job.Name]
		if !busy {
			r.running[e.job.Name] = true
		}
		r.mu.Unlock()
		if busy {
			r.s.log.Warn("rotation skipped: the previous one is still running", zap.String("destination", e.job.Name), zap.Time("scheduled_for", e.at))
			r.s.opts.OnSkip(e.job.Name)
			continue
		}
		r.start(ctx, e)
	}
}

// start runs e's job once a worker is free (one is started if fewer than MaxConcurrent run).
func (r *run) start(ctx context.Context, e *fireEntry) {
	slot := e.slot
	if e.retry > 0 || e.catchUp {
		// Run late, it stands for the latest slot that has come (see Served).
		slot = Served(e.job.Schedule, slot, r.s.opts.Now())
	}
	f := Fire{At: e.at, CatchUp: e.catchUp, First: e.first, Slot: slot, Retry: e.retry}
	f.Defer = func(at time.Time) {
		next := &fireEntry{at: at, slot: slot, job: e.job, catchUp: e.catchUp, first: e.first, retry: e.retry + 1}
		select {
		case r.deferred <- next:
		case <-ctx.Done():
		}
	}
	r.wg.Add(1)
	r.mu.Lock()
	r.waiting = append(r.waiting, fired{job: e.job, fire: f})
	spawn := r.workers < r.s.opts.MaxConcurrent
	if spawn {
		r.workers++
	}
	r.mu.Unlock()
	if spawn {
		go r.work(ctx)
	}
}

// work runs the jobs waiting, in the order they fired, until none waits. A worker lives as
// long as there is work, so a burst of rotations runs on MaxConcurrent goroutines whose
// stacks have grown to what a rotation needs once, not on a new goroutine per rotation that
// grows its stack again each time.
func (r *run) work(ctx context.Context) {
	for {
		r.mu.Lock()
		if len(r.waiting) == 0 || ctx.Err() != nil {
			r.workers--
			r.mu.Unlock()
			return
		}
		next := r.waiting[0]
		r.waiting[0] = fired{}
		r.waiting = r.waiting[1:]
		if len(r.waiting) == 0 {
			r.waiting = nil // let go of the burst's backing array
		}
		r.mu.Unlock()
		next.job.Run(ctx, next.fire)
		r.mu.Lock()
		delete(r.running, next.job.Name)
		r.mu.Unlock()
		r.wg.Done()
	}
}

// dropWaiting drops the jobs that fired and wait for a worker: at shutdown only the
// rotations already running are waited for.
func (r *run) dropWaiting() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.waiting {
		delete(r.running, w.job.Name)
		r.wg.Done()
	}
	r.waiting = nil
}

// push schedules job's next fire time after now.
func (s *Scheduler) push(q *fireQueue, job *Job, now time.Time) {
	next, slot := NextSlot(job.Schedule, now)
	s.opts.OnNext(job.Name, next)
	if next.IsZero() {
		return
	}
	heap.Push(q, &fireEntry{at: next, slot: slot, job: job})
}

// drain waits for running jobs, at most ShutdownTimeout.
func (s *Scheduler) drain(jobs []Job, wg *sync.WaitGroup, running map[string]bool, mu *sync.Mutex) error {
	for _, j := range jobs {
		s.opts.OnNext(j.Name, time.Time{})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	mu.Lock()
	n := len(running)
	mu.Unlock()
	s.log.Info("scheduler stopping; waiting for rotations in flight", zap.Int("in_flight", n), zap.Duration("timeout", s.opts.ShutdownTimeout))
	t := time.NewTimer(s.opts.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
		s.log.Info("scheduler stopped")
		return nil
	case <-t.C:
		mu.Lock()
		defer mu.Unlock()
		names := make([]string, 0, len(running))
		for name := range running {
			names = append(names, name)
		}
		return fmt.Errorf("scheduler: %d rotations still running after shutdown_timeout %s: %v", len(names), s.opts.ShutdownTimeout, names)
	}
}

// fireEntry is one pending fire time.
type fireEntry struct {
	at      time.Time
	slot    time.Time
	retry   int
	job     *Job
	catchUp bool
	// extra: a CatchUp fire beside the job's regular ones; first: Fire.First.
	extra, first bool
}

// fireQueue is a min-heap of fire times.
type fireQueue []*fireEntry

func (q fireQueue) Len() int           { return len(q) }
func (q fireQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q fireQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *fireQueue) Push(x any)        { *q = append(*q, x.(*fireEntry)) }
func (q *fireQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
