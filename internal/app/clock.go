package app

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// startClock times the start's steps, for the one line that says the daemon is starting: at
// fleet scale an operator sees where the start went (reading the config, asking Vault,
// listing the account) without a profiler.
type startClock struct {
	mu     sync.Mutex
	began  time.Time
	last   time.Time
	phases []string
}

func newStartClock(began time.Time) *startClock {
	if began.IsZero() {
		began = time.Now()
	}
	return &startClock{began: began, last: began}
}

// done ends the step called name (the time since the step before ended).
func (s *startClock) done(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.phases = append(s.phases, fmt.Sprintf("%s %s", name, now.Sub(s.last).Round(time.Millisecond)))
	s.last = now
}

// span records a step that ran beside others, from began until now; the next done still
// counts from the step before.
func (s *startClock) span(name string, began time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases = append(s.phases, fmt.Sprintf("%s %s", name, time.Since(began).Round(time.Millisecond)))
}

// String is the steps so far, in order, and the total: "config 1.2s, listing 2.1s, …".
func (s *startClock) String() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.phases, ", ")
}

// total is the time since the start began.
func (s *startClock) total() time.Duration {
	if s == nil {
		return 0
	}
	return time.Since(s.began)
}

// afterStart is the work a large start leaves for once the daemon is ready: the stored
// records read, the rights not asked at the start. It makes garbage fast (a Vault answer
// decoded per destination), so while any of it runs the collector runs twice as often
// (GOGC 50 instead of 100): the peak stays nearer the live heap. When the last of it ends,
// the collector is set back and the freed memory goes back to the system at once.
type afterStart struct {
	mu      sync.Mutex
	running int
	gc      int // the collector's setting before
}

// begin marks one piece of such work begun; call the function it returns when it ends.
func (a *afterStart) begin() (end func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running == 0 {
		a.gc = debug.SetGCPercent(50)
		if a.gc >= 0 && a.gc < 50 {
			debug.SetGCPercent(a.gc) // already tighter (GOGC): keep it
		}
		if a.gc < 0 {
			debug.SetGCPercent(a.gc) // GOGC=off: the operator's choice
		}
	}
	a.running++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.running--; a.running == 0 {
				debug.SetGCPercent(a.gc)
				debug.FreeOSMemory()
			}
		})
	}
}
