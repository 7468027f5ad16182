package app

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// TestListingBegunAheadIsTheStarts: a listing begun while the config was parsed is the
// start's own: the account is listed once, what it lists is in force, its request is
// counted in the API metrics, and a 429 in it holds back the rate budget as a listing made
// by the start would. One begun with another key is not taken: the start lists again.
func TestListingBegunAheadIsTheStarts(t *testing.T) {
	start := func(t *testing.T, fault *emulator.Fault, keyAhead func(em *emulator.Emulator, key string) string) (*emulator.Emulator, *App) {
		t.Helper()
		em, base, _ := inProcess(t, "rd-1", "rd-2", "other")
		key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
		if fault != nil {
			em.InjectFaults(emulator.OpListDestinations, *fault)
		}
		cfg, err := config.Parse([]byte(base + "discovery:\n  rules:\n    - {label: \"rd-*\", name: \"{label}\"}\n"))
		if err != nil {
			t.Fatal(err)
		}
		ahead := ListAhead(context.Background(), cfg.API, func(string) string { return keyAhead(em, key) }, "test")
		if ahead == nil {
			t.Fatal("ListAhead began nothing")
		}
		<-ahead.done // answered before the start begins: what follows does not depend on timing
		c, err := New(context.Background(), cfg, Env{Stderr: io.Discard, Getenv: func(string) string { return key }}, Options{Version: "test", Command: "test", Ahead: ahead})
		if err != nil {
			t.Fatal(err)
		}
		return em, c
	}
	sameKey := func(_ *emulator.Emulator, key string) string { return key }
	listed := func(em *emulator.Emulator) int { return len(em.RequestsFor(emulator.OpListDestinations, "")) }
	inForce := func(c *App) string {
		var names []string
		for _, d := range c.Config().Destinations {
			names = append(names, d.Name)
		}
		slices.Sort(names)
		return strings.Join(names, ",")
	}

	t.Run("taken", func(t *testing.T) {
		em, c := start(t, nil, sameKey)
		if n := listed(em); n != 1 {
			t.Errorf("the account was listed %d times, want once", n)
		}
		if got := inForce(c); got != "rd-1,rd-2" {
			t.Errorf("destinations in force = %s, want rd-1,rd-2", got)
		}
		if n := testutil.ToFloat64(c.metrics.APIRequests.WithLabelValues(webhookco.OpListDestinations, "200")); n != 1 {
			t.Errorf("rotatord_api_requests_total{operation=%q,code=\"200\"} = %v, want 1", webhookco.OpListDestinations, n)
		}
		if c.ahead.Load() != nil {
			t.Error("the listing begun ahead is still held after the start took it")
		}
	})
	t.Run("answered 429", func(t *testing.T) {
		em, c := start(t, &emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "30"}, sameKey)
		if n := listed(em); n != 1 {
			t.Errorf("the account was listed %d times, want once (the start's own listing answered 429; discovery tries again at its turn)", n)
		}
		if n := testutil.ToFloat64(c.metrics.RateLimited); n != 1 {
			t.Errorf("rotatord_rate_limited_total = %v, want 1", n)
		}
	})
	t.Run("begun with another key", func(t *testing.T) {
		em, c := start(t, nil, func(em *emulator.Emulator, _ string) string { return em.AddKey(emulator.ScopeEndpointsRead) })
		if got := inForce(c); got != "rd-1,rd-2" {
			t.Errorf("destinations in force = %s, want rd-1,rd-2", got)
		}
		if n := listed(em); n != 2 {
			t.Errorf("the account was listed %d times, want twice (the one begun with another key, then the start's)", n)
		}
		if n := testutil.ToFloat64(c.metrics.APIRequests.WithLabelValues(webhookco.OpListDestinations, "200")); n != 1 {
			t.Errorf("rotatord_api_requests_total{operation=%q,code=\"200\"} = %v, want 1 (the start's own request)", webhookco.OpListDestinations, n)
		}
	})
}
