package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/report"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

var (
	q3From = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	q3To   = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	week   = 7 * 24 * time.Hour
)

// weekly builds a destination with weekly keys from 2026-01-08 to mid-October, every
// key stored by rotatord; plant may delay a rotation or leave it out.
func weekly(t *testing.T, id string, plant func(i int, at time.Time) (skip bool, extra time.Duration)) report.Subject {
	t.Helper()
	created := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	var keys []webhookco.SigningKey
	var h sink.History
	add := func(kid string, at time.Time) {
		keys = append([]webhookco.SigningKey{{ID: kid, Status: webhookco.KeyRevoked, CreatedAt: at}}, keys...)
	}
	add(id+"-k000", created)
	at := created
	var last sink.HistoryEntry
	for i := 1; at.Before(q3To.Add(8 * 24 * time.Hour)); i++ {
		at = at.Add(week)
		skip, extra := false, time.Duration(0)
		if plant != nil {
			skip, extra = plant(i, at)
		}
		at = at.Add(extra)
		if skip {
			continue
		}
		kid := fmt.Sprintf("%s-k%03d", id, i)
		add(kid, at)
		if last.KeyID != "" {
			h = h.With(last)
		}
		last = sink.HistoryEntry{KeyID: kid, At: at.Add(40 * time.Millisecond), Version: sink.Version(fmt.Sprint(i))}
	}
	keys[0].Status = webhookco.KeyActive
	keys[1].Status = webhookco.KeyRetiring
	rec := sink.Record{DestinationID: id, KeyID: last.KeyID, RotatedAt: last.At, Version: last.Version, History: h, Secret: secret.New("whsec_never-shown")}
	return report.Subject{Name: id, ID: id, Location: "secret/data/webhookco/" + id, Policy: report.Policy{Schedule: "@weekly", MaxAge: 8 * 24 * time.Hour},
		CreatedAt: created, Keys: keys, Stored: &rec}
}

func kinds(r report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind+":"+f.Destination)
	}
	slices.Sort(out)
	return out
}

// TestPlantedFaults: a seeded year with one of each fault; the report finds exactly those.
func TestPlantedFaults(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	clean := weekly(t, "clean", nil)
	// One 9-day interval in August.
	gap := weekly(t, "gap", func(i int, at time.Time) (bool, time.Duration) {
		if at.Month() == time.August && at.Day() <= 7 {
			return false, 2 * 24 * time.Hour
		}
		return false, 0
	})
	// One key minted outside rotatord in September, between two of rotatord's.
	outside := weekly(t, "outside", nil)
	outsideKey := webhookco.SigningKey{ID: "outside-manual", Status: webhookco.KeyRevoked, CreatedAt: time.Date(2026, 9, 10, 15, 0, 0, 0, time.UTC)}
	outside.Keys = append(outside.Keys, outsideKey)
	// One key minted by rotatord and lost (its history says so), replaced at once.
	lost := weekly(t, "lost", nil)
	lostAt := time.Date(2026, 8, 20, 3, 0, 0, 0, time.UTC)
	lost.Keys = append(lost.Keys, webhookco.SigningKey{ID: "lost-key", Status: webhookco.KeyRevoked, CreatedAt: lostAt})
	lost.Stored.History = lost.Stored.History.With(sink.HistoryEntry{KeyID: "lost-key", At: lostAt.Add(30 * time.Second), Lost: true})
	// One destination deleted mid-period: its key list answers 404 now.
	deleted := weekly(t, "deleted", nil)
	deleted.Keys, deleted.Gone, deleted.DeletedAt = nil, true, time.Date(2026, 8, 15, 0, 0, 0, 0, time.UTC)
	others := []report.Other{{ID: "uncovered-1", Label: "=HYPERLINK(\"x\")", CreatedAt: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "later", Label: "after", CreatedAt: q3To.Add(time.Hour)}}
	p := report.Period{From: q3From, To: q3To}
	r := report.Build(p, []report.Subject{clean, gap, outside, lost, deleted}, others, report.Inputs{Version: "test"}, now)
	want := []string{"deleted:deleted", "lost:lost", "minted_outside_rotatord:outside", "overdue:gap", "uncovered:uncovered-1"}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Fatalf("findings = %v\nwant %v\n%+v", got, want, r.Findings)
	}
	if r.Summary.InScope != 5 || r.Summary.Compliant != 3 || r.Summary.Errors != 2 || r.Summary.Warnings != 2 {
		t.Errorf("summary = %+v; want 5 in scope, 3 compliant (clean, deleted, outside), 2 errors, 2 warnings", r.Summary)
	}
	for _, f := range r.Findings {
		switch f.Kind {
		case report.Overdue:
			if d := f.To.Sub(f.From); d != 24*time.Hour {
				t.Errorf("overdue %s → %s: %s past max_age, want 1 day (a 9-day interval on 8 days)", f.From, f.To, d)
			}
		case report.Outside:
			if f.KeyID != outsideKey.ID {
				t.Errorf("outside key = %s, want %s", f.KeyID, outsideKey.ID)
			}
		}
	}
	for _, d := range r.Destinations {
		d := d.Expand()
		switch d.Name {
		case "gap":
			if d.LongestSeconds != int64(9*24*time.Hour/time.Second) {
				t.Errorf("gap: longest interval %ds, want 9 days", d.LongestSeconds)
			}
		case "deleted":
			if !d.End.Equal(deleted.DeletedAt) || len(d.Keys) == 0 || d.Keys[0].Origin != report.OriginRotatord {
				t.Errorf("deleted: evaluated until %s with %d keys from rotatord's record", d.End, len(d.Keys))
			}
		case "clean":
			if d.Before == nil || len(d.Keys) != 13 || d.Keys[0].Version == "" || d.Keys[0].Location == "" {
				t.Errorf("clean: %d keys, before %v, first %+v", len(d.Keys), d.Before, d.Keys)
			}
		}
	}
	// Every format says the same, and none holds a secret.
	for _, format := range report.Formats {
		var buf bytes.Buffer
		if _, err := report.Write(context.Background(), &buf, r, format, nil); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "whsec_") || !strings.Contains(buf.String(), "outside-manual") {
			t.Errorf("%s: secret shown, or the outside key missing", format)
		}
		o, err := report.Open(buf.Bytes())
		if err != nil || !o.Intact {
			t.Errorf("%s: sealed report does not open intact: %v", format, err)
		}
		if format == "csv" {
			rd := csv.NewReader(bytes.NewReader(buf.Bytes()))
			rd.FieldsPerRecord = -1
			rows, err := rd.ReadAll()
			if err != nil || len(rows) < 20 {
				t.Fatalf("csv: %v, %d rows", err, len(rows))
			}
			for _, row := range rows {
				for _, c := range row {
					if strings.HasPrefix(c, "=") {
						t.Errorf("csv: cell %q would run as a formula", c)
					}
				}
			}
		}
		if format == "json" {
			var doc struct {
				Report report.Report `json:"report"`
				Seal   report.Seal   `json:"seal"`
			}
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || doc.Report.Schema != report.Schema || len(doc.Report.Findings) != 5 {
				t.Errorf("json: %v, schema %q, %d findings", err, doc.Report.Schema, len(doc.Report.Findings))
			}
		}
	}
	// A clean period finds nothing.
	r = report.Build(p, []report.Subject{weekly(t, "a", nil), weekly(t, "b", nil)}, nil, report.Inputs{}, now)
	if len(r.Findings) != 0 || r.Summary.Compliant != 2 {
		t.Errorf("clean period: %v", r.Findings)
	}
}

// TestSourcesThatCannotAnswer: a key list that fails, a sink that fails, a history older
// than the period's start: each is a finding, never a silent pass.
func TestSourcesThatCannotAnswer(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	p := report.Period{From: q3From, To: q3To}
	noKeys := weekly(t, "nokeys", nil)
	noKeys.Keys, noKeys.KeysErr = nil, "HTTP 500"
	noSink := weekly(t, "nosink", nil)
	noSink.Stored, noSink.StoredErr = nil, "vault: connection refused"
	trimmed := weekly(t, "trimmed", nil)
	trimmed.Stored.History.Since = time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	trimmed.Stored.History.Entries = slices.DeleteFunc(trimmed.Stored.History.Entries, func(e sink.HistoryEntry) bool { return e.At.Before(trimmed.Stored.History.Since) })
	r := report.Build(p, []report.Subject{noKeys, noSink, trimmed}, nil, report.Inputs{}, now)
	got := kinds(r)
	want := []string{"source_unavailable:nokeys", "source_unavailable:nosink", "source_unavailable:trimmed"}
	if !slices.Equal(got, want) {
		t.Errorf("findings = %v, want %v", got, want)
	}
	if r.Summary.Errors == 0 {
		t.Error("a source that could not answer passed")
	}
}

// TestOverdueAtTheEnd: no key since the last one, longer than max_age before the period
// ended: overdue until the end.
func TestOverdueAtTheEnd(t *testing.T) {
	s := weekly(t, "stopped", nil)
	cut := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	s.Keys = slices.DeleteFunc(s.Keys, func(k webhookco.SigningKey) bool { return !k.CreatedAt.Before(cut) })
	var h sink.History
	for _, e := range s.Stored.History.Entries {
		if e.At.Before(cut) {
			h = h.With(e)
		}
	}
	last := h.Entries[len(h.Entries)-1]
	h.Entries = h.Entries[:len(h.Entries)-1]
	s.Stored.KeyID, s.Stored.RotatedAt, s.Stored.History = last.KeyID, last.At, h
	r := report.Build(report.Period{From: q3From, To: q3To}, []report.Subject{s}, nil, report.Inputs{}, time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))
	if got := kinds(r); !slices.Equal(got, []string{"overdue:stopped"}) || !r.Findings[0].To.Equal(q3To) {
		t.Errorf("findings = %v %+v; want one overdue until the period's end", got, r.Findings)
	}
}

// TestSealCatchesOneChangedByte: every format, one byte changed anywhere in the content.
func TestSealCatchesOneChangedByte(t *testing.T) {
	r := report.Build(report.Period{From: q3From, To: q3To}, []report.Subject{weekly(t, "a", nil)}, nil, report.Inputs{}, q3To)
	for _, format := range report.Formats {
		var buf bytes.Buffer
		if _, err := report.Write(context.Background(), &buf, r, format, nil); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		i := bytes.Index(b, []byte("a-k030"))
		b[i+len("a-k03")] = '1'
		o, err := report.Open(b)
		if err != nil || o.Intact {
			t.Errorf("%s: a changed key id still opens intact (%v)", format, err)
		}
	}
	if _, err := report.Open([]byte("hello\nworld\n")); err == nil {
		t.Error("a file without a seal opened")
	}
}

// TestPackedKeysUnpackExactly: what a judged destination keeps is what it renders.
func TestPackedKeysUnpackExactly(t *testing.T) {
	s := weekly(t, "p", nil)
	for i := range s.Keys {
		s.Keys[i].ID = fmt.Sprintf("01a2327c-0e0d-7708-9242-fd126d4%05x", i)
	}
	r := report.Build(report.Period{From: q3From, To: q3To}, []report.Subject{s}, nil, report.Inputs{}, q3To)
	d := r.Destinations[0].Expand()
	b1, _ := json.Marshal(d)
	var back report.Destination
	if err := json.Unmarshal(b1, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back.Expand())
	if string(b1) != string(b2) || len(d.Keys) != 13 || d.Keys[0].ID != s.Keys[len(s.Keys)-27].ID {
		t.Errorf("packed keys changed:\n%s\n%s", b1, b2)
	}
}
