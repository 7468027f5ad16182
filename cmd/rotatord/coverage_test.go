package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// TestCoverTheWholeAccount is the coverage issue's acceptance test, against the emulator and
// the real Vault. 50 destinations at start: 40 labelled and 3 unlabelled under the rule's
// host, 4 on a host an exclude rule opts out, 3 on a host no rule selects. While `run` runs,
// 10 are created over the API and 5 of the covered ones are deleted. After a discovery
// interval: every matching destination is scheduled and rotated, the new ones inside their
// window; the deleted ones are reported and no longer called; the uncovered ones are counted
// and listed by status --online; and Vault holds the provider's active key for each covered one.
func TestCoverTheWholeAccount(t *testing.T) {
	longTest(t)
	s := newStack(t)
	var covered, excluded, uncovered []string
	for i := 0; i < 40; i++ {
		label := fmt.Sprintf("shop-%02d", i)
		covered = append(covered, s.em.AddDestinationAt(&label, "https://hooks.shop.example/"+label))
	}
	for i := 0; i < 3; i++ {
		covered = append(covered, s.em.AddDestinationAt(nil, fmt.Sprintf("https://hooks.shop.example/anon-%d", i)))
	}
	for i := 0; i < 4; i++ {
		label := fmt.Sprintf("legacy-%d", i)
		excluded = append(excluded, s.em.AddDestinationAt(&label, "https://legacy.shop.example/"+label))
	}
	for i := 0; i < 3; i++ {
		label := fmt.Sprintf("partner-%d", i)
		uncovered = append(uncovered, s.em.AddDestinationAt(&label, "https://partner.example.org/"+label))
	}
	metricsAddr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	body := fmt.Sprintf(`state_dir: %s
api:
  base_url: %s
  token_env: WEBHOOKCO_API_KEY
  timeout: 5s
  rate_limit: 0
vault:
  address: %s
  kv: {mount: secret-v2}
metrics: {listen: %s}
scheduler: {max_concurrent: 8, shutdown_timeout: 5s}
discovery:
  interval: 2s
  rules:
    - url_host: "hooks.shop.example"
      name: "{label}"
      vault_path: "webhookco/{name}"
      schedule: "@every 4s"
      window: 2s
    - url_host: "legacy.shop.example"
      exclude: true
`, s.stateDir, s.apiURL, s.vaultAddr, metricsAddr)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stop := startRun(t, s.env, "--config", cfg)
	defer stop()

	rotated := func(id string) bool { return len(s.em.RequestsFor(emulator.OpRotate, id)) > 0 }
	waitFor(t, 30*time.Second, "the 43 covered destinations to rotate", func() bool {
		for _, id := range covered {
			if !rotated(id) {
				return false
			}
		}
		return true
	})
	for _, id := range append(append([]string{}, excluded...), uncovered...) {
		if rotated(id) {
			t.Errorf("%s rotated, though no rule covers it", id)
		}
	}

	// While it runs: 10 created over the API, 5 covered ones deleted over the API.
	var created []string
	for i := 0; i < 10; i++ {
		created = append(created, createDestination(t, s, fmt.Sprintf("new-%02d", i), fmt.Sprintf("https://hooks.shop.example/new-%02d", i)))
	}
	createdAt := time.Now()
	deleted := covered[:5]
	for _, id := range deleted {
		deleteDestination(t, s, id)
	}
	deletedAt := time.Now()
	// One discovery interval (2 s) and the window (2 s), with room for a loaded machine.
	waitFor(t, 20*time.Second, "the 10 new destinations to rotate", func() bool {
		for _, id := range created {
			if !rotated(id) {
				return false
			}
		}
		return true
	})
	for _, id := range created {
		first := s.em.RequestsFor(emulator.OpRotate, id)[0].At
		if d := first.Sub(createdAt); d > 2*time.Second+2*time.Second+3*time.Second {
			t.Errorf("new destination %s first rotated %v after it was created: later than an interval and its window", id, d)
		}
	}
	// The deleted ones: reported, then never called again.
	waitFor(t, 10*time.Second, "the deletions to be reported", func() bool {
		return strings.Contains(scrape(t, "http://"+metricsAddr+"/metrics"), `rotatord_destinations{state="revoked"} 5`)
	})
	calls := func(id string) int {
		n := 0
		for _, r := range s.em.Requests() {
			if r.DestinationID == id && r.At.After(deletedAt.Add(4*time.Second)) {
				n++
			}
		}
		return n
	}
	time.Sleep(6 * time.Second) // longer than the schedule's period: a scheduled one would be called
	for _, id := range deleted {
		if n := calls(id); n > 0 {
			t.Errorf("deleted destination %s called %d times after it was reported", id, n)
		}
	}

	m := scrape(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`rotatord_destinations{state="covered"} 48`, `rotatord_destinations{state="excluded"} 4`,
		`rotatord_destinations{state="uncovered"} 3`, `rotatord_destinations{state="revoked"} 5`,
		`rotatord_destinations{state="missing_at_provider"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if sumMetric(t, m, `rotatord_discovery_runs_total{result="success"}`) < 3 {
		t.Error("fewer than 3 successful discovery runs counted")
	}

	// A listing that fails keeps the last known set: nothing is unscheduled, the failure counted.
	failuresBefore := sumMetric(t, m, `rotatord_discovery_runs_total{result="failure"}`)
	s.em.InjectFaults(emulator.OpListDestinations, emulator.Fault{Kind: emulator.InternalError}, emulator.Fault{Kind: emulator.InternalError})
	waitFor(t, 15*time.Second, "two failed listings", func() bool {
		return sumMetric(t, scrape(t, "http://"+metricsAddr+"/metrics"), `rotatord_discovery_runs_total{result="failure"}`) >= failuresBefore+2
	})
	if m := scrape(t, "http://"+metricsAddr+"/metrics"); !strings.Contains(m, `rotatord_destinations{state="covered"} 48`) {
		t.Error("a failed listing changed the covered set")
	}
	probe := created[0]
	before := len(s.em.RequestsFor(emulator.OpRotate, probe))
	waitFor(t, 15*time.Second, "rotations to go on after failed listings", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, probe)) > before })

	// status --online names each uncovered destination by id, label and URL.
	code, out, stderr := runMain(context.Background(), s.env, "status", "--online", "--config", cfg)
	if code != 0 {
		t.Errorf("status --online: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "webhook.co account: 48 covered, 4 excluded, 3 uncovered, 5 revoked, 0 missing at webhook.co, 0 disabled") {
		t.Errorf("status --online lacks the coverage line:\n%s", out)
	}
	for i, id := range uncovered {
		if !containsLine(out, "uncovered", id, fmt.Sprintf("partner-%d", i), "https://partner.example.org/", "no rule selects it") {
			t.Errorf("status --online does not list uncovered %s:\n%s", id, out)
		}
	}

	code, logs := stop()
	if code != 0 {
		t.Fatalf("run exited %d\n%s", code, tail(logs, 40))
	}
	// Vault holds the provider's active key for every covered destination.
	live := append(append([]string{}, covered[5:]...), created...)
	for _, id := range live {
		name := labelOf(t, s, id)
		sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/"+name)
		active := s.em.ActiveKeys(id)
		if err != nil || len(active) != 1 || sec.Data["key_id"] != active[0].ID {
			t.Errorf("%s (%s): Vault holds %v (%v); the provider's active keys are %v", name, id, sec, err, active)
		}
	}
}

// labelOf is the name the rule gives a destination: its label, or its id when it has none.
func labelOf(t *testing.T, s *stack, id string) string {
	t.Helper()
	for _, d := range s.listAccount(t) {
		if d.ID == id {
			if d.Label != nil {
				return *d.Label
			}
			return id
		}
	}
	t.Fatalf("%s is not listed", id)
	return ""
}

// containsLine reports whether one line of out holds every part.
func containsLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// createDestination registers a destination through the API (POST /v1/replay-destinations).
func createDestination(t *testing.T, s *stack, label, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.apiURL+"/v1/replay-destinations", strings.NewReader(fmt.Sprintf(`{"url":%q,"label":%q}`, url, label)))
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct {
		ID string `json:"id"`
	}
	if err := decodeJSON(resp, &created); err != nil || resp.StatusCode != 200 {
		t.Fatalf("create %s: %d %v", label, resp.StatusCode, err)
	}
	return created.ID
}

// deleteDestination soft-deletes a destination through the API.
func deleteDestination(t *testing.T, s *stack, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, s.apiURL+"/v1/replay-destinations/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delete %s: %d", id, resp.StatusCode)
	}
}

// listAccount is the provider's list, as rotatord reads it.
func (s *stack) listAccount(t *testing.T) []webhookco.ReplayDestination {
	t.Helper()
	c, err := webhookco.New(webhookco.Options{BaseURL: s.apiURL, APIKey: secret.New(s.apiKey), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListDestinations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list.Destinations
}

func decodeJSON(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// TestPlanFromASavedListing: `plan --listing FILE` shows, offline, what the rules select from
// a saved answer of GET /v1/replay-destinations, when each is rotated, and what nobody covers.
func TestPlanFromASavedListing(t *testing.T) {
	dir := t.TempDir()
	listing := `{"items":[
  {"id":"019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f01","orgId":"019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f00","url":"https://a.hooks.example.com/x","label":"shop-eu","status":"active","createdAt":"2026-11-01T00:00:00Z","lastValidatedAt":null,"ordered":false,"disabledAt":null},
  {"id":"019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f02","orgId":"019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f00","url":"https://a.hooks.example.com/y","label":null,"status":"active","createdAt":"2026-11-01T00:00:00Z","lastValidatedAt":null,"ordered":false,"disabledAt":null},
  {"id":"019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f03","orgId":"019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f00","url":"https://partner.example.org/z","label":"partner","status":"active","createdAt":"2026-11-01T00:00:00Z","lastValidatedAt":null,"ordered":false,"disabledAt":null}
]}`
	if err := os.WriteFile(filepath.Join(dir, "listing.json"), []byte(listing), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(`state_dir: `+dir+`
api: {token_env: K}
sink: {type: file, dir: `+dir+`/out}
discovery:
  rules:
    - {url_host: "*.hooks.example.com", schedule: "0 3 * * 1"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runMain(context.Background(), nil, "plan", "--config", cfg, "--listing", filepath.Join(dir, "listing.json"), "--from", "2026-11-26T12:00:00Z", "--count", "1")
	if code != 0 {
		t.Fatalf("plan --listing: exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"shop-eu", "019d5a0e-3c1b-7f2a-9e4d-5b6c7d8e9f02", "2026-11-30 03:00:00 UTC",
		"webhook.co account: 2 covered, 0 excluded, 1 uncovered", "partner", "https://partner.example.org/z", "no rule selects it"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan --listing lacks %q:\n%s", want, out)
		}
	}
	code, _, stderr = runMain(context.Background(), nil, "plan", "--config", cfg, "--listing", cfg)
	if code != 1 || !strings.Contains(stderr, "--listing "+cfg) {
		t.Errorf("plan --listing of a file that is not a listing: exit %d\n%s", code, stderr)
	}
}

// countingProxy forwards to Vault and counts the requests by method and path.
type countingProxy struct {
	mu   sync.Mutex
	seen []string
	url  string
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *countingProxy) since(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen[n:]...)
}

func (p *countingProxy) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.seen) }

// TestVaultRequestsPerRotation counts, through a proxy in front of the real Vault, what a
// scheduled rotation costs in steady state: one request (the check-and-set write, proven by
// its answer; nothing read first, since this process wrote last; custom_metadata already in
// place) without a Vault lease, and three with one (take the lease back from this
// process's own release, write, release).
func TestVaultRequestsPerRotation(t *testing.T) {
	for _, mode := range []struct {
		name, yaml string
		want       float64
	}{{"local", "", 1}, {"vault", vaultCoordination, 3}} {
		t.Run(mode.name, func(t *testing.T) {
			s := newStack(t, "billing-prod")
			proxy := startCountingProxy(t, s.vault.Addr)
			s.vaultAddr = proxy.url
			s.extraYAML = mode.yaml
			metricsAddr := freeAddr(t)
			cfg := s.writeConfig(t, "@every 1s", metricsAddr)
			_, stop := startRun(t, s.env, "--config", cfg)
			defer stop()
			successes := func() float64 {
				return sumLines(t, tryScrape("http://"+metricsAddr+"/metrics"), `rotatord_rotations_total{destination="billing-prod",result="success"}`, "")
			}
			waitFor(t, 20*time.Second, "two rotations", func() bool { return successes() >= 2 })
			from, n0 := proxy.count(), successes()
			waitFor(t, 20*time.Second, "four more rotations", func() bool { return successes() >= n0+4 })
			seen, n := proxy.since(from), successes()-n0
			var perRotation []string
			for _, r := range seen {
				if !strings.Contains(r, "/sys/") && !strings.Contains(r, "/auth/") {
					perRotation = append(perRotation, r)
				}
			}
			if got := float64(len(perRotation)) / n; got > mode.want {
				t.Errorf("%.2f Vault requests per rotation, want at most %v: %v", got, mode.want, perRotation)
			}
			code, logs := stop()
			if code != 0 {
				t.Fatalf("run exited %d\n%s", code, tail(logs, 20))
			}
			s.assertVaultHoldsActive(t, "billing-prod")
		})
	}
}

// TestCheckWarnsOfALongLeaseTTL: with Vault leases, a lease_ttl longer than a destination's
// period means a crashed replica stalls it for several slots; check says so (seen: 60 s on
// @every 10s, 5 slots lost).
func TestCheckWarnsOfALongLeaseTTL(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(`state_dir: `+dir+`
api: {token_env: K}
vault: {address: "http://127.0.0.1:8200", kv: {mount: secret, version: 2}}
coordination: {mode: vault, lease_ttl: 60s}
destinations:
  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f, name: fast, schedule: "@every 10s", vault_path: webhookco/fast}
  - {id: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d, name: daily, schedule: "@daily", vault_path: webhookco/daily}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runMain(context.Background(), nil, "check", "--config", cfg)
	if code != 0 || !strings.Contains(out, "warning: fast: coordination.lease_ttl 1m0s is longer than its period 10s: a replica that dies holding the lease stalls it for 6 slots") || strings.Contains(out, "warning: daily") {
		t.Errorf("check: exit %d\n%s%s", code, out, stderr)
	}
}

// TestReloadAThousandDestinations: SIGHUP with 1,000 destinations, half of them replaced:
// the reload is applied at once (the new ones scheduled, the removed ones no longer), and
// the daemon says so.
func TestReloadAThousandDestinations(t *testing.T) {
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("d%04d", i)
	}
	metricsAddr := freeAddr(t)
	fs := newFileStack(t, emulator.Options{}, "", fmt.Sprintf("metrics: {listen: %s}\ndefaults: {schedule: \"@daily\", first_rotation: on_schedule}\n", metricsAddr), names...)
	hup, stop := startRun(t, fs.env, "--config", fs.cfg)
	defer stop()
	waitFor(t, 30*time.Second, "ready", func() bool { return tryScrape("http://"+metricsAddr+"/readyz") == "ready\n" })

	// Keep d0000-d0499, replace the rest with e0000-e0499.
	body, err := os.ReadFile(fs.cfg)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(body), "  - id: "+fs.ids["d0500"])
	var b strings.Builder
	b.WriteString(head)
	for i := 0; i < 500; i++ {
		name := fmt.Sprintf("e%04d", i)
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n    vault_path: webhookco/%s\n", fs.em.AddDestination(name), name, name)
	}
	if err := os.WriteFile(fs.cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	hup <- syscall.SIGHUP
	waitFor(t, 30*time.Second, "the reload", func() bool {
		return strings.Contains(tryScrape("http://"+metricsAddr+"/metrics"), `rotatord_config_reloads_total{result="success"} 1`)
	})
	t.Logf("reload of 1,000 destinations applied in %v", time.Since(began).Round(time.Millisecond))
	m := tryScrape("http://" + metricsAddr + "/metrics")
	next := func(name string) float64 {
		return sumLines(t, m, `rotatord_next_rotation_timestamp_seconds{destination="`+name+`"}`, "")
	}
	if next("e0499") <= 0 || next("d0000") <= 0 || next("d0999") != 0 {
		t.Errorf("next rotation: e0499 %v, d0000 %v, d0999 %v; want the new and kept ones scheduled, the removed one not", next("e0499"), next("d0000"), next("d0999"))
	}
	code, logs := stop()
	if code != 0 || !strings.Contains(logs, `"msg":"config reloaded"`) || !strings.Contains(logs, `"destinations":1000,"scheduled":1000`) {
		t.Errorf("run: exit %d\n%s", code, tail(logs, 10))
	}
}
