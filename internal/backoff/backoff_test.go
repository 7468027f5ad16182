package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Initial: time.Second, Max: 10 * time.Second}
	for _, tc := range []struct {
		step   int
		jitter func() float64
		want   time.Duration
	}{
		{0, nil, time.Second},
		{1, nil, 2 * time.Second},
		{3, nil, 8 * time.Second},
		{4, nil, 10 * time.Second},   // capped
		{200, nil, 10 * time.Second}, // no overflow
		{-1, nil, time.Second},
		{1, func() float64 { return 0 }, time.Second},                  // half fixed
		{1, func() float64 { return 0.5 }, 1500 * time.Millisecond},    // and half random
		{4, func() float64 { return 0.999999 }, 10*time.Second - 5000}, // below the cap
	} {
		if got := p.Delay(tc.step, tc.jitter); got != tc.want {
			t.Errorf("Delay(%d): %s, want %s", tc.step, got, tc.want)
		}
	}
	step := 0
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := p.Next(&step, nil); got != want || step != i+1 {
			t.Errorf("Next #%d: %s (step %d), want %s", i, got, step, want)
		}
	}
	if got := (Policy{Max: time.Minute}).Delay(0, nil); got != time.Minute {
		t.Errorf("no Initial: %s, want the Max", got)
	}
}
