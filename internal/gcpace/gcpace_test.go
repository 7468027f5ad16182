package gcpace

import (
	"runtime/debug"
	"testing"
)

func current() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }

// TestOverlappingRequests: requests that begin and end in any order leave the tightest in
// force while they hold, and the operator's setting once none does; a tighter or disabled
// operator setting is left alone.
func TestOverlappingRequests(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	parse := Tighten(50)
	reads := Tighten(25)
	if p := current(); p != 25 {
		t.Fatalf("both held: GOGC %d, want 25", p)
	}
	parse() // the first to begin ends first
	if p := current(); p != 25 {
		t.Fatalf("the reads alone: GOGC %d, want 25", p)
	}
	parse() // a second call does nothing
	again := Tighten(50)
	reads()
	if p := current(); p != 50 {
		t.Fatalf("the second parse alone: GOGC %d, want 50", p)
	}
	again()
	if p := current(); p != 100 {
		t.Fatalf("none held: GOGC %d, want the operator's 100", p)
	}
	for _, operator := range []int{20, -1} {
		debug.SetGCPercent(operator)
		release := Tighten(50)
		if p := current(); p != operator {
			t.Errorf("operator's GOGC %d, a request for 50: %d", operator, p)
		}
		release()
		if p := current(); p != operator {
			t.Errorf("operator's GOGC %d: %d after", operator, p)
		}
	}
}
