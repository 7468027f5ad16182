package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
)

// TestPolicyFileWithAppRole: with deploy/vault/rotatord-policy.hcl applied to an AppRole,
// `check --online` reports every path ok; with update missing on one path, check names it
// and exits 1, run refuses to start, and run --allow-degraded starts and fails that
// destination without rotating it.
func TestPolicyFileWithAppRole(t *testing.T) {
	s := newStack(t, "billing-prod", "orders-prod")
	vc := s.vault.Client(t)
	// The policy file is written for a KV v2 mount "secret".
	if err := vc.Sys().Unmount("secret"); err != nil {
		t.Fatal(err)
	}
	s.vault.EnableKV(t, "secret", 2)
	policy, err := os.ReadFile("../../deploy/vault/rotatord-policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Sys().PutPolicy("rotatord", string(policy)); err != nil {
		t.Fatal(err)
	}
	// The same policy, but orders-prod may not be updated.
	partial := string(policy) + "\npath \"secret/data/webhookco/orders-prod\" { capabilities = [\"create\", \"read\"] }\n"
	if err := vc.Sys().PutPolicy("rotatord-partial", partial); err != nil {
		t.Fatal(err)
	}
	s.vault.EnableAppRole(t)

	dir := t.TempDir()
	config := func(policy string) string {
		t.Helper()
		roleID, secretID := s.vault.AppRole(t, policy, map[string]any{"token_policies": policy, "token_no_default_policy": true, "token_ttl": "10m"})
		secretFile := filepath.Join(dir, policy+".secret-id")
		if err := os.WriteFile(secretFile, []byte(secretID), 0o600); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "state_dir: %s\napi:\n  base_url: %s\n  token_env: WEBHOOKCO_API_KEY\n", filepath.Join(dir, policy+".state"), s.apiURL)
		fmt.Fprintf(&b, "vault:\n  address: %s\n  auth:\n    method: approle\n    role_id: %s\n    secret_id_file: %s\n  kv:\n    mount: secret\n", s.vault.Addr, roleID, secretFile)
		// Replicas coordinate through Vault leases: the policy must grant those too.
		fmt.Fprintf(&b, "coordination:\n  mode: vault\n  lease_ttl: 60s\n")
		fmt.Fprintf(&b, "metrics:\n  listen: %s\nscheduler:\n  shutdown_timeout: 5s\ndestinations:\n", freeAddr(t))
		for _, name := range []string{"billing-prod", "orders-prod"} {
			fmt.Fprintf(&b, "  - {id: %s, name: %s, schedule: \"@every 1s\", vault_path: webhookco/%s}\n", s.dests[name], name, name)
		}
		path := filepath.Join(dir, policy+".yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	env := map[string]string{"WEBHOOKCO_API_KEY": s.apiKey}

	full := config("rotatord")
	code, stdout, stderr := runMain(context.Background(), env, "check", "--config", full, "--online")
	rows := tableRows(stdout)
	if code != 0 || !strings.HasSuffix(rows["billing-prod"], " ok") || !strings.HasSuffix(rows["orders-prod"], " ok") || !strings.Contains(stdout, "vault: logged in (approle)") || !strings.Contains(stdout, "KV v2 at secret/") ||
		!strings.Contains(stdout, "vault leases secret/data/rotatord/leases/*: ok, ttl 1m0s") {
		t.Fatalf("full policy: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runMain(context.Background(), env, "rotate", "--config", full, "billing-prod")
	if code != 0 {
		t.Fatalf("rotate with the policy file: exit %d\n%s\n%s", code, stdout, stderr)
	}
	sec, err := vc.KVv2("secret").Get(context.Background(), "webhookco/billing-prod")
	if err != nil || sec.Data["key_id"] != s.em.ActiveKeys(s.dests["billing-prod"])[0].ID || sec.Data["lease_fence"] != "1" {
		t.Errorf("Vault after rotate: %v, %v; want the active key under lease fence 1", sec, err)
	}

	part := config("rotatord-partial")
	code, stdout, _ = runMain(context.Background(), env, "check", "--config", part, "--online")
	rows = tableRows(stdout)
	if code != 1 || !strings.Contains(rows["orders-prod"], "error: the Vault token lacks update on secret/data/webhookco/orders-prod") || !strings.HasSuffix(rows["billing-prod"], " ok") {
		t.Errorf("partial policy: exit %d\n%s", code, stdout)
	}

	// run refuses to start, naming the destination and the missing right.
	code, _, stderr = runMain(context.Background(), env, "run", "--config", part)
	if code != 1 || !strings.Contains(stderr, "orders-prod: the Vault token lacks update on secret/data/webhookco/orders-prod") || !strings.Contains(stderr, "--allow-degraded") {
		t.Errorf("run with the partial policy: exit %d\n%s", code, stderr)
	}

	// --allow-degraded starts; orders-prod fails without rotating, billing-prod rotates.
	ordersBefore := len(s.em.RequestsFor(emulator.OpRotate, s.dests["orders-prod"]))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() {
		_, _, stderr := runMain(ctx, env, "run", "--config", part, "--allow-degraded")
		done <- stderr
	}()
	waitFor(t, 20*time.Second, "billing-prod to rotate", func() bool {
		return len(s.em.RequestsFor(emulator.OpRotate, s.dests["billing-prod"])) >= 3
	})
	cancel()
	stderr = <-done
	if n := len(s.em.RequestsFor(emulator.OpRotate, s.dests["orders-prod"])); n != ordersBefore {
		t.Errorf("orders-prod was rotated %d times under --allow-degraded", n-ordersBefore)
	}
	if !strings.Contains(stderr, `"destination":"orders-prod"`) || !strings.Contains(stderr, `"reason":"preflight"`) {
		t.Errorf("no preflight failure logged for orders-prod:\n%s", stderr)
	}
}
