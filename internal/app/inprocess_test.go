package app

// The preflight's and discovery's decisions, in process: the emulator, a file sink and an
// App from New, no binary started (`make test-quick` covers them).

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// inProcess starts the emulator with the labelled destinations and returns it, a config
// text for a file sink (extra YAML appended) and the destinations' ids.
func inProcess(t *testing.T, labels ...string) (*emulator.Emulator, string, map[string]string) {
	em, base, ids, _ := inProcessURL(t, labels...)
	return em, base, ids
}

func inProcessURL(t *testing.T, labels ...string) (*emulator.Emulator, string, map[string]string, string) {
	t.Helper()
	em := emulator.New(emulator.Options{})
	url, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	ids := map[string]string{}
	for _, l := range labels {
		ids[l] = em.AddDestination(l)
	}
	dir := t.TempDir()
	return em, fmt.Sprintf("state_dir: %s\napi: {base_url: %q, token_env: K, timeout: 2s, key_check_interval: 0}\nsink: {type: file, dir: %s}\n", filepath.Join(dir, "state"), url, filepath.Join(dir, "out")), ids, url
}

func newInProcess(t *testing.T, cfgText, key string) *App {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), cfg, Env{Stderr: io.Discard, Getenv: func(string) string { return key }}, Options{Version: "test", Command: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPreflightDecides: a key missing a scope or refused is fatal (nothing may be minted),
// a webhook.co that does not answer leaves the key unchecked (not fatal), and a destination
// whose file cannot be written is blocked alone.
func TestPreflightDecides(t *testing.T) {
	em, base, ids, url := inProcessURL(t, "billing")
	dests := fmt.Sprintf("destinations:\n  - {id: %s, name: billing, vault_path: webhookco/billing}\n", ids["billing"])
	readOnly := em.AddKey(emulator.ScopeEndpointsRead)
	c := newInProcess(t, base+dests, readOnly)
	f := Preflight(context.Background(), c, c.Config().Destinations)
	if len(f.Fatal) != 1 || !strings.Contains(f.Fatal[0].Error(), "endpoints:write") {
		t.Errorf("a key without endpoints:write: fatal %v", f.Fatal)
	}
	c = newInProcess(t, base+dests, "whk_"+strings.Repeat("x", 49))
	f = Preflight(context.Background(), c, c.Config().Destinations)
	if len(f.Fatal) != 1 || !strings.Contains(f.Fatal[0].Error(), "HTTP 401") {
		t.Errorf("a refused key: fatal %v", f.Fatal)
	}
	// Nobody answers at the address: unchecked, not fatal.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	down := strings.Replace(base, url, closed, 1)
	c = newInProcess(t, down+dests, readOnly)
	f = Preflight(context.Background(), c, c.Config().Destinations)
	if len(f.Fatal) != 0 || len(f.Unchecked) != 1 {
		t.Errorf("webhook.co down: fatal %v, unchecked %v", f.Fatal, f.Unchecked)
	}
	// The file sink's folder for one destination lies under a regular file.
	full := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	c = newInProcess(t, base+dests+fmt.Sprintf("  - {id: %s, name: blocked, vault_path: blocked/x/y}\n", em.AddDestination("blocked")), full)
	sinkDir := c.Config().Sink.Dir
	if err := os.MkdirAll(sinkDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sinkDir, "blocked"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f = Preflight(context.Background(), c, c.Config().Destinations)
	if len(f.Fatal) != 0 || f.Blocked["blocked"] == nil || f.Blocked["billing"] != nil {
		t.Errorf("one destination's folder blocked: fatal %v, blocked %v", f.Fatal, f.Blocked)
	}
}

// TestDiscoveryDecides: a rule selects the account's destinations by label, the rest is
// uncovered; a destination deleted at webhook.co is revoked, recorded in state_dir with when
// it was first seen gone, and no longer scheduled.
func TestDiscoveryDecides(t *testing.T) {
	em, base, ids := inProcess(t, "rd-1", "rd-2", "other")
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	c := newInProcess(t, base+"discovery:\n  rules:\n    - {label: \"rd-*\", name: \"{label}\"}\n", key)
	names := func() []string {
		var out []string
		for _, d := range c.Config().Destinations {
			out = append(out, d.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := strings.Join(names(), ","); got != "rd-1,rd-2" {
		t.Fatalf("destinations in force = %s", got)
	}
	if n := c.Coverage().Count()[account.Uncovered]; n != 1 {
		t.Errorf("uncovered = %d, want 1 (other)", n)
	}
	em.DeleteDestination(ids["rd-1"])
	if err := c.listAccount(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.setStatic(c.staticConfig())
	next := c.resolveCoverage()
	if len(next.Destinations) != 1 || next.Destinations[0].Name != "rd-2" {
		t.Errorf("after the deletion: %v", next.Destinations)
	}
	gone := ReadDeleted(c.staticConfig().StateDir)
	if len(gone) != 1 || gone[0].ID != ids["rd-1"] || gone[0].State != account.Revoked || gone[0].GoneSince == nil {
		t.Errorf("deleted-destinations.json = %+v", gone)
	}
}

// TestReloadDecides: a reload (SIGHUP) applies added and removed destinations at once, keeps
// the config in force when the file is invalid, and names the sections it applies only at
// the next restart.
func TestReloadDecides(t *testing.T) {
	em, base, ids := inProcess(t, "billing", "orders")
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	// Nothing fires during the test: a yearly slot, and no first rotation at start.
	defaults := "defaults: {schedule: \"@yearly\", first_rotation: on_schedule, missed: skip}\n"
	billing := fmt.Sprintf("  - {id: %s, name: billing, vault_path: webhookco/billing}\n", ids["billing"])
	orders := fmt.Sprintf("  - {id: %s, name: orders, vault_path: webhookco/orders}\n", ids["orders"])
	path := filepath.Join(t.TempDir(), "config.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base + defaults + "destinations:\n" + billing)
	c := newInProcess(t, base+defaults+"destinations:\n"+billing, key)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js, err := jobs(ctx, c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sched, err := newScheduler(c, js)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	defer func() { cancel(); <-done }()
	names := func() string {
		var out []string
		for _, d := range c.Config().Destinations {
			out = append(out, d.Name)
		}
		return strings.Join(out, ",")
	}

	write(base + defaults + "destinations:\n" + billing + orders)
	summary, err := reload(ctx, c, sched, path)
	if err != nil || summary != "2 destinations, 2 scheduled" || names() != "billing,orders" {
		t.Fatalf("added orders: %q, %v; in force %s", summary, err, names())
	}
	// The scheduler takes the new jobs as it runs: orders gets its next time then.
	for deadline := time.Now().Add(5 * time.Second); !c.metrics.Fleet.Next("orders").After(time.Now()); {
		if time.Now().After(deadline) {
			t.Fatal("orders has no next rotation 5 s after the reload")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The same destinations (a comment added): the running list stays, the one parsed is
	// dropped.
	running := c.staticConfig().Destinations
	write("# reviewed\n" + base + defaults + "destinations:\n" + billing + orders)
	if summary, err := reload(ctx, c, sched, path); err != nil || summary != "2 destinations, 2 scheduled" {
		t.Fatalf("the same destinations: %q, %v", summary, err)
	}
	if now := c.staticConfig().Destinations; &now[0] != &running[0] {
		t.Error("a reload of the same destinations replaced the running list with the one it parsed")
	}

	write(base + defaults + "destinations:\n" + billing + orders + "  - {id: not-a-uuid, name: bad, vault_path: x}\n")
	if _, err := reload(ctx, c, sched, path); err == nil || !strings.Contains(err.Error(), "not-a-uuid") || names() != "billing,orders" {
		t.Fatalf("an invalid file: %v; in force %s (want the config kept)", err, names())
	}

	write(strings.Replace(base, "timeout: 2s", "timeout: 3s", 1) + defaults + "destinations:\n" + orders)
	summary, err = reload(ctx, c, sched, path)
	if err != nil || summary != "1 destination, 1 scheduled; changed but applied only at the next restart: api" || names() != "orders" {
		t.Fatalf("removed billing, changed api: %q, %v; in force %s", summary, err, names())
	}
	if c.Config().API.Timeout != 2*time.Second {
		t.Errorf("api.timeout in force = %s, want the old 2s until a restart", c.Config().API.Timeout)
	}

	// The same bytes again: nothing is parsed, and the reload says what it said (api still
	// waits for a restart).
	core, logged := observer.New(zap.InfoLevel)
	c.log = zap.New(core)
	running = c.staticConfig().Destinations
	again, err := reload(ctx, c, sched, path)
	if err != nil || again != summary || &c.staticConfig().Destinations[0] != &running[0] {
		t.Fatalf("the same bytes: %q, %v; want %q and the running list kept", again, err, summary)
	}
	if logged.FilterMessage("config file unchanged since it was read (the same bytes): not parsed again").Len() != 1 {
		t.Errorf("the same bytes were parsed again: %v", logged.All())
	}
	// One byte more (a comment): parsed again, and said nowhere to be unchanged.
	write("# reviewed\n" + strings.Replace(base, "timeout: 2s", "timeout: 3s", 1) + defaults + "destinations:\n" + orders)
	if again, err := reload(ctx, c, sched, path); err != nil || again != summary || logged.FilterMessage("config file unchanged since it was read (the same bytes): not parsed again").Len() != 1 {
		t.Errorf("a comment added: %q, %v; want %q, parsed", again, err, summary)
	}
}

// TestStoredRecordsReadAfterTheStart: above inlineStartReads destinations the scheduler
// starts before the stored records are read; each record read later still decides what it
// decided before the scheduler started: a missed slot gets its catch-up, a destination with
// nothing stored its first rotation, a fresh one nothing; and their freshness is exported.
func TestStoredRecordsReadAfterTheStart(t *testing.T) {
	defer func(n int) { inlineStartReads = n }(inlineStartReads)
	inlineStartReads = 1
	em, base, ids := inProcess(t, "missed", "never", "fresh")
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	text := base + "metrics: {listen: \"127.0.0.1:0\"}\ndefaults: {schedule: \"@daily\", first_rotation: at_start, missed: run_once}\ndestinations:\n"
	for _, n := range []string{"missed", "never", "fresh"} {
		text += fmt.Sprintf("  - {id: %s, name: %s, vault_path: p/%s}\n", ids[n], n, n)
	}
	c := newInProcess(t, text, key)
	now := time.Now().UTC()
	for n, at := range map[string]time.Time{"missed": now.Add(-72 * time.Hour), "fresh": now.Add(-time.Minute)} {
		rec := sink.Record{DestinationID: ids[n], KeyID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5b00", Secret: secret.New("whsec_x"), RotatedAt: at}
		if _, err := c.sink.Put(context.Background(), "p/"+n, rec, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, Env{Stderr: io.Discard, Getenv: func(string) string { return key }}) }()
	defer func() { cancel(); <-done }()
	rotated := func(n string) int { return len(em.RequestsFor(emulator.OpRotate, ids[n])) }
	for deadline := time.Now().Add(20 * time.Second); rotated("missed") == 0 || rotated("never") == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: missed rotated %d times, never %d times; want one catch-up and one first rotation", rotated("missed"), rotated("never"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if rotated("fresh") != 0 || rotated("missed") != 1 || rotated("never") != 1 {
		t.Errorf("rotations: fresh %d, missed %d, never %d; want 0, 1, 1", rotated("fresh"), rotated("missed"), rotated("never"))
	}
	if v := overdue(t, c.metrics, "fresh"); v != 0 {
		t.Errorf("fresh: rotatord_overdue %v", v)
	}
}

// TestAccountListingSharesTheRateBudget: the account's listing goes through the API key's
// rate budget, the rotations' own, so the 429 it meets holds a rotation back (nothing is
// sent to webhook.co until Retry-After has passed) and is counted.
func TestAccountListingSharesTheRateBudget(t *testing.T) {
	em, base, _ := inProcess(t, "rd-1")
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	c := newInProcess(t, base+"discovery:\n  rules:\n    - {label: \"rd-*\", name: \"{label}\"}\n", key)
	em.InjectFaults(emulator.OpListDestinations, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "30"})
	if err := c.listAccount(context.Background()); err == nil {
		t.Fatal("the listing answered 429, yet listAccount says it listed")
	}
	d := Destination(c.Config().Destinations[0])
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if res := c.rotator.Rotate(ctx, d, rotate.TriggerSchedule); res.OK() || res.Reason != rotate.ReasonCanceled {
		t.Errorf("a rotation right after the listing's 429 (Retry-After 30 s): %+v", res)
	}
	if n := len(em.RequestsFor(emulator.OpRotate, "")); n != 0 {
		t.Errorf("%d rotate requests reached webhook.co while it asked to wait 30 s", n)
	}
	if n := testutil.ToFloat64(c.metrics.RateLimited); n != 1 {
		t.Errorf("rotatord_rate_limited_total = %v, want 1", n)
	}
}

// TestKeyCheckAnswered429IsRateLimited: whoami answered 429 is counted as rate_limited,
// not unreachable (webhook.co answered; it did not check the key), leaves
// rotatord_api_key_ok as it was, and at the start leaves the key unchecked, not refused.
func TestKeyCheckAnswered429IsRateLimited(t *testing.T) {
	em, base, ids := inProcess(t, "kc-1")
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	c := newInProcess(t, base+fmt.Sprintf("destinations:\n  - {id: %s, name: kc-1, vault_path: webhookco/kc-1}\n", ids["kc-1"]), key)
	c.metrics.APIKeyOK.Set(1)
	em.InjectFaults(emulator.OpWhoami, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "0"})
	var f Findings
	f.checkAPIKey(context.Background(), c)
	if len(f.Fatal) != 0 || len(f.Unchecked) != 1 || !strings.Contains(f.Unchecked[0].Error(), "429") {
		t.Errorf("findings: fatal %v, unchecked %v; want the key unchecked, saying 429", f.Fatal, f.Unchecked)
	}
	if n := testutil.ToFloat64(c.metrics.APIKeyChecks.WithLabelValues("rate_limited")); n != 1 {
		t.Errorf(`rotatord_api_key_checks_total{result="rate_limited"} = %v, want 1`, n)
	}
	if n := testutil.ToFloat64(c.metrics.APIKeyChecks.WithLabelValues("unreachable")); n != 0 {
		t.Errorf(`rotatord_api_key_checks_total{result="unreachable"} = %v after a 429, want 0`, n)
	}
	if v := testutil.ToFloat64(c.metrics.APIKeyOK); v != 1 {
		t.Errorf("rotatord_api_key_ok = %v after a 429, want it unchanged (1)", v)
	}
}
