package app

import (
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/sink"
)

// TestFirstFire: what a destination's first fire after a start is, from what is stored, as
// a table with no daemon and no sink.
func TestFirstFire(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) // a Friday
	dest := func(first, missed string) config.Destination {
		return config.Destination{Name: "billing", ID: "0f6a5cf0-7a51-4b8e-9a39-3c5e1f2a9b10", Timing: config.Timing{Schedule: "@daily", TimeZone: "UTC",
			Window: time.Hour, Jitter: 10 * time.Minute, FirstRotation: first, Missed: missed}}
	}
	atStart, onSched := config.FirstRotationAtStart, config.FirstRotationOnSchedule
	for _, tc := range []struct {
		name         string
		d            config.Destination
		stored       time.Time // zero: none
		found, never bool
		want         startKind
		catchUp      bool // a first fire at the offset, with the missed slot
	}{
		{"never rotated, at_start", dest(atStart, config.MissedRunOnce), time.Time{}, false, true, startFirst, false},
		{"never rotated, on_schedule", dest(onSched, config.MissedRunOnce), time.Time{}, false, true, startOnSchedule, false},
		{"sink unreadable: the schedule decides", dest(atStart, config.MissedRunOnce), time.Time{}, false, false, startOnTime, false},
		{"rotated at the last slot", dest(atStart, config.MissedRunOnce), now.Add(-11 * time.Hour), true, false, startOnTime, false},
		{"missed, run_once", dest(atStart, config.MissedRunOnce), now.Add(-40 * time.Hour), true, false, startMissed, true},
		{"missed, skip", dest(atStart, config.MissedSkip), now.Add(-40 * time.Hour), true, false, startMissed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sched, err := tc.d.SpreadSchedule()
			if err != nil {
				t.Fatal(err)
			}
			p := firstFire(startFacts{d: tc.d, sched: sched, stored: sink.Record{KeyID: "k", RotatedAt: tc.stored}, found: tc.found, neverRotated: tc.never, now: now})
			if p.kind != tc.want {
				t.Fatalf("kind %d, want %d", p.kind, tc.want)
			}
			off := tc.d.Offset()
			if off < 0 || off+tc.d.Jitter > tc.d.Window {
				t.Fatalf("offset %s: offset plus jitter %s leaves the window %s", off, tc.d.Jitter, tc.d.Window)
			}
			switch {
			case tc.want == startFirst && p.at != now.Add(off):
				t.Fatalf("first at %s, want now plus the stable offset %s", p.at, off)
			case tc.catchUp && (p.at != now.Add(off) || p.slot.IsZero() || p.slot != p.missed || !p.slot.After(tc.stored)):
				t.Fatalf("catch-up at %s for slot %s (missed %s), want now+%s for the slot after %s", p.at, p.slot, p.missed, off, tc.stored)
			case tc.want == startMissed && !tc.catchUp && (!p.at.IsZero() || p.missed.IsZero()):
				t.Fatalf("missed: skip fires at %s, want its next scheduled time (and the missed slot named, %s)", p.at, p.missed)
			case (tc.want == startOnTime || tc.want == startOnSchedule) && !p.at.IsZero():
				t.Fatalf("first fire at %s, want the next scheduled time", p.at)
			}
		})
	}
}
