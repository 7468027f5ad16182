package rotate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// TestDecide: every case of the one policy a rotation runs through, as a table, with no
// daemon, no sink and no clock.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	slot := now.Add(-time.Minute)
	k1, k2 := "01JKEY1", "01JKEY2"
	rec := func(key string, rotated, slot time.Time) *sink.Record {
		return &sink.Record{KeyID: key, RotatedAt: rotated, Slot: slot}
	}
	nothing := &sink.Record{}
	old := rec(k1, now.Add(-48*time.Hour), now.Add(-48*time.Hour))
	recent := rec(k1, now.Add(-time.Hour), now.Add(-time.Hour))
	refused := errors.New("consumer billing-api holds only key 01JKEY0")
	for _, tc := range []struct {
		name    string
		f       facts
		want    verdict
		reason  string
		errPart string
	}{
		{"scheduled, older slot stored", facts{cond: condition{slot: slot}, stored: old}, proceed, "", ""},
		{"scheduled, slot already stored", facts{cond: condition{slot: slot}, stored: rec(k2, now, slot)}, skip, "", "already rotated"},
		{"scheduled, later slot stored", facts{cond: condition{slot: slot}, stored: rec(k2, now, now)}, skip, "", "already rotated"},
		{"scheduled, nothing stored", facts{cond: condition{slot: slot}, stored: nothing}, proceed, "", ""},
		{"scheduled, sink unreadable", facts{cond: condition{slot: slot}}, proceed, "", ""},
		{"first rotation, nothing stored", facts{cond: condition{nothingStored: true}, stored: nothing}, proceed, "", ""},
		{"first rotation, stored meanwhile", facts{cond: condition{nothingStored: true}, stored: old}, skip, "", "stored meanwhile"},
		{"waited, same key", facts{cond: condition{stored: &k1, waited: true}, stored: old}, proceed, "", ""},
		{"waited, other process rotated", facts{cond: condition{stored: &k2, waited: true}, stored: old}, skip, "", "while this one waited"},
		{"drift, still the key checked", facts{cond: condition{stored: &k1}, stored: old}, proceed, "", ""},
		{"drift settled meanwhile", facts{cond: condition{stored: &k2}, stored: old}, skip, "", "drift settled"},
		{"min_interval not passed", facts{stored: recent, now: now, minInterval: 2 * time.Hour}, hold, HeldForMinInterval, "not before 2026-12-04T13:00:00Z"},
		{"min_interval passed", facts{stored: old, now: now, minInterval: 2 * time.Hour}, proceed, "", ""},
		{"min_interval, nothing stored", facts{stored: nothing, now: now, minInterval: 2 * time.Hour}, proceed, "", ""},
		{"forced past min_interval", facts{cond: condition{force: true}, stored: recent, now: now, minInterval: 2 * time.Hour, gate: true}, proceed, "", ""},
		{"forced still skips a stored slot", facts{cond: condition{force: true, slot: slot}, stored: rec(k2, now, slot)}, skip, "", "already rotated"},
		{"gate not asked yet", facts{stored: old, now: now, gate: true}, askGate, "", ""},
		{"gate: every consumer holds the key", facts{stored: old, now: now, gate: true, gateAsked: true}, proceed, "", ""},
		{"gate: a consumer behind", facts{stored: old, now: now, gate: true, gateAsked: true, gateErr: refused}, hold, HeldForConsumer, "billing-api"},
		{"gate, nothing stored: nobody to cut off", facts{stored: nothing, now: now, gate: true}, proceed, "", ""},
		{"gate, sink unreadable", facts{now: now, gate: true}, proceed, "", ""},
		{"min_interval before the gate", facts{stored: recent, now: now, minInterval: 2 * time.Hour, gate: true}, hold, HeldForMinInterval, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tc.f)
			if d.verdict != tc.want || d.reason != tc.reason {
				t.Fatalf("verdict %d reason %q, want %d %q (err %v)", d.verdict, d.reason, tc.want, tc.reason, d.err)
			}
			if (d.err != nil) != (tc.want == skip || tc.want == hold) {
				t.Fatalf("err %v for verdict %d", d.err, d.verdict)
			}
			if tc.errPart != "" && !strings.Contains(d.err.Error(), tc.errPart) {
				t.Fatalf("err %q, want it to say %q", d.err, tc.errPart)
			}
		})
	}
}

// TestCompareKeys: the one drift comparison, as a table.
func TestCompareKeys(t *testing.T) {
	keys := func(active string) []webhookco.SigningKey {
		return []webhookco.SigningKey{{ID: active, Status: webhookco.KeyActive}, {ID: "old", Status: "retiring"}}
	}
	for _, tc := range []struct {
		name            string
		keys            []webhookco.SigningKey
		stored          string
		held            []string
		drifted, isHeld bool
	}{
		{"the stored key is active", keys("k2"), "k2", nil, false, false},
		{"rotated outside rotatord", keys("k3"), "k2", nil, true, false},
		{"the active key waits in the spool", keys("k3"), "k2", []string{"k3"}, false, true},
		{"nothing stored, a key active", keys("k1"), "", nil, true, false},
		{"no active key listed", []webhookco.SigningKey{{ID: "old", Status: "retiring"}}, "k2", nil, false, false},
	} {
		d := CompareKeys(tc.keys, tc.stored, tc.held)
		if !d.Checked || d.Drifted != tc.drifted || d.Held != tc.isHeld {
			t.Errorf("%s: %+v, want drifted %v held %v", tc.name, d, tc.drifted, tc.isHeld)
		}
	}
}
