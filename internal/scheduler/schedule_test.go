package scheduler

import (
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		spec string
		loc  *time.Location
		want time.Time
	}{
		{"0 3 * * *", time.UTC, time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)},
		{"0 3 * * *", berlin, time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)}, // 03:00 CET is 02:00 UTC
		{"@daily", berlin, time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)},
		{"@every 5s", time.UTC, from.Add(5 * time.Second)},
		{"*/15 * * * *", time.UTC, from.Add(15 * time.Minute)},
	}
	for _, tt := range tests {
		s, err := ParseSchedule(tt.spec, tt.loc)
		if err != nil {
			t.Fatalf("ParseSchedule(%q): %v", tt.spec, err)
		}
		if got := s.Next(from).UTC(); !got.Equal(tt.want) {
			t.Errorf("ParseSchedule(%q, %s).Next = %s, want %s", tt.spec, tt.loc, got, tt.want)
		}
	}
}

func TestParseScheduleRejects(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "empty schedule"},
		{"0 25 * * *", "above maximum"},
		{"* * * *", "expected exactly 5 fields"},
		{"0 0 0 * * *", "expected exactly 5 fields"},
		{"@fortnightly", "unrecognized descriptor"},
		{"TZ=UTC 0 3 * * *", "set time_zone instead"},
		{"@every -5s", "at least 1s"},
		{"@every 500ms", "at least 1s"},
		{"@every soon", "failed to parse duration"},
		{"0 3 * * 8", "above maximum"},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.spec, time.UTC)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSchedule(%q) error = %v, want one containing %q", tt.spec, err, tt.want)
		}
	}
}

// TestEveryIsAlignedToTheEpoch: two processes that parse "@every 10s" at different times
// fire at the same instants, so replicas share slots.
func TestEveryIsAlignedToTheEpoch(t *testing.T) {
	s, err := ParseSchedule("@every 10s", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ from, want time.Time }{
		{time.Unix(1_700_000_003, 500), time.Unix(1_700_000_010, 0)},
		{time.Unix(1_700_000_009, 999_999_999), time.Unix(1_700_000_010, 0)},
		{time.Unix(1_700_000_010, 0), time.Unix(1_700_000_020, 0)}, // strictly after
	}
	for _, tt := range tests {
		if got := s.Next(tt.from); !got.Equal(tt.want) {
			t.Errorf("Next(%s) = %s, want %s", tt.from.UTC(), got.UTC(), tt.want.UTC())
		}
	}
}

// TestSlotIgnoresSpreadAndJitter: the slot of a spread, jittered fire is the base
// schedule's time, the same for two processes whatever jitter each draws.
func TestSlotIgnoresSpreadAndJitter(t *testing.T) {
	base, err := ParseSchedule("0 * * * *", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC)
	want := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	for _, r := range []float64{0, 0.5, 0.99} {
		s := SpreadJitter(base, 7*time.Minute, 2*time.Minute, func() float64 { return r })
		at, slot := NextSlot(s, from)
		if !slot.Equal(want) {
			t.Errorf("jitter draw %v: slot %s, want %s", r, slot, want)
		}
		if got := want.Add(7*time.Minute + time.Duration(r*float64(2*time.Minute))); !at.Equal(got) {
			t.Errorf("jitter draw %v: fires at %s, want %s", r, at, got)
		}
	}
	if at, slot := NextSlot(base, from); !at.Equal(want) || !slot.Equal(want) {
		t.Errorf("unspread: (%s, %s), want both %s", at, slot, want)
	}
}
