package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	filesink "github.com/rotatord/rotatord/internal/sink/file"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// The daemon's decisions, tested without a daemon: a config, a file sink and a clock.

const jobsConfig = `
state_dir: /tmp/unused
api: {token_env: K}
sink: {type: file, dir: /tmp/unused}
defaults: {schedule: "@hourly", window: 10m}
destinations:
  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a01, name: fresh, vault_path: p/fresh}
  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a02, name: missed, vault_path: p/missed}
  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a03, name: never, vault_path: p/never}
  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a04, name: never-waits, vault_path: p/never-waits, first_rotation: on_schedule}
  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a05, name: missed-skips, vault_path: p/missed-skips, missed: skip}
  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a06, name: paused, vault_path: p/paused, enabled: false}
`

func TestJobsDecideFirstFires(t *testing.T) {
	cfg, err := config.Parse([]byte(jobsConfig))
	if err != nil {
		t.Fatal(err)
	}
	s, err := filesink.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	store := func(path string, at time.Time) {
		rec := sink.Record{DestinationID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a00", KeyID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5b00", Secret: secret.New("whsec_x"), RotatedAt: at}
		if _, err := s.Put(context.Background(), path, rec, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}
	store("p/fresh", now.Add(-10*time.Minute))     // rotated for the 12:00 slot
	store("p/missed", now.Add(-5*time.Hour))       // slots since then were missed
	store("p/missed-skips", now.Add(-5*time.Hour)) // likewise, with missed: skip
	store("p/paused", now.Add(-5*time.Hour))
	m := metrics.New(metrics.Options{Registerer: prometheus.NewRegistry(), Destinations: []string{"fresh"}, SkipProcessCollectors: true, Now: func() time.Time { return now }})
	c := &App{cfg: cfg, sink: s, metrics: m, log: zap.NewNop(), rights: newDeferredRights(nil, nil)}

	got, err := jobs(context.Background(), c, now)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, j := range got {
		byName[j.Name] = i
	}
	if _, ok := byName["paused"]; ok || len(got) != 5 {
		t.Fatalf("jobs %v: want the 5 enabled destinations", byName)
	}
	first := func(name string) (time.Time, time.Time) { j := got[byName[name]]; return j.FirstAt, j.FirstSlot }
	if at, _ := first("fresh"); !at.IsZero() {
		t.Errorf("fresh: an extra fire at %s", at)
	}
	if at, slot := first("missed"); at.Before(now) || at.After(now.Add(10*time.Minute)) || !slot.Equal(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("missed: catch-up at %s for slot %s; want inside the window, for the first missed slot 08:00", at, slot)
	}
	if at, slot := first("never"); at.Before(now) || at.After(now.Add(10*time.Minute)) || !slot.IsZero() {
		t.Errorf("never: first rotation at %s (slot %s); want at start inside the window", at, slot)
	}
	for _, name := range []string{"never-waits", "missed-skips"} {
		if at, _ := first(name); !at.IsZero() {
			t.Errorf("%s: an extra fire at %s; its policy says wait for the schedule", name, at)
		}
	}
	// Nothing stored is overdue at once, for both first-rotation policies.
	for _, name := range []string{"never", "never-waits"} {
		if got := overdue(t, m, name); got != 1 {
			t.Errorf("%s: rotatord_overdue = %v, want 1", name, got)
		}
	}
	if got := overdue(t, m, "fresh"); got != 0 {
		t.Errorf("fresh: rotatord_overdue = %v, want 0", got)
	}
}

// overdue reads rotatord_overdue{destination=name}.
func overdue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Fleet)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rotatord_overdue" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "destination" && l.GetValue() == name {
					return metric.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no rotatord_overdue series for %s", name)
	return 0
}

func TestNeedsRestart(t *testing.T) {
	old, err := config.Parse([]byte(jobsConfig))
	if err != nil {
		t.Fatal(err)
	}
	next := *old
	next.Destinations = next.Destinations[:2]
	next.Defaults.Window = time.Hour
	if got := needsRestart(old, &next); len(got) != 0 {
		t.Errorf("destinations and defaults changed: %v need a restart, want none", got)
	}
	next.Scheduler.MaxConcurrent = 9
	next.Metrics.Listen = "127.0.0.1:1"
	if got := strings.Join(needsRestart(old, &next), ","); got != "metrics,scheduler" {
		t.Errorf("needsRestart = %s, want metrics,scheduler", got)
	}
}

// TestStartupWithAThousandDestinations: against the real Vault, 1,000 destinations read in
// parallel at start get the same decisions as one read at a time would give: the fresh ones
// nothing extra, the ones that missed a slot a catch-up for their first missed slot, the
// never-rotated ones a first rotation at start, and freshness for each.
func TestStartupWithAThousandDestinations(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	s, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "kv", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	now := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	var b strings.Builder
	b.WriteString("state_dir: /tmp/unused\napi: {token_env: K}\ndefaults: {schedule: \"@hourly\", window: 10m}\ndestinations:\n")
	var names []string
	for i := range n {
		name := fmt.Sprintf("d%04d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f%04d, name: %s, vault_path: p/%s}\n", i, name, name)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	// A third fresh, a third missed since 07:40, a third never stored.
	for i, name := range names {
		var at time.Time
		switch i % 3 {
		case 0:
			at = now.Add(-10 * time.Minute)
		case 1:
			at = time.Date(2026, 12, 1, 7, 40, 0, 0, time.UTC)
		default:
			continue
		}
		rec := sink.Record{DestinationID: cfg.Destinations[i].ID, KeyID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5b00", Secret: secret.New("whsec_x"), RotatedAt: at}
		if _, err := s.Put(context.Background(), "p/"+name, rec, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.New(metrics.Options{Registerer: prometheus.NewRegistry(), SkipProcessCollectors: true, Now: func() time.Time { return now }})
	c := &App{cfg: cfg, sink: s, metrics: m, log: zap.NewNop(), rights: newDeferredRights(nil, nil)}
	got, err := jobs(context.Background(), c, now)
	if err != nil || len(got) != n {
		t.Fatalf("jobs: %d, %v", len(got), err)
	}
	for i, j := range got {
		if j.Name != names[i] {
			t.Fatalf("job %d is %s, want %s (the config's order)", i, j.Name, names[i])
		}
		switch i % 3 {
		case 0:
			if !j.FirstAt.IsZero() {
				t.Errorf("%s (fresh): an extra fire at %s", j.Name, j.FirstAt)
			}
		case 1:
			if !j.FirstSlot.Equal(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)) || j.FirstAt.Before(now) {
				t.Errorf("%s (missed): catch-up at %s for slot %s; want slot 08:00", j.Name, j.FirstAt, j.FirstSlot)
			}
		default:
			if j.FirstAt.Before(now) || j.FirstAt.After(now.Add(10*time.Minute)) || !j.FirstSlot.IsZero() {
				t.Errorf("%s (never): first fire at %s; want at start, inside the window", j.Name, j.FirstAt)
			}
		}
	}
	for i, name := range names {
		want := map[int]float64{0: 0, 1: 1, 2: 1}[i%3] // missed since 07:40 is past twice the hour
		if got := overdue(t, m, name); got != want {
			t.Errorf("%s: rotatord_overdue = %v, want %v", name, got, want)
		}
	}
}

// TestActorThatEndsStopsTheDaemonWithAnError: a long-running part that returns on its own,
// even with no error, ends the group with an error naming it (the daemon exits non-zero,
// so Restart=on-failure brings it back); parts stopped by the group's end return cleanly.
func TestActorThatEndsStopsTheDaemonWithAnError(t *testing.T) {
	var g run.Group
	actor(&g, "the early one", func(context.Context) error { return nil })
	actor(&g, "a patient one", func(ctx context.Context) error { <-ctx.Done(); return nil })
	if err := g.Run(); err == nil || err.Error() != "the early one ended unexpectedly" {
		t.Errorf("group ended with %v", err)
	}
}

// TestUncheckedSaysWhatDidNotAnswer: a preflight step that could not run says which service
// did not answer and what follows; an unreachable webhook.co is not "until Vault answers".
func TestUncheckedSaysWhatDidNotAnswer(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	Findings{Unchecked: []error{
		fmt.Errorf("webhook.co did not answer whoami, so the API key is not checked: %w", errors.New("dial tcp: connection refused")),
		fmt.Errorf("vault: %w", errors.New("context deadline exceeded")),
	}}.Log(zap.New(core))
	got := logs.All()
	if len(got) != 2 || strings.Contains(got[0].Message, "Vault") || !strings.Contains(got[0].Message, "webhook.co") || !strings.Contains(got[1].Message, "until Vault answers") {
		for _, e := range got {
			t.Logf("%s", e.Message)
		}
		t.Error("the preflight's unchecked steps are not told apart")
	}
}
