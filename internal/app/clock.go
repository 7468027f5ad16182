package app

import (
	"fmt"
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
