package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden .err files from the current errors")

// TestInvalidConfigs loads each testdata/invalid/*.yaml and compares the exact error with
// the golden file beside it.
func TestInvalidConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("read golden (run with -update to create it): %v", rerr)
			}
			if got != string(want) {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if len(cfg.Destinations) < 2 {
		t.Fatalf("example has %d destinations, want at least 2", len(cfg.Destinations))
	}
	for _, d := range cfg.Destinations {
		if _, err := d.ParsedSchedule(); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
}

func TestDefaultsFillDestinations(t *testing.T) {
	cfg, err := Parse([]byte(`
api: {token_env: KEY}
defaults: {schedule: "@daily", time_zone: Europe/Berlin, window: 1h, max_age: 48h}
destinations:
  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f, name: a, vault_path: x/a}
  - {id: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d, name: b, vault_path: x/b, schedule: "0 4 * * *", time_zone: UTC, window: 10m, max_age: 30h, missed: skip, enabled: false, first_rotation: on_schedule}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Destinations[0], cfg.Destinations[1]
	if b.IsEnabled() || a.Enabled != nil || !a.IsEnabled() {
		t.Errorf("enabled: a %v, b %v", a.IsEnabled(), b.IsEnabled())
	}
	a.Enabled, b.Enabled = nil, nil
	want := []Destination{
		{ID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", Name: "a", VaultPath: "x/a", Timing: Timing{Schedule: "@daily", TimeZone: "Europe/Berlin", Window: time.Hour, MaxAge: 48 * time.Hour, Missed: MissedRunOnce, OnDrift: DriftAlert, FirstRotation: FirstRotationAtStart}},
		{ID: "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", Name: "b", VaultPath: "x/b", Timing: Timing{Schedule: "0 4 * * *", TimeZone: "UTC", Window: 10 * time.Minute, MaxAge: 30 * time.Hour, Missed: MissedSkip, OnDrift: DriftAlert, FirstRotation: FirstRotationOnSchedule}},
	}
	for i, got := range []Destination{a, b} {
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("destination %d = %+v, want %+v", i, got, want[i])
		}
	}
	// Unset max_age: twice the schedule's period.
	daily := Destination{ID: a.ID, Timing: Timing{Schedule: "@daily", TimeZone: "UTC"}}
	if got := daily.EffectiveMaxAge(time.Now()); got != 48*time.Hour {
		t.Errorf("derived max_age = %s, want 48h", got)
	}
	if cfg.API.Timeout != 30*time.Second || cfg.Vault.KV.Version != 0 || cfg.Vault.Auth.Method != AuthToken || cfg.Vault.KV.Mount != "secret" || cfg.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestLoadAPIKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	const key = "whk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG123456"
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loose"), []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEY": key, "EMPTY": "", "TWO": "a b"}
	getenv := func(k string) string { return env[k] }

	got, err := API{TokenFile: keyFile}.LoadAPIKey(getenv)
	if err != nil || got.Reveal() != key {
		t.Errorf("token_file: got %v, %v", got.Reveal() == key, err)
	}
	got, err = API{TokenEnv: "KEY"}.LoadAPIKey(getenv)
	if err != nil || got.Reveal() != key {
		t.Errorf("token_env: got %v, %v", got.Reveal() == key, err)
	}
	for _, tt := range []struct {
		api  API
		want string
	}{
		{API{TokenEnv: "EMPTY"}, "read API key: environment variable EMPTY (api.token_env) is empty"},
		{API{TokenEnv: "TWO"}, "read API key: environment variable TWO (api.token_env) holds more than one line or word; want the key alone"},
		{API{TokenFile: filepath.Join(dir, "missing")}, "read API key: api.token_file " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{API{TokenFile: filepath.Join(dir, "loose")}, "read API key: api.token_file " + filepath.Join(dir, "loose") + ": mode 0644 lets others read it; chmod 600 it (or deliver it as a systemd credential)"},
	} {
		_, err := tt.api.LoadAPIKey(getenv)
		if err == nil || err.Error() != tt.want {
			t.Errorf("LoadAPIKey(%+v) error = %v, want %q", tt.api, err, tt.want)
		}
	}
}

// TestZeroDurations: a bare 0 is a valid duration wherever the example documents "0: never"
// or "0: none" (yaml.v3 refuses an integer for a time.Duration on its own).
func TestZeroDurations(t *testing.T) {
	cfg, err := Parse([]byte(`
scheduler:
  drift_check_interval: 0
defaults:
  window: 0
  max_age: 0
destinations:
  - id: 01a2327c-0e0d-7708-9242-fd126d45863b
    name: billing
    vault_path: webhookco/billing
    jitter: 0
api:
  token_env: K
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Scheduler.DriftCheckInterval; got != 0 {
		t.Errorf("drift_check_interval = %s, want 0 (never)", got)
	}
	// A bare number other than 0 stays an error: 30 means neither 30s nor 30ns.
	_, err = Parse([]byte("scheduler:\n  drift_check_interval: 30\napi:\n  token_env: K\n"))
	if err == nil || !strings.Contains(err.Error(), "want e.g. 500ms, 30s, 5m or 1h") {
		t.Errorf("drift_check_interval: 30: err = %v, want the duration hint", err)
	}
}

// TestIdsAreNormalisedWhereTheyEnter: a destination id written in capitals is the same
// destination as the API's lowercase one: one lock file, one lease, one series.
func TestIdsAreNormalisedWhereTheyEnter(t *testing.T) {
	cfg, err := Parse([]byte("api: {base_url: https://api.webhook.co, token_env: K}\ndestinations:\n" +
		"  - {id: 3F1C2A9E-8B7D-4C6E-9F10-2A3B4C5D6E7F, name: billing, vault_path: webhookco/billing}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Destinations[0].ID; got != "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f" {
		t.Errorf("id = %s, want it in lowercase", got)
	}
}

// TestHostileConfigsAreBounded: a config of thousands of repeated keys (yaml.v3 compares
// every pair and reports each: 32 KB took 14 s and made 467 MB of error text) and a 5 MB
// value both end in a short error that quotes at most a short prefix of the bad value.
func TestHostileConfigsAreBounded(t *testing.T) {
	var dup strings.Builder
	dup.WriteString("state_dir: /x\n")
	for range 6000 {
		dup.WriteString("state_dir: /x\n")
	}
	long := "api: {base_url: https://api.webhook.co, token_env: K}\ndestinations:\n" +
		"  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f, name: " + strings.Repeat("n", 5<<20) + ", vault_path: webhookco/x}\n"
	for name, text := range map[string]string{"repeated keys": dup.String(), "a 5 MB name": long} {
		_, err := Parse([]byte(text))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if n := len(err.Error()); n > 2000 {
			t.Errorf("%s: the error is %d bytes long: %.300s…", name, n, err)
		}
	}
	_, err := Parse([]byte(dup.String()))
	if err == nil || !strings.Contains(err.Error(), `line 2: key "state_dir" is already set at line 1`) {
		t.Errorf("repeated keys: %v", err)
	}
}

// TestPathIsVaultPath: `path`, the neutral key, is vault_path for a destination and a rule.
func TestPathIsVaultPath(t *testing.T) {
	cfg, err := Parse([]byte(`api: {token_env: KEY}
sink: {type: file, dir: /var/lib/rotatord/secrets}
destinations:
  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f, name: a, path: webhookco/a}
  - {id: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d, name: b, vault_path: webhookco/b, path: webhookco/b}
discovery:
  rules:
    - {label: "rd-*", name: "{label}", path: "fleet/{name}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Destinations[0].VaultPath != "webhookco/a" || cfg.Destinations[1].VaultPath != "webhookco/b" || cfg.Discovery.Rules[0].VaultPath != "fleet/{name}" {
		t.Errorf("paths: %q %q %q", cfg.Destinations[0].VaultPath, cfg.Destinations[1].VaultPath, cfg.Discovery.Rules[0].VaultPath)
	}
}

// TestStrictThroughAliases: the config is parsed once and checked on its nodes, so what the
// text decoder checked must still hold where YAML reuses a mapping: an unknown key behind an
// alias or a merge key is named with its line, a bare zero behind one is a zero duration, and
// a document of aliases that would repeat a mapping millions of times ends quickly.
func TestStrictThroughAliases(t *testing.T) {
	base := "api: {token_env: K}\n"
	_, err := Parse([]byte(base + `x-timing: &t {schedule: "@weekly", window: 0}
defaults: {<<: *t, time_zone: UTC}
destinations:
  - {<<: *t, id: 01a2327c-0e0d-7708-9242-fd126d45863b, name: billing, vault_path: webhookco/billing}
`))
	if err == nil || !strings.Contains(err.Error(), `unknown key "x-timing" in the top level`) {
		t.Fatalf("an unknown top-level key holding an anchor: err = %v", err)
	}
	cfg, err := Parse([]byte(base + `defaults: &t {schedule: "@weekly", window: 0}
destinations:
  - {<<: *t, id: 01a2327c-0e0d-7708-9242-fd126d45863b, name: billing, vault_path: webhookco/billing}
`))
	if err != nil {
		t.Fatalf("a merge key: %v", err)
	}
	if d := cfg.Destinations[0]; d.Schedule != "@weekly" || d.Window != 0 {
		t.Errorf("merged timing = %q, %v; want @weekly, 0", d.Schedule, d.Window)
	}
	_, err = Parse([]byte(base + `defaults: &t {schedule: "@weekly", windw: 1h}
destinations:
  - {<<: *t, id: 01a2327c-0e0d-7708-9242-fd126d45863b, name: billing, vault_path: webhookco/billing}
`))
	if err == nil || !strings.Contains(err.Error(), `line 2: unknown key "windw" in defaults`) {
		t.Errorf("a misspelt key behind an anchor: err = %v", err)
	}
	_, err = Parse([]byte(base + `destinations:
  - &d {id: 01a2327c-0e0d-7708-9242-fd126d45863b, name: billing, vault_path: webhookco/billing, shedule: "@daily"}
`))
	if err == nil || !strings.Contains(err.Error(), `line 3: unknown key "shedule" in a destination`) {
		t.Errorf("a misspelt key in an anchored destination: err = %v", err)
	}
	// Billion laughs: each level names the one before nine times, 9^10 in all if expanded.
	bomb := base + "destinations:\n  - &a0 [k, k, k, k, k, k, k, k, k]\n"
	for i := 1; i < 10; i++ {
		bomb += fmt.Sprintf("  - &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	if _, err := Parse([]byte(bomb)); err == nil {
		t.Errorf("a document of nested aliases: err = %v", err)
	}
}

// TestEffectiveMaxAgeSeenFromEachNow: the derived max_age is the period seen from the time
// asked, whatever was asked before (the start asks it of every destination at one now, and
// it is remembered for that now): a daily schedule in London spans 23 hours the night the
// clocks go forward, 24 on other nights, and the same schedule in UTC always 24.
func TestEffectiveMaxAgeSeenFromEachNow(t *testing.T) {
	london := Destination{Timing: Timing{Schedule: "30 1 * * *", TimeZone: "Europe/London"}}
	utc := Destination{Timing: Timing{Schedule: "30 1 * * *", TimeZone: "UTC"}}
	beforeSpring := time.Date(2026, 3, 28, 1, 0, 0, 0, time.UTC) // next 01:30 GMT on the 28th; 01:30 BST on the 30th (the 29th has none)
	ordinary := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for range 2 {
		for _, c := range []struct {
			d    Destination
			now  time.Time
			want time.Duration
		}{
			{london, beforeSpring, 2 * 47 * time.Hour}, {london, ordinary, 48 * time.Hour},
			{utc, beforeSpring, 48 * time.Hour}, {london, beforeSpring, 2 * 47 * time.Hour},
		} {
			if got := c.d.EffectiveMaxAge(c.now); got != c.want {
				t.Errorf("%s in %s from %s: max_age %s, want %s", c.d.Schedule, c.d.TimeZone, c.now, got, c.want)
			}
		}
	}
}

// TestLoadFileKnowsTheSameBytes: LoadFile parses a file unless its bytes are the ones last
// read (then it returns no config and the same digest); one byte more is parsed again, and
// an invalid file is an error whatever was read before.
func TestLoadFileKnowsTheSameBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	text := "api: {token_env: K}\ndestinations:\n  - {id: 0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b, name: billing, vault_path: webhookco/billing, schedule: \"@daily\"}\n"
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(text)
	first, d, err := LoadFile(path, Digest{})
	if err != nil || first == nil || len(first.Destinations) != 1 {
		t.Fatalf("first read: %+v, %v", first, err)
	}
	if again, d2, err := LoadFile(path, d); err != nil || again != nil || d2 != d {
		t.Errorf("the same bytes: config %v, digest changed %t, %v; want nothing parsed", again, d2 != d, err)
	}
	write(text + "# reviewed\n")
	if again, d2, err := LoadFile(path, d); err != nil || again == nil || d2 == d || !reflect.DeepEqual(again.Destinations, first.Destinations) {
		t.Errorf("a comment added: %+v, same digest %t, %v; want it parsed", again, d2 == d, err)
	}
	write("destinations: [{name: BROKEN}]\n")
	if _, _, err := LoadFile(path, d); err == nil {
		t.Error("an invalid file after a valid one was accepted")
	}
}

// TestLoadFileAheadGivesTheAPISectionFirst: a large config hands its api section over once,
// as the config has it, before its destinations are parsed (a config refused for a
// destination has handed it over already, so whatever began must wait for the answer). A
// section Validate would refuse is not handed over, so no key goes in clear to a host off
// loopback; nor is anything of a small config (parsed in milliseconds).
func TestLoadFileAheadGivesTheAPISectionFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	load := func(text string) (got []API, cfg *Config, err error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err = LoadFileAhead(path, func(a API) { got = append(got, a) })
		return got, cfg, err
	}
	big := string(fleetConfig(20_000))
	if len(big) < bigConfig {
		t.Fatalf("the fleet's config is %d bytes, under the %d parsed per chunk", len(big), bigConfig)
	}
	got, cfg, err := load(big)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], cfg.API) || len(cfg.Destinations) != 20_000 {
		t.Fatalf("a large config: handed over %+v, config api %+v, %v", got, cfg, err)
	}
	dup := "  - {id: 00000000-0000-4000-8000-000000000000, name: again, vault_path: fleet/again}\n"
	if got, _, err := load(big + dup); err == nil || !strings.Contains(err.Error(), "00000000-0000-4000-8000-000000000000") || len(got) != 1 {
		t.Errorf("a destination repeated at the end: handed over %d times, %v; want once, before the error that names it", len(got), err)
	}
	clear := strings.Replace(big, "api:\n  token_file: /tmp/k\n", "api:\n  token_file: /tmp/k\n  base_url: http://api.example.com\n", 1)
	if got, _, err := load(clear); err == nil || !strings.Contains(err.Error(), "api.base_url") || len(got) != 0 {
		t.Errorf("plain http off loopback: handed over %d times, %v; want none, and the error", len(got), err)
	}
	if got, cfg, err := load(string(fleetConfig(10))); err != nil || cfg == nil || len(got) != 0 {
		t.Errorf("a small config: handed over %d times, %v; want none", len(got), err)
	}
}
