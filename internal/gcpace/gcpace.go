// Package gcpace is the one owner of the collector's setting (GOGC) inside rotatord: the
// work that makes garbage fast (a large config's parse, the reads after a large start) asks
// for a tighter setting while it runs, and when the last of it ends the setting the process
// started with is back, whichever order they began and ended in.
package gcpace

import (
	"runtime/debug"
	"sync"
)

var pace struct {
	mu   sync.Mutex
	base int         // the setting before the first request (the operator's GOGC)
	asks map[int]int // requested percent → how many hold it
}

// Tighten runs the collector at percent (GOGC) until release is called, unless the
// setting is already tighter: the operator's own, or another request's. Requests nest and
// overlap; the tightest in force applies, and the operator's setting is back once none is.
func Tighten(percent int) (release func()) {
	pace.mu.Lock()
	defer pace.mu.Unlock()
	if len(pace.asks) == 0 {
		pace.base = debug.SetGCPercent(-1)
		debug.SetGCPercent(pace.base)
		pace.asks = map[int]int{}
	}
	pace.asks[percent]++
	apply()
	var once sync.Once
	return func() {
		once.Do(func() {
			pace.mu.Lock()
			defer pace.mu.Unlock()
			if pace.asks[percent]--; pace.asks[percent] == 0 {
				delete(pace.asks, percent)
			}
			apply()
		})
	}
}

// apply sets the tightest setting in force: the smallest request below the base, or the
// base (the operator's GOGC; off, -1, stays off).
func apply() {
	p := pace.base
	if p >= 0 {
		for ask := range pace.asks {
			p = min(p, ask)
		}
	}
	debug.SetGCPercent(p)
}
