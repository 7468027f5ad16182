package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	filesink "github.com/rotatord/rotatord/internal/sink/file"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
)

// TestStatusGolden compares `rotatord status` (table and JSON) with golden files, from a
// file sink holding fixed records, evaluated at a fixed time.
func TestStatusGolden(t *testing.T) {
	dir := t.TempDir()
	files, err := filesink.New(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		name, key string
		age       time.Duration
	}{{"fresh", "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", time.Hour}, {"stale", "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", 50 * time.Hour}} {
		rec := sink.Record{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", KeyID: r.key, Secret: secret.New("whsec_golden"), RotatedAt: at.Add(-r.age)}
		if _, err := files.Put(context.Background(), "webhookco/"+r.name, rec, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`state_dir: %s
api: {token_env: KEY}
sink: {type: file, dir: %s}
defaults: {schedule: "@daily"}
destinations:
  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f, name: fresh, vault_path: webhookco/fresh, window: 1h}
  - {id: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d, name: stale, vault_path: webhookco/stale, time_zone: Europe/Berlin}
  - {id: 9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b, name: never, vault_path: webhookco/never}
  - {id: 7c8d9e0f-1a2b-4c3d-9e4f-5a6b7c8d9e0f, name: paused, vault_path: webhookco/paused, enabled: false}
`, filepath.Join(dir, "state"), filepath.Join(dir, "secrets"))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEY": "whk_x"}
	for _, output := range []string{"table", "json"} {
		code, stdout, stderr := runMain(context.Background(), env, "status", "--config", path, "--at", at.Format(time.RFC3339), "--output", output)
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, stderr)
		}
		if strings.Contains(stdout, "whsec_golden") {
			t.Fatal("status printed a secret")
		}
		compareGolden(t, "status."+output+".golden", stdout)
	}
}

// TestDrift: a key rotated directly at the provider is drift. With on_drift: alert it is
// reported (metric, log, status --online); with on_drift: rotate rotatord rotates again so
// Vault holds the active key.
func TestDrift(t *testing.T) {
	s := newStack(t, "alerting", "healing")
	metricsAddr := freeAddr(t)
	cfg := s.writeConfigWith(t, "@daily", metricsAddr, "", "  shutdown_timeout: 5s\n  drift_check_interval: 1s\n")
	body, _ := os.ReadFile(cfg)
	body = []byte(strings.Replace(string(body), "name: healing\n", "name: healing\n    on_drift: rotate\n", 1))
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runMain(context.Background(), s.env, "rotate", "--config", cfg, "alerting", "healing"); code != 0 {
		t.Fatalf("first rotations: %d\n%s\n%s", code, out, errs)
	}
	_, stop := startRun(t, s.env, "--config", cfg)
	defer stop()
	for _, id := range s.dests {
		if _, err := s.em.RotateDirect(id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "drift to be reported", func() bool {
		return strings.Contains(tryScrape("http://"+metricsAddr+"/metrics"), `rotatord_drift{destination="alerting"} 1`)
	})
	waitFor(t, 15*time.Second, "healing to be rotated back into step", func() bool {
		sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/healing")
		return err == nil && sec.Data["key_id"] == s.em.ActiveKeys(s.dests["healing"])[0].ID
	})
	waitFor(t, 15*time.Second, "healing's drift gauge back at 0", func() bool {
		return strings.Contains(tryScrape("http://"+metricsAddr+"/metrics"), `rotatord_drift{destination="healing"} 0`)
	})
	code, logs := stop()
	if code != 0 || !strings.Contains(logs, `"trigger":"drift"`) {
		t.Fatalf("run: exit %d\n%s", code, logs)
	}
	code, out, _ := runMain(context.Background(), s.env, "status", "--config", cfg, "--online")
	rows := tableRows(out)
	if code != 0 || !strings.Contains(rows["alerting"], "DRIFT: "+s.em.ActiveKeys(s.dests["alerting"])[0].ID) || !strings.Contains(rows["healing"], " matches ") {
		t.Errorf("status --online: exit %d\n%s", code, out)
	}
}

// TestReload: SIGHUP applies added and removed destinations without a restart; a broken
// config is rejected, logged, and the running config kept.
func TestReload(t *testing.T) {
	s := newStack(t, "first", "second")
	metricsAddr := freeAddr(t)
	onlyFirst := map[string]string{"first": s.dests["first"]}
	all := s.dests
	s.dests = onlyFirst
	cfg := s.writeConfig(t, "@every 1s", metricsAddr)
	hup, stop := startRun(t, s.env, "--config", cfg)
	defer stop()
	waitFor(t, 10*time.Second, "first to rotate", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, all["first"])) >= 1 })

	// SIGHUP with the file as it started: the same bytes are not parsed again, and the
	// account is listed again all the same.
	listed := len(s.em.RequestsFor(emulator.OpListDestinations, ""))
	hup <- syscall.SIGHUP
	waitFor(t, 10*time.Second, "the account listed again", func() bool { return len(s.em.RequestsFor(emulator.OpListDestinations, "")) > listed })

	// Swap first for second.
	s.dests = map[string]string{"second": all["second"]}
	body, _ := os.ReadFile(s.writeConfig(t, "@every 1s", metricsAddr))
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	waitFor(t, 10*time.Second, "second to rotate", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, all["second"])) >= 2 })
	firstCount := len(s.em.RequestsFor(emulator.OpRotate, all["first"]))

	// A broken config is rejected; second keeps rotating.
	if err := os.WriteFile(cfg, []byte("destinations: [{name: BROKEN}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	before := len(s.em.RequestsFor(emulator.OpRotate, all["second"]))
	waitFor(t, 10*time.Second, "second to keep rotating", func() bool {
		return len(s.em.RequestsFor(emulator.OpRotate, all["second"])) >= before+2
	})
	m := tryScrape("http://" + metricsAddr + "/metrics")
	code, logs := stop()
	if code != 0 {
		t.Fatalf("run exited %d\n%s", code, logs)
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, all["first"])); n > firstCount+1 {
		t.Errorf("first rotated %d more times after it was removed", n-firstCount)
	}
	if !strings.Contains(logs, `"msg":"config reloaded"`) || !strings.Contains(logs, `"msg":"config reload rejected; the config in force is kept"`) {
		t.Errorf("log lacks the reload lines:\n%s", logs)
	}
	if n := strings.Count(logs, `"msg":"config file unchanged since it was read (the same bytes): not parsed again"`); n != 1 {
		t.Errorf("%d reloads said the file was unchanged, want the first alone:\n%s", n, logs)
	}
	for _, want := range []string{`rotatord_config_reloads_total{result="success"} 2`, `rotatord_config_reloads_total{result="failure"} 1`,
		`rotatord_config_last_reload_success_timestamp_seconds `, `rotatord_next_rotation_timestamp_seconds{destination="first"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDryRun: --dry-run reads, lists and says what it would do; nothing is rotated or written.
func TestDryRun(t *testing.T) {
	s := newStack(t, "billing-prod")
	cfg := s.writeConfig(t, "@every 1s", freeAddr(t))
	code, out, errs := runMain(context.Background(), s.env, "rotate", "--config", cfg, "--dry-run", "billing-prod")
	if code != 0 || !strings.Contains(out, "billing-prod: dry run: would rotate billing-prod (no stored secret) and store the new secret at secret-v2/data/webhookco/billing-prod") {
		t.Fatalf("rotate --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	_, stop := startRun(t, s.env, "--config", cfg, "--dry-run")
	time.Sleep(2500 * time.Millisecond)
	code, logs := stop()
	if code != 0 || strings.Count(logs, `"msg":"dry run: would rotate`) < 2 {
		t.Errorf("run --dry-run: exit %d\n%s", code, logs)
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, "")); n != 0 {
		t.Errorf("%d rotate requests in dry runs", n)
	}
	if _, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/billing-prod"); err == nil {
		t.Error("a dry run wrote to Vault")
	}
}

// TestPause: enabled: false keeps a destination in metrics and plan, and nothing rotates it.
func TestPause(t *testing.T) {
	s := newStack(t, "paused-one", "active-one")
	metricsAddr := freeAddr(t)
	cfg := s.writeConfig(t, "@every 1s", metricsAddr)
	body, _ := os.ReadFile(cfg)
	body = []byte(strings.Replace(string(body), "name: paused-one\n", "name: paused-one\n    enabled: false\n", 1))
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMain(context.Background(), s.env, "rotate", "--config", cfg, "paused-one")
	if code != 1 || !strings.Contains(stderr, "destination paused-one is paused (enabled: false") {
		t.Errorf("rotate of a paused destination: exit %d, %s", code, stderr)
	}
	_, stop := startRun(t, s.env, "--config", cfg)
	waitFor(t, 10*time.Second, "active-one to rotate twice", func() bool {
		return len(s.em.RequestsFor(emulator.OpRotate, s.dests["active-one"])) >= 2
	})
	m := tryScrape("http://" + metricsAddr + "/metrics")
	if code, logs := stop(); code != 0 {
		t.Fatalf("run: %d\n%s", code, logs)
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, s.dests["paused-one"])); n != 0 {
		t.Errorf("the paused destination was rotated %d times", n)
	}
	for _, want := range []string{`rotatord_rotations_total{destination="paused-one",result="success"} 0`, `rotatord_next_rotation_timestamp_seconds{destination="paused-one"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, out, _ := runMain(context.Background(), s.env, "plan", "--config", cfg)
	if code != 0 || !strings.Contains(tableRows(out)["paused-one"], "paused (enabled: false)") {
		t.Errorf("plan: %d\n%s", code, out)
	}
}

// TestRunListsALargeAccountBesideTheParse: with a config large enough to be parsed a chunk
// at a time (over 1 MiB), `rotatord run` begins the account's listing as soon as the api
// section is read, and the start takes that listing as its own: the start's steps say so,
// and the account is listed once.
func TestRunListsALargeAccountBesideTheParse(t *testing.T) {
	s := newStack(t, "first")
	cfg := s.writeConfig(t, "@every 1s", freeAddr(t))
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("# "+strings.Repeat("padding ", 7)+"\n", 20_000) // 1.2 MB of comments first
	if err := os.WriteFile(cfg, []byte(pad+string(body)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stop := startRun(t, s.env, "--config", cfg)
	waitFor(t, 20*time.Second, "first to rotate", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, s.dests["first"])) >= 1 })
	listed := len(s.em.RequestsFor(emulator.OpListDestinations, ""))
	code, logs := stop()
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, tail(logs, 2000))
	}
	var steps string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"rotatord starting"`) {
			steps = line
		}
	}
	if !strings.Contains(steps, "listing (begun beside the config)") {
		t.Errorf("the start's steps do not say the listing began beside the config's parse:\n%s", steps)
	}
	if listed != 1 {
		t.Errorf("the account was listed %d times by the first rotation, want once", listed)
	}
}
