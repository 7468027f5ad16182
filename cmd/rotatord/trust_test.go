package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/emulator"
)

// The tests of this file hold rotatord to "never a false success, never a surprise a week
// later": every command checks before it mints, and says ok only when it is.

// withKV points a config of the stack at another KV mount and version.
func withKV(t *testing.T, cfg, mount string, version int) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "    mount: secret-v2\n", fmt.Sprintf("    mount: %s\n    version: %d\n", mount, version), 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestKVVersionMismatchIsAnError: vault.kv.version 2 on a KV v1 mount (and 1 on a KV v2
// mount) is an error naming both versions in check --online, rotate, run and status, and
// nothing is minted.
func TestKVVersionMismatchIsAnError(t *testing.T) {
	s := newStack(t, "billing-prod")
	s.vault.EnableKV(t, "secret-v1", 1)
	for _, c := range []struct {
		mount   string
		version int
		want    string
	}{
		{"secret-v1", 2, "vault.kv.version is 2, but secret-v1/ is a KV v1 mount"},
		{"secret-v2", 1, "vault.kv.version is 1, but secret-v2/ is a KV v2 mount"},
	} {
		cfg := withKV(t, s.writeConfig(t, "@daily", "127.0.0.1:0"), c.mount, c.version)
		code, stdout, stderr := runMain(context.Background(), s.env, "check", "--config", cfg, "--online")
		if code != 1 || !strings.Contains(stdout, c.want) || strings.Contains(stdout, "online check: ok") {
			t.Errorf("%s as v%d: check --online exit %d\n%s%s", c.mount, c.version, code, stdout, stderr)
		}
		code, stdout, stderr = runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stdout, "rotated") {
			t.Errorf("%s as v%d: rotate exit %d\n%s%s", c.mount, c.version, code, stdout, stderr)
		}
		code, _, stderr = runMain(context.Background(), s.env, "run", "--config", cfg)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s as v%d: run exit %d\n%s", c.mount, c.version, code, stderr)
		}
		code, stdout, stderr = runMain(context.Background(), s.env, "status", "--config", cfg, "--online")
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stdout, "matches") {
			t.Errorf("%s as v%d: status --online exit %d\n%s%s", c.mount, c.version, code, stdout, stderr)
		}
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, "")); n != 0 {
		t.Errorf("%d rotate requests reached webhook.co; want none", n)
	}
}

// TestRotateRunsThePreflight: rotate does not mint for a destination whose secret the Vault
// token may not store; it fails naming the missing capability, and rotates the others.
func TestRotateRunsThePreflight(t *testing.T) {
	s := newStack(t, "billing-prod", "orders-prod")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	policy := `
path "secret-v2/data/webhookco/*" { capabilities = ["create", "update", "read"] }
path "secret-v2/metadata/webhookco/*" { capabilities = ["patch"] }
path "secret-v2/data/webhookco/orders-prod" { capabilities = ["create", "read"] }
path "sys/capabilities-self" { capabilities = ["update"] }
`
	if err := s.vault.Client(t).Sys().PutPolicy("no-update-orders", policy); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WEBHOOKCO_API_KEY": s.apiKey, "VAULT_TOKEN": s.vault.Token(t, "no-update-orders")}
	code, stdout, stderr := runMain(context.Background(), env, "rotate", "--config", cfg, "orders-prod", "billing-prod")
	want := "orders-prod: FAILED (preflight): not rotated, nothing minted: the Vault token lacks update on secret-v2/data/webhookco/orders-prod"
	if code != 1 || !strings.Contains(stdout, want) || !strings.Contains(stdout, "billing-prod: rotated, key ") {
		t.Fatalf("rotate: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, s.dests["orders-prod"])); n != 0 {
		t.Errorf("orders-prod: %d rotate requests; nothing may be minted for a secret that cannot be stored", n)
	}
	s.assertVaultHoldsActive(t, "billing-prod")
}

// TestRunChecksTheAPIKey: run refuses to start with a key webhook.co refuses or one that
// lacks a scope (unless --allow-degraded), and notices a key revoked while it runs.
func TestRunChecksTheAPIKey(t *testing.T) {
	s := newStack(t, "billing-prod")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	for _, c := range []struct{ key, want string }{
		{"whk_" + strings.Repeat("x", 49), "webhook.co refused the API key (HTTP 401"},
		{s.em.AddKey(emulator.ScopeEndpointsWrite), "lacks the scope endpoints:read"},
	} {
		env := map[string]string{"WEBHOOKCO_API_KEY": c.key, "VAULT_TOKEN": s.vault.RootToken}
		code, _, stderr := runMain(context.Background(), env, "run", "--config", cfg)
		if code != 1 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "--allow-degraded") {
			t.Errorf("run: exit %d, want 1 saying %q:\n%s", code, c.want, stderr)
		}
		if strings.Contains(stderr, c.key) {
			t.Error("the API key appears in the output")
		}
	}

	// A good key, checked every second: revoked while run runs, rotatord_api_key_ok drops to 0.
	key := s.em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	metricsAddr := freeAddr(t)
	cfg = s.writeConfig(t, "@daily", metricsAddr)
	editConfig(t, cfg, "  timeout: 5s\n", "  timeout: 5s\n  key_check_interval: 1s\n")
	_, stop := startRun(t, map[string]string{"WEBHOOKCO_API_KEY": key, "VAULT_TOKEN": s.vault.RootToken}, "--config", cfg)
	defer stop()
	url := "http://" + metricsAddr + "/metrics"
	waitFor(t, 20*time.Second, "rotatord_api_key_ok 1", func() bool { return strings.Contains(tryScrape(url), "\nrotatord_api_key_ok 1\n") })
	s.em.RevokeKey(key)
	waitFor(t, 20*time.Second, "rotatord_api_key_ok 0 after the key was revoked", func() bool {
		return strings.Contains(tryScrape(url), "\nrotatord_api_key_ok 0\n")
	})
	if got := tryScrape(url); !strings.Contains(got, `rotatord_api_key_checks_total{result="rejected"}`) {
		t.Errorf("no rejected key check counted")
	}
	_, logs := stop()
	if !strings.Contains(logs, "webhook.co API key check failed") {
		t.Errorf("no log line for the revoked key:\n%s", tail(logs, 10))
	}
}

// TestCheckOnlineCatchesWhatFailsLater: check --online fails for a destination webhook.co
// does not know and for a state_dir rotatord cannot use, and leaves nothing behind;
// status --online fails too when a listing fails, and shows why in its table.
func TestCheckOnlineCatchesWhatFailsLater(t *testing.T) {
	s := newStack(t, "billing-prod")
	s.dests["ghost"] = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b" // valid, unknown to webhook.co
	s.stateDir = filepath.Join(t.TempDir(), "not-yet", "state")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, _ := runMain(context.Background(), s.env, "check", "--config", cfg, "--online")
	rows := tableRows(stdout)
	if code != 1 || !strings.Contains(rows["ghost"], "no such replay destination at webhook.co") || !strings.HasSuffix(rows["billing-prod"], " ok") ||
		!strings.Contains(stdout, "writable") || strings.Contains(stdout, "online check: ok") {
		t.Errorf("unknown destination: exit %d\n%s", code, stdout)
	}
	if _, err := os.Stat(filepath.Dir(s.stateDir)); !os.IsNotExist(err) {
		t.Errorf("check --online created %s: %v", filepath.Dir(s.stateDir), err)
	}
	code, stdout, _ = runMain(context.Background(), s.env, "status", "--config", cfg, "--online")
	if code != 1 || !strings.Contains(tableRows(stdout)["ghost"], "not at webhook.co (missing_at_provider)") {
		t.Errorf("status --online with an unknown destination: exit %d\n%s", code, stdout)
	}

	// A state_dir that cannot be created: its parent is a file.
	delete(s.dests, "ghost")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.stateDir = filepath.Join(file, "state")
	cfg = s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, _ = runMain(context.Background(), s.env, "check", "--config", cfg, "--online")
	if code != 1 || !strings.Contains(stdout, "state_dir "+s.stateDir+": ") || strings.Contains(stdout, "online check: ok") {
		t.Errorf("unusable state_dir: exit %d\n%s", code, stdout)
	}
}

// TestVaultThatNeverAnswers: a Vault that accepts connections and never answers does not
// hold rotatord's start: run is healthy within a few vault.timeouts, degraded as for a
// refused connection.
func TestVaultThatNeverAnswers(t *testing.T) {
	s := newStack(t, "billing-prod")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and hold every connection, answering nothing
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	s.vaultAddr = "http://" + ln.Addr().String()
	metricsAddr := freeAddr(t)
	cfg := s.writeConfig(t, "@daily", metricsAddr)
	editConfig(t, cfg, "    mount: secret-v2\n", "    mount: secret-v2\n  timeout: 5s\n")
	_, stop := startRun(t, s.env, "--config", cfg)
	defer stop()
	// The metrics server and /healthz come up first, before anything waits on Vault; until
	// the daemon is ready, /readyz says it is starting.
	waitFor(t, 4*time.Second, "/healthz to answer before the first Vault timeout (5s)", func() bool { return tryScrape("http://"+metricsAddr+"/healthz") == "ok\n" })
	if body := tryScrape("http://" + metricsAddr + "/readyz"); !strings.Contains(body, "starting") {
		t.Errorf("/readyz while starting: %q", body)
	}
	// The whole degraded start takes one vault.timeout, not one per step (login, the KV
	// mount, the preflight, the start-up reads each used to wait the whole timeout).
	waitFor(t, 5*time.Second+5*time.Second, "/readyz within one vault.timeout and a margin", func() bool {
		return tryScrape("http://"+metricsAddr+"/readyz") == "ready\n"
	})
	_, logs := stop()
	if !strings.Contains(logs, "vault unreachable at start") {
		t.Errorf("no degraded-start line:\n%s", tail(logs, 10))
	}
}

// policyGrant is one capability on one path of the shipped policy.
type policyGrant struct{ path, capability string }

var policyBlock = regexp.MustCompile(`(?m)^path "([^"]+)" \{\s*capabilities = \[([^\]]*)\]\s*\}`)

// readPolicy lists the grants of deploy/vault/rotatord-policy.hcl.
func readPolicy(t *testing.T) []policyGrant {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", "rotatord-policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []policyGrant
	for _, m := range policyBlock.FindAllStringSubmatch(string(b), -1) {
		for _, c := range strings.Split(m[2], ",") {
			out = append(out, policyGrant{m[1], strings.Trim(strings.TrimSpace(c), `"`)})
		}
	}
	if len(out) < 8 {
		t.Fatalf("read only %d grants from the policy", len(out))
	}
	return out
}

// writePolicy renders grants as HCL.
func writePolicy(grants []policyGrant) string {
	byPath := map[string][]string{}
	for _, g := range grants {
		byPath[g.path] = append(byPath[g.path], fmt.Sprintf("%q", g.capability))
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "path %q { capabilities = [%s] }\n", p, strings.Join(byPath[p], ", "))
	}
	return b.String()
}

// TestPreflightNamesEveryGrant removes each grant of the shipped policy in turn and expects
// check --online to fail naming that capability on that path: the preflight asks about
// every right rotatord uses, and the policy grants nothing it does not use.
func TestPreflightNamesEveryGrant(t *testing.T) {
	s := newStack(t, "billing-prod", "orders-prod")
	// The dev Vault's own secret/ is KV v1: the policy's mount is renamed, as its header says.
	s.vault.EnableKV(t, "kv", 2)
	s.extraYAML = "coordination:\n  mode: vault\n  lease_ttl: 20s\n"
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	editConfig(t, cfg, "    mount: secret-v2\n", "    mount: kv\n")
	root := s.vault.Client(t)
	token := func(policy string) string {
		t.Helper()
		if err := root.Sys().PutPolicy("under-test", policy); err != nil {
			t.Fatal(err)
		}
		sec, err := root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"under-test"}, NoDefaultPolicy: true})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	grants := readPolicy(t)
	for i := range grants {
		grants[i].path = regexp.MustCompile(`^secret/|/secret$`).ReplaceAllStringFunc(grants[i].path, func(m string) string {
			return strings.Replace(m, "secret", "kv", 1)
		})
	}
	env := map[string]string{"WEBHOOKCO_API_KEY": s.apiKey, "VAULT_TOKEN": token(writePolicy(grants))}
	if code, stdout, stderr := runMain(context.Background(), env, "check", "--config", cfg, "--online"); code != 0 {
		t.Fatalf("the whole policy: exit %d\n%s%s", code, stdout, stderr)
	}
	for i, g := range grants {
		if g.capability == "list" {
			continue // optional: without it, start-up reads each secret instead of listing
		}
		rest := append(append([]policyGrant(nil), grants[:i]...), grants[i+1:]...)
		env["VAULT_TOKEN"] = token(writePolicy(rest))
		code, stdout, stderr := runMain(context.Background(), env, "check", "--config", cfg, "--online")
		named := g.capability + " on " + strings.TrimSuffix(g.path, "*")
		if code != 1 || !strings.Contains(stdout+stderr, named) {
			t.Errorf("without %s on %s: exit %d, want 1 naming %q:\n%s%s", g.capability, g.path, code, named, stdout, stderr)
		}
	}
}

// TestFourHundredNewDestinationsAtStart: 400 destinations with nothing stored are due at
// once when run starts (first_rotation: at_start, no window), rotated 8 at a time into the
// real Vault through a sealed spool: 400 stored, none failed, nothing left in the spool.
func TestFourHundredNewDestinationsAtStart(t *testing.T) {
	const n = 400
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("fleet-%03d", i)
	}
	s := newStack(t, names...)
	keyFile := filepath.Join(t.TempDir(), "spool.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.extraYAML = "spool:\n  key_file: " + keyFile + "\n"
	metricsAddr := freeAddr(t)
	cfg := s.writeConfigWith(t, "@daily", metricsAddr, "", "  shutdown_timeout: 5s\n  max_concurrent: 8\n")
	// No client-side rate budget: the default 10 calls/s would pace the test, not rotatord.
	editConfig(t, cfg, "  timeout: 5s\n", "  timeout: 5s\n  rate_limit: 0\n")
	_, stop := startRun(t, s.env, "--config", cfg)
	defer stop()
	url := "http://" + metricsAddr + "/metrics"
	waitFor(t, 3*time.Minute, "400 rotations", func() bool {
		text := tryScrape(url)
		return text != "" && sumLines(t, text, `rotatord_rotations_total{destination="fleet-`, `result="success"`)+sumLines(t, text, `rotatord_rotations_total{destination="fleet-`, `result="failure"`) >= n
	})
	text := tryScrape(url)
	if failed := sumLines(t, text, `rotatord_rotation_failures_total{destination="fleet-`, ""); failed != 0 {
		t.Errorf("%v rotations failed", failed)
	}
	if !strings.Contains(text, "\nrotatord_spooled_secrets 0\n") {
		t.Errorf("secrets left in the spool")
	}
	_, logs := stop()
	if strings.Contains(logs, `"level":"error"`) {
		t.Errorf("errors logged:\n%s", tail(logs, 5))
	}
	for _, name := range names {
		s.assertVaultHoldsActive(t, name)
	}
}
