package main

import (
	"strings"
	"testing"
	"time"
)

// TestRotationTimesTakesOneWave: with several waves in one daemon's log, each round's
// figures come from its own wave's audit lines only.
func TestRotationTimesTakesOneWave(t *testing.T) {
	logs := strings.Join([]string{
		`{"ts":"2026-12-05T10:00:00.100Z","outcome":"success","duration":0.1}`, // the first wave
		`{"ts":"2026-12-05T10:00:00.200Z","outcome":"success","duration":0.1}`,
		`{"ts":"2026-12-05T10:01:00.500Z","msg":"something else"}`,
		`{"ts":"2026-12-05T10:01:00.500Z","outcome":"success","duration":0.5}`, // wave 1
		`{"ts":"2026-12-05T10:01:01.000Z","outcome":"success","duration":0.25}`,
		`{"ts":"2026-12-05T10:02:00.300Z","outcome":"success","duration":0.3}`, // wave 2
		`{"ts":"2026-12-05T10:02:00.400Z","outcome":"success","duration":0.1}`,
	}, "\n")
	first, last, durations, err := rotationTimes(logs, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	want0, _ := time.Parse(time.RFC3339Nano, "2026-12-05T10:01:00Z")
	want1, _ := time.Parse(time.RFC3339Nano, "2026-12-05T10:01:01Z")
	if !first.Equal(want0) || !last.Equal(want1) || len(durations) != 2 {
		t.Fatalf("wave 1: first %s, last %s, %d durations; want %s, %s, 2", first, last, len(durations), want0, want1)
	}
	first, _, durations, err = rotationTimes(logs, 4, 2)
	if want, _ := time.Parse(time.RFC3339Nano, "2026-12-05T10:02:00Z"); err != nil || !first.Equal(want) || len(durations) != 2 {
		t.Fatalf("wave 2: first %s, %d durations, %v; want %s, 2", first, len(durations), err, want)
	}
	if _, _, _, err := rotationTimes(logs, 6, 2); err == nil {
		t.Fatal("no wave 3 in the log, and no error")
	}
}

func TestMedianAndMerge(t *testing.T) {
	if m := median([]float64{0.7, 0.5, 0.6}); m != 0.6 {
		t.Fatalf("median of 3: %v", m)
	}
	if m := median([]float64{0.8, 0.5, 0.6, 0.7}); m < 0.6499 || m > 0.6501 {
		t.Fatalf("median of 4: %v", m)
	}
	rounds := []burstFigures{
		{flush: "group", rate: 600, cpu: time.Millisecond, flushes: 1, provider: map[string]float64{"rotate": 1}},
		{flush: "group", rate: 500, cpu: 3 * time.Millisecond, flushes: 0.5, provider: map[string]float64{"rotate": 1}},
		{flush: "group", rate: 900, cpu: 2 * time.Millisecond, flushes: 0.75, provider: map[string]float64{"rotate": 1.5}},
	}
	m := mergeBurst(rounds)
	if m.flush != "group" || m.rate != 600 || m.cpu != 2*time.Millisecond || m.flushes != 0.75 || m.provider["rotate"] < 1.1666 || m.provider["rotate"] > 1.1667 {
		t.Fatalf("merged: %+v", m)
	}
}
