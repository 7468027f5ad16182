package sink_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink"
)

func TestHistoryRoundTripAndTrim(t *testing.T) {
	t0 := time.Date(2026, 7, 1, 3, 0, 0, 123, time.UTC)
	var h sink.History
	for i := range sink.HistoryLength + 5 {
		h = h.With(sink.HistoryEntry{KeyID: fmt.Sprintf("k%03d", i), At: t0.Add(time.Duration(i) * 7 * 24 * time.Hour), Version: sink.Version(fmt.Sprint(i + 1)), Lost: i == 3 || i == 40})
	}
	if len(h.Entries) != sink.HistoryLength || h.Entries[0].KeyID != "k005" || !h.Since.Equal(h.Entries[0].At) {
		t.Fatalf("trimmed history: %d entries from %s, since %s; want %d from k005", len(h.Entries), h.Entries[0].KeyID, h.Since, sink.HistoryLength)
	}
	got, err := sink.ParseHistory(h.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != h.String() || !got.Since.Equal(h.Since) || len(got.Entries) != len(h.Entries) || !got.Entries[35].Lost || got.Entries[36].Lost {
		t.Errorf("round trip changed the history:\n%s\n%s", h, got)
	}
	// A key already named is not added twice; entries stay in time order.
	again := got.With(sink.HistoryEntry{KeyID: "k010", At: t0}, sink.HistoryEntry{KeyID: "x", At: t0.Add(-time.Hour)})
	if len(again.Entries) != sink.HistoryLength || again.Entries[0].KeyID != "k005" { // the older one falls off at once
		t.Errorf("With: %d entries, first %s", len(again.Entries), again.Entries[0].KeyID)
	}
	for _, bad := range []string{"nokeytime", "k@notatime", "since=x k@2026-07-01T00:00:00Z", "@2026-07-01T00:00:00Z"} {
		if _, err := sink.ParseHistory(bad); err == nil {
			t.Errorf("ParseHistory(%q) = nil error", bad)
		}
	}
	// An unreadable history still decodes the record: the secret serves.
	rec, err := sink.DecodeRecord(map[string]any{"signing_secret": "whsec_x", "key_id": "k", "destination_id": "d", "rotated_at": "2026-07-01T00:00:00Z", "history": "garbage"})
	if err != nil || rec.History.Unreadable == "" {
		t.Errorf("record with a broken history: %v, unreadable %q", err, rec.History.Unreadable)
	}
}

// TestHistoryStringIsTheStoredFormat pins the field's text, which every stored record
// carries: a change here is a change of the format readers of older records rely on.
func TestHistoryStringIsTheStoredFormat(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	h := sink.History{
		Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Entries: []sink.HistoryEntry{
			{KeyID: "k1", At: time.Date(2026, 1, 9, 5, 4, 5, 120, paris), Version: "7"},
			{KeyID: "k2", At: time.Date(2026, 1, 16, 3, 4, 5, 0, time.UTC), Lost: true},
			{KeyID: "k3", At: time.Date(2026, 1, 23, 3, 4, 5, 500000000, time.UTC), Version: "9", Lost: true},
		},
	}
	want := "since=2026-01-02T03:04:05Z k1@2026-01-09T03:04:05.00000012Z#7 !k2@2026-01-16T03:04:05Z !k3@2026-01-23T03:04:05.5Z#9"
	if got := h.String(); got != want {
		t.Errorf("History.String():\n got %s\nwant %s", got, want)
	}
	if got := (sink.History{Entries: h.Entries[:1]}).String(); got != "k1@2026-01-09T03:04:05.00000012Z#7" {
		t.Errorf("without since: %s", got)
	}
	if got := (sink.History{}).String(); got != "" {
		t.Errorf("empty: %q", got)
	}
}

// TestHistoryStringAllocatesOnce: every rotation writes its record's history, a year of
// weekly keys at fleet scale, so the text is built in one buffer (it took 138 allocations
// and 16.8 KB for a full history before).
func TestHistoryStringAllocatesOnce(t *testing.T) {
	var h sink.History
	t0 := time.Date(2025, 7, 1, 3, 0, 0, 0, time.UTC)
	for i := range sink.HistoryLength + 1 {
		h = h.With(sink.HistoryEntry{KeyID: fmt.Sprintf("0f8fad5b-d9cb-469f-a165-7086772895%02d", i), At: t0.Add(time.Duration(i) * 7 * 24 * time.Hour), Version: sink.Version(fmt.Sprint(i + 1)), Lost: i%9 == 0})
	}
	if n := testing.AllocsPerRun(20, func() { _ = h.String() }); n != 1 {
		t.Errorf("History.String of %d entries: %v allocations, want 1", len(h.Entries), n)
	}
}

// BenchmarkHistoryString is the history text of a record after a year of weekly rotations,
// which every rotation writes.
func BenchmarkHistoryString(b *testing.B) {
	var h sink.History
	t0 := time.Date(2025, 7, 1, 3, 0, 0, 0, time.UTC)
	for i := range sink.HistoryLength + 1 {
		h = h.With(sink.HistoryEntry{KeyID: fmt.Sprintf("0f8fad5b-d9cb-469f-a165-7086772895%02d", i), At: t0.Add(time.Duration(i) * 7 * 24 * time.Hour), Version: sink.Version(fmt.Sprint(i + 1))})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = h.String()
	}
}
