package account_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/webhookco"
)

func listed(id, label, url, status string) webhookco.ReplayDestination {
	d := webhookco.ReplayDestination{ID: id, URL: url, Status: status}
	if label != "" {
		d.Label = &label
	}
	return d
}

const (
	idExplicit = "0193a5b2-7c4d-7e8f-9a0b-000000000001"
	idBilling  = "0193a5b2-7c4d-7e8f-9a0b-000000000002"
	idNoLabel  = "0193a5b2-7c4d-7e8f-9a0b-000000000003"
	idLegacy   = "0193a5b2-7c4d-7e8f-9a0b-000000000004"
	idOther    = "0193a5b2-7c4d-7e8f-9a0b-000000000005"
	idRevoked  = "0193a5b2-7c4d-7e8f-9a0b-000000000006"
	idGone     = "0193a5b2-7c4d-7e8f-9a0b-000000000007"
	idTwin     = "0193a5b2-7c4d-7e8f-9a0b-000000000008"
	idBadLabel = "0193a5b2-7c4d-7e8f-9a0b-000000000009"
)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestResolve: every listed destination ends in one state; an explicit destination wins for
// its id; an exclude rule wins over an include rule; no label or an invalid one falls back to
// the id; a name or path two destinations would share leaves the rule-made one uncovered,
// naming both; configured destinations the provider lacks or revoked are not scheduled.
func TestResolve(t *testing.T) {
	cfg := parse(t, `api: {token_env: K}
destinations:
  - {id: `+idExplicit+`, name: billing-main, vault_path: webhookco/billing-main}
  - {id: `+idGone+`, name: gone, vault_path: webhookco/gone}
discovery:
  rules:
    - {url_host: "*.example.com", name: "{label}", schedule: "@daily"}
    - {url_host: "legacy.example.com", exclude: true}
`)
	listing := []webhookco.ReplayDestination{
		listed(idExplicit, "billing-main", "https://a.example.com/h", "active"),
		listed(idBilling, "billing-eu", "https://b.example.com/h", "active"),
		listed(idNoLabel, "", "https://c.example.com/h", "active"),
		listed(idLegacy, "old", "https://legacy.example.com/h", "active"),
		listed(idOther, "elsewhere", "https://hooks.other.org/h", "active"),
		listed(idRevoked, "dead", "https://d.example.com/h", "revoked"),
		listed(idTwin, "billing-main", "https://e.example.com/h", "active"),
		listed(idBadLabel, "Billing EU!", "https://f.example.com/h", "active"),
	}
	r := account.Resolve(cfg, listing)
	state := map[string]account.Item{}
	for _, it := range r.Items {
		if _, dup := state[it.ID]; dup {
			t.Errorf("%s appears twice", it.ID)
		}
		state[it.ID] = it
	}
	want := map[string]string{
		idExplicit: account.Covered, idBilling: account.Covered, idNoLabel: account.Covered,
		idLegacy: account.Excluded, idOther: account.Uncovered, idRevoked: account.Revoked,
		idGone: account.MissingAtProvider, idTwin: account.Uncovered, idBadLabel: account.Covered,
	}
	for id, s := range want {
		if state[id].State != s {
			t.Errorf("%s: %+v, want %s", id, state[id], s)
		}
	}
	if it := state[idNoLabel]; it.Name != idNoLabel || it.VaultPath != "webhookco/"+idNoLabel {
		t.Errorf("no label: name %q path %q, want the id", it.Name, it.VaultPath)
	}
	if it := state[idBadLabel]; it.Name != idBadLabel {
		t.Errorf("a label that is not a name: name %q, want the id", it.Name)
	}
	if it := state[idTwin]; !strings.Contains(it.Reason, `its name "billing-main" is also destinations[0] (billing-main)'s`) {
		t.Errorf("twin: %q", it.Reason)
	}
	if len(r.Problems) != 1 {
		t.Errorf("problems: %v", r.Problems)
	}
	var scheduled []string
	for _, d := range r.Destinations {
		scheduled = append(scheduled, d.Name)
		if d.Name == "billing-eu" && d.Schedule != "@daily" {
			t.Errorf("a rule's schedule not applied: %+v", d)
		}
	}
	if got := strings.Join(scheduled, " "); got != "billing-main billing-eu "+idNoLabel+" "+idBadLabel {
		t.Errorf("scheduled %s", got)
	}
	c := r.Count()
	if c[account.Covered] != 4 || c[account.Uncovered] != 2 || c[account.Excluded] != 1 || c[account.Revoked] != 1 || c[account.MissingAtProvider] != 1 || c[account.Disabled] != 0 {
		t.Errorf("count %v", c)
	}

	// Without a listing (discovery off, or none succeeded yet): the configured ones, as they are.
	r = account.Resolve(cfg, nil)
	if len(r.Destinations) != 2 || r.Listed || r.Count()[account.Covered] != 2 || len(r.Items) != 0 {
		t.Errorf("no listing: %+v", r)
	}
}

// TestTwoRulesOneDestination: two include rules that both select a destination leave it
// uncovered, naming both rules. (Validate refuses rules whose patterns may meet, so this
// config is built without it: the check at discovery is the second line.)
func TestTwoRulesOneDestination(t *testing.T) {
	rule := config.Rule{Status: config.RuleStatusActive, Name: config.DefaultRuleName, VaultPath: config.DefaultRuleVaultPath, Timing: config.Timing{Schedule: "@daily", TimeZone: "UTC"}}
	a, b := rule, rule
	a.Label, b.URLHost = "billing-*", "b.example.com"
	cfg := &config.Config{Discovery: config.Discovery{Rules: []config.Rule{a, b}}}
	r := account.Resolve(cfg, []webhookco.ReplayDestination{listed(idBilling, "billing-eu", "https://b.example.com/h", "active")})
	if len(r.Items) != 1 || r.Items[0].State != account.Uncovered || r.Items[0].Reason != "selected by both discovery.rules[0] and discovery.rules[1]" || len(r.Problems) != 1 || len(r.Destinations) != 0 {
		t.Errorf("%+v %v", r.Items, r.Problems)
	}
	if _, err := config.Parse([]byte("api: {token_env: K}\ndiscovery:\n  rules:\n    - {label: \"billing-*\"}\n    - {url_host: b.example.com}\n")); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("Parse accepted overlapping rules: %v", err)
	}
}

// TestHostileHostStaysOutOfVaultPaths: a listed URL whose host holds C1 or bidi control
// characters (a destination anyone in the organisation can create) never becomes part of
// a Vault path through {host}: that destination is left uncovered, saying why.
func TestHostileHostStaysOutOfVaultPaths(t *testing.T) {
	cfg := parse(t, `api: {token_env: K}
discovery:
  rules:
    - {url_host: "*", name: "{id}", vault_path: "webhookco/{host}/{name}"}
`)
	r := account.Resolve(cfg, []webhookco.ReplayDestination{
		listed(idBilling, "billing", "https://billing.example.com/hook", "active"),
		listed(idOther, "other", "https://evil\u202egnp.example.com/hook", "active"),
		listed(idLegacy, "legacy", "https://c1\u009bx.example.com/hook", "active"),
	})
	if len(r.Destinations) != 1 || r.Destinations[0].VaultPath != "webhookco/billing.example.com/"+idBilling {
		t.Errorf("destinations = %+v", r.Destinations)
	}
	for _, it := range r.Items {
		if it.ID != idBilling && (it.State != account.Uncovered || !strings.Contains(it.Reason, "control or formatting character")) {
			t.Errorf("%s: %s (%s)", it.ID, it.State, it.Reason)
		}
	}
}

// TestANewLabelTwinCannotUnscheduleAnother: with the default name "{label}", anyone in the
// organisation can create a destination with an existing one's label. The destination that
// was there first keeps its name, path and schedule; the newcomer is uncovered, naming it.
func TestANewLabelTwinCannotUnscheduleAnother(t *testing.T) {
	cfg := parse(t, `api: {token_env: K}
discovery:
  rules:
    - {url_host: "*"}
`)
	first := listed(idBilling, "billing", "https://billing.example.com/hook", "active")
	first.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	twin := listed(idOther, "billing", "https://attacker.example.com/hook", "active")
	twin.CreatedAt = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, order := range [][]webhookco.ReplayDestination{{first, twin}, {twin, first}} {
		r := account.Resolve(cfg, order)
		if len(r.Destinations) != 1 || r.Destinations[0].ID != idBilling || r.Destinations[0].Name != "billing" {
			t.Errorf("destinations = %+v, want the first one alone, as billing", r.Destinations)
		}
		for _, it := range r.Items {
			if it.ID == idOther && (it.State != account.Uncovered || !strings.Contains(it.Reason, "created earlier")) {
				t.Errorf("the twin: %s (%s)", it.State, it.Reason)
			}
		}
	}
}

// TestDeletedDestinationsAreReported: the real list filters deleted destinations out, so a
// destination rotatord covered that is gone from the next listing is deleted at webhook.co
// (Revoked): an explicit one instead of missing_at_provider, a rule-made one added back as
// an item. It stays so at the next listings, and is dropped once listed again.
func TestDeletedDestinationsAreReported(t *testing.T) {
	cfg := parse(t, `api: {token_env: K}
destinations:
  - {id: `+idExplicit+`, name: billing-main, vault_path: webhookco/billing-main}
discovery:
  rules:
    - {url_host: "*.example.com"}
`)
	all := []webhookco.ReplayDestination{
		listed(idExplicit, "billing-main", "https://a.example.com/h", "active"),
		listed(idBilling, "billing", "https://b.example.com/h", "active"),
		listed(idOther, "other", "https://o.example.com/h", "active"),
	}
	first, deleted := account.WithDeleted(account.Resolve(cfg, all), nil, nil)
	if len(deleted) != 0 || first.Count()[account.Covered] != 3 {
		t.Fatalf("first listing: %v, deleted %+v", first.Count(), deleted)
	}
	second, deleted := account.WithDeleted(account.Resolve(cfg, all[2:]), first.Items, deleted)
	states := map[string]string{}
	for _, it := range second.Items {
		states[it.ID] = it.State
	}
	if states[idExplicit] != account.Revoked || states[idBilling] != account.Revoked || states[idOther] != account.Covered || len(deleted) != 2 {
		t.Errorf("after both were deleted: %v, deleted %d", states, len(deleted))
	}
	if c := second.Count(); c[account.Revoked] != 2 || c[account.MissingAtProvider] != 0 || len(second.Destinations) != 1 {
		t.Errorf("counts %v, %d scheduled", c, len(second.Destinations))
	}
	// A restart: no previous result, only what the daemon recorded.
	third, deleted := account.WithDeleted(account.Resolve(cfg, all[2:]), nil, deleted)
	if third.Count()[account.Revoked] != 2 || len(deleted) != 2 {
		t.Errorf("after a restart: %v", third.Count())
	}
	// Listed again (undeleted, or the id reused): covered, no longer deleted.
	fourth, deleted := account.WithDeleted(account.Resolve(cfg, all), third.Items, deleted)
	if fourth.Count()[account.Revoked] != 0 || len(deleted) != 0 {
		t.Errorf("listed again: %v, deleted %d", fourth.Count(), len(deleted))
	}
}

// TestDisabledAtTheProviderIsItsOwnState: a destination webhook.co disabled (disabledAt) is
// still rotated on schedule, explicit or rule-made, and counted as disabled_at_provider,
// not covered, so an operator sees it.
func TestDisabledAtTheProviderIsItsOwnState(t *testing.T) {
	cfg := parse(t, `api: {token_env: K}
destinations:
  - {id: `+idExplicit+`, name: billing-main, vault_path: webhookco/billing-main}
discovery:
  rules:
    - {url_host: "*.example.com"}
`)
	off := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	explicit := listed(idExplicit, "billing-main", "https://a.example.com/h", "active")
	explicit.DisabledAt = &off
	rule := listed(idBilling, "billing", "https://b.example.com/h", "active")
	rule.DisabledAt = &off
	r := account.Resolve(cfg, []webhookco.ReplayDestination{explicit, rule, listed(idOther, "other", "https://o.example.com/h", "active")})
	if c := r.Count(); c[account.DisabledAtProvider] != 2 || c[account.Covered] != 1 || len(r.Destinations) != 3 {
		t.Errorf("counts %v, %d scheduled; want 2 disabled at the provider, 1 covered, all 3 scheduled", c, len(r.Destinations))
	}
	for _, it := range r.InState(account.DisabledAtProvider) {
		if !strings.Contains(it.Reason, "disabled by webhook.co since 2026-11-30T08:00:00Z") {
			t.Errorf("%s: reason %q", it.ID, it.Reason)
		}
	}
}

// TestResolveSharesTheConfigsDestinations: when every configured destination is in force,
// the result is the config's own list, not a copy (at 100,000 destinations a copy is 24 MB
// held for the daemon's life); a list with one left out, or with a rule's destinations
// added, is a new list, and the config's list is never written.
func TestResolveSharesTheConfigsDestinations(t *testing.T) {
	cfg := parse(t, `api: {token_env: K}
destinations:
  - {id: `+idExplicit+`, name: billing-main, vault_path: webhookco/billing-main}
  - {id: `+idGone+`, name: gone, vault_path: webhookco/gone}
  - {id: `+idOther+`, name: other, vault_path: webhookco/other, enabled: false}
`)
	before := append([]config.Destination(nil), cfg.Destinations...)
	unchanged := func(t *testing.T) {
		t.Helper()
		if len(cfg.Destinations) != len(before) {
			t.Fatalf("the config's list changed length: %d", len(cfg.Destinations))
		}
		for i := range before {
			if cfg.Destinations[i].ID != before[i].ID || cfg.Destinations[i].Name != before[i].Name {
				t.Errorf("the config's destinations[%d] was written: %+v", i, cfg.Destinations[i])
			}
		}
	}
	all := []webhookco.ReplayDestination{
		listed(idExplicit, "", "https://a.example.com/h", "active"),
		listed(idGone, "", "https://b.example.com/h", "active"),
		listed(idOther, "", "https://c.example.com/h", "active"),
	}
	for name, listing := range map[string][]webhookco.ReplayDestination{"listed": all, "no listing": nil} {
		r := account.Resolve(cfg, listing)
		if len(r.Destinations) != 3 || &r.Destinations[0] != &cfg.Destinations[0] {
			t.Errorf("%s: every destination in force, but the result is a copy of the config's list", name)
		}
		// The shared list has no room: an append copies instead of writing the config's array.
		grown := append(r.Destinations, config.Destination{ID: idTwin, Name: "appended"})
		if &grown[0] == &cfg.Destinations[0] {
			t.Errorf("%s: an append to the result wrote into the config's array", name)
		}
		unchanged(t)
	}

	// The second one is gone at webhook.co: the rest are in force, in their order.
	r := account.Resolve(cfg, []webhookco.ReplayDestination{all[0], all[2]})
	if len(r.Destinations) != 2 || r.Destinations[0].ID != idExplicit || r.Destinations[1].ID != idOther {
		t.Fatalf("in force: %+v", r.Destinations)
	}
	r.Destinations[0].Name = "written"
	unchanged(t)

	// A rule adds one: the config's three, then the rule's.
	withRule := parse(t, `api: {token_env: K}
destinations:
  - {id: `+idExplicit+`, name: billing-main, vault_path: webhookco/billing-main}
discovery:
  rules:
    - {url_host: "*.example.com", name: "{label}", schedule: "@daily"}
`)
	r = account.Resolve(withRule, []webhookco.ReplayDestination{all[0], listed(idBilling, "billing-eu", "https://b.example.com/h", "active")})
	if len(r.Destinations) != 2 || r.Destinations[1].ID != idBilling || len(withRule.Destinations) != 1 {
		t.Fatalf("in force: %+v; the config's: %+v", r.Destinations, withRule.Destinations)
	}
}
