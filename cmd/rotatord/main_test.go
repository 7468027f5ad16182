package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// stack is a real Vault with a KV v2 mount and the emulator with one key and destinations.
type stack struct {
	vault  *vaulttest.Server
	em     *emulator.Emulator
	apiURL string
	apiKey string
	dests  map[string]string // name → id
	env    map[string]string
	// stateDir is the state_dir every config of this stack uses.
	stateDir string
	// vaultAddr is where rotatord reaches Vault (the proxy, when there is one).
	vaultAddr string
	// extraYAML is added to every config at the top level (e.g. a coordination section).
	extraYAML string
	// apiTimeout is api.timeout ("": 5s); retryYAML goes under api.retry when a config is
	// written without its own.
	apiTimeout, retryYAML string
}

func newStack(t *testing.T, names ...string) *stack {
	t.Helper()
	s := &stack{vault: vaulttest.Start(t), em: emulator.New(emulator.Options{}), dests: map[string]string{}, stateDir: t.TempDir()}
	s.vaultAddr = s.vault.Addr
	s.vault.EnableKV(t, "secret-v2", 2)
	var err error
	if s.apiURL, err = s.em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.em.Close() })
	s.apiKey = s.em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	for _, n := range names {
		s.dests[n] = s.em.AddDestination(n)
	}
	s.env = map[string]string{"WEBHOOKCO_API_KEY": s.apiKey, "VAULT_TOKEN": s.vault.RootToken}
	return s
}

// writeConfig writes a config for the stack's destinations, all on schedule.
func (s *stack) writeConfig(t *testing.T, schedule, metricsListen string) string {
	t.Helper()
	return s.writeConfigWith(t, schedule, metricsListen, "", "")
}

// writeConfigWith is writeConfig with extra YAML under api.retry and under scheduler.
func (s *stack) writeConfigWith(t *testing.T, schedule, metricsListen, retry, sched string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\n", s.stateDir)
	timeout := s.apiTimeout
	if timeout == "" {
		timeout = "5s"
	}
	fmt.Fprintf(&b, "api:\n  base_url: %s\n  token_env: WEBHOOKCO_API_KEY\n  timeout: %s\n", s.apiURL, timeout)
	if retry == "" {
		retry = s.retryYAML
	}
	if retry != "" {
		fmt.Fprintf(&b, "  retry:\n%s", retry)
	}
	fmt.Fprintf(&b, "vault:\n  address: %s\n  kv:\n    mount: secret-v2\n", s.vaultAddr)
	if sched == "" {
		sched = "  shutdown_timeout: 5s\n"
	}
	fmt.Fprintf(&b, "metrics:\n  listen: %s\nscheduler:\n%s%sdestinations:\n", metricsListen, sched, s.extraYAML)
	for name, id := range s.dests {
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n    schedule: %q\n    vault_path: webhookco/%s\n", id, name, schedule, name)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertVaultHoldsActive checks the KV v2 entry of a destination against the emulator.
func (s *stack) assertVaultHoldsActive(t *testing.T, name string) {
	t.Helper()
	active := s.em.ActiveKeys(s.dests[name])
	if len(active) != 1 {
		t.Fatalf("%s: %d active keys at the provider", name, len(active))
	}
	sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/"+name)
	if err != nil {
		t.Fatalf("%s: read Vault: %v", name, err)
	}
	if sec.Data["signing_secret"] != active[0].Secret || sec.Data["key_id"] != active[0].ID || sec.Data["destination_id"] != s.dests[name] {
		t.Errorf("%s: Vault holds key %v, provider's active key is %s", name, sec.Data["key_id"], active[0].ID)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(sec.Data["rotated_at"])); err != nil {
		t.Errorf("%s: rotated_at %v is not RFC 3339", name, sec.Data["rotated_at"])
	}
	if sec.CustomMetadata["managed_by"] != "rotatord" || sec.CustomMetadata["destination_id"] != s.dests[name] {
		t.Errorf("%s: custom_metadata = %v", name, sec.CustomMetadata)
	}
}

// TestBadConfigsAreRefused: each invalid config makes check and run exit non-zero with
// the message that names the field and the value.
func TestBadConfigsAreRefused(t *testing.T) {
	files, err := filepath.Glob("../../internal/config/testdata/invalid/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("found %d invalid configs: %v", len(files), err)
	}
	for _, f := range files {
		want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
		if err != nil {
			t.Fatal(err)
		}
		// The golden text starts "config <path as the config test named it>: "; compare the rest.
		firstLine := strings.SplitN(strings.TrimSpace(string(want)), "\n", 2)[0]
		firstLine = firstLine[strings.Index(firstLine, ".yaml: ")+len(".yaml: "):]
		for _, cmd := range []string{"check", "run", "rotate"} {
			args := []string{cmd, "--config", f}
			if cmd == "rotate" {
				args = append(args, "billing-prod")
			}
			code, _, stderr := runMain(context.Background(), nil, args...)
			if code != 1 || !strings.Contains(stderr, firstLine) {
				t.Errorf("%s %s: exit %d, stderr %q; want 1 and %q", cmd, filepath.Base(f), code, stderr, firstLine)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"run", "--nope"}, {"rotate", "--config", "../../config.example.yaml"}} {
		code, _, stderr := runMain(context.Background(), nil, args...)
		if code != 2 || !strings.Contains(stderr, "Usage:") {
			t.Errorf("rotatord %v: exit %d, stderr %q; want 2 with usage", args, code, stderr)
		}
	}
	code, stdout, _ := runMain(context.Background(), nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "rotatord ") {
		t.Errorf("version: %d %q", code, stdout)
	}
}

// TestRotateCommandStoresInVault: `rotatord rotate NAME` stores the secret at the KV v2
// path with every field, and exits 0; an unknown name exits 2 before anything rotates.
func TestRotateCommandStoresInVault(t *testing.T) {
	s := newStack(t, "billing-prod", "orders-prod")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod", "orders-prod")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for name := range s.dests {
		s.assertVaultHoldsActive(t, name)
		if !strings.Contains(stdout, name+": rotated, key ") {
			t.Errorf("stdout lacks %s: %s", name, stdout)
		}
	}
	before := len(s.em.RequestsFor(emulator.OpRotate, ""))
	code, _, stderr = runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod", "nope")
	if code != 2 || !strings.Contains(stderr, `no destination named "nope"`) {
		t.Errorf("unknown name: exit %d, %s", code, stderr)
	}
	if after := len(s.em.RequestsFor(emulator.OpRotate, "")); after != before {
		t.Errorf("%d rotates sent for a command line with an unknown name", after-before)
	}
	// A refused rotation: exit 1 and the reason on stdout.
	s.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.Status, Status: 404, Code: "NOT_FOUND"})
	code, stdout, _ = runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "billing-prod: FAILED (not_found)") {
		t.Errorf("refused: exit %d, stdout %s", code, stdout)
	}
}

// TestCheckOnline: the preflight reports the API key's scopes and each Vault path.
func TestCheckOnline(t *testing.T) {
	s := newStack(t, "billing-prod", "orders-prod")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "check", "--config", cfg, "--online")
	if code != 0 || !strings.Contains(stdout, "online check: ok") || strings.Count(stdout, "  ok") < 2 {
		t.Fatalf("root token: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// A policy that lacks update on one path.
	vc := s.vault.Client(t)
	policy := `
path "secret-v2/data/webhookco/billing-prod" { capabilities = ["create", "update", "read"] }
path "secret-v2/metadata/webhookco/billing-prod" { capabilities = ["patch", "read"] }
path "secret-v2/data/webhookco/orders-prod" { capabilities = ["create", "read"] }
path "secret-v2/metadata/webhookco/orders-prod" { capabilities = ["patch", "read"] }
`
	if err := vc.Sys().PutPolicy("rotatord-partial", policy); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WEBHOOKCO_API_KEY": s.apiKey, "VAULT_TOKEN": s.vault.Token(t, "rotatord-partial")}
	code, stdout, _ = runMain(context.Background(), env, "check", "--config", cfg, "--online")
	rows := tableRows(stdout)
	if code != 1 || !strings.Contains(rows["orders-prod"], "error: the Vault token lacks update on secret-v2/data/webhookco/orders-prod") || !strings.HasSuffix(rows["billing-prod"], " ok") {
		t.Errorf("partial policy: exit %d\n%s", code, stdout)
	}

	// A write-only API key.
	env = map[string]string{"WEBHOOKCO_API_KEY": s.em.AddKey(emulator.ScopeEndpointsWrite), "VAULT_TOKEN": s.vault.RootToken}
	code, stdout, _ = runMain(context.Background(), env, "check", "--config", cfg, "--online")
	if code != 1 || !strings.Contains(stdout, "lacks the scope endpoints:read") {
		t.Errorf("write-only key: exit %d\n%s", code, stdout)
	}
	// A key the provider does not know.
	env = map[string]string{"WEBHOOKCO_API_KEY": "whk_unknown", "VAULT_TOKEN": s.vault.RootToken}
	code, stdout, _ = runMain(context.Background(), env, "check", "--config", cfg, "--online")
	if code != 1 || !strings.Contains(stdout, `HTTP 401`) || !strings.Contains(stdout, `invalid_token`) || strings.Contains(stdout, "whk_unknown") {
		t.Errorf("unknown key: exit %d\n%s", code, stdout)
	}
}

// TestRunDaemon runs `rotatord run` in-process against the real Vault and the emulator:
// every destination rotates on schedule, /metrics counts it, and a cancelled context (the
// signal) stops it with exit 0. No secret or API key appears in its logs or metrics.
func TestRunDaemon(t *testing.T) {
	s := newStack(t, "billing-prod", "orders-prod", "payments-prod")
	addr := freeAddr(t)
	cfg := s.writeConfig(t, "@every 1s", addr)
	s.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"}, emulator.Fault{Kind: emulator.DropAfterMint})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errs := runMain(ctx, s.env, "run", "--config", cfg)
		done <- result{code, out, errs}
	}()

	// Wait until each destination has rotated at least twice.
	deadline := time.Now().Add(30 * time.Second)
	for {
		enough := true
		for _, id := range s.dests {
			if n := len(s.em.RequestsFor(emulator.OpRotate, id)); n < 2 {
				enough = false
			}
		}
		if enough {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			r := <-done
			t.Fatalf("destinations did not rotate twice in 30s; stderr:\n%s", r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And until /metrics counts two successes for each (a rotation still storing its secret
	// when its request was counted above is not done yet).
	var metricsText string
	waitFor(t, 30*time.Second, "two successful rotations of each destination in /metrics", func() bool {
		metricsText = tryScrape("http://" + addr + "/metrics")
		for name := range s.dests {
			if sumLines(t, metricsText, `rotatord_rotations_total{destination="`+name+`",result="success"} `, "") < 2 {
				return false
			}
		}
		return true
	})
	ready := scrape(t, "http://"+addr+"/readyz")
	cancel()
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if ready != "ready\n" {
		t.Errorf("/readyz = %q", ready)
	}
	// The values, not only the series (every series exists at 0 from the start): 2 successful
	// rotations of each of 3 destinations, one 429 and one key lost (the injected faults).
	value := func(series string) float64 { return sumLines(t, metricsText, series+" ", "") }
	atLeast := func(series string, want float64) {
		if got := value(series); got < want {
			t.Errorf("%s = %v, want at least %v", series, got, want)
		}
	}
	exactly := func(series string, want float64) {
		if got := value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	atLeast(`rotatord_rotations_total{destination="billing-prod",result="success"}`, 2)
	exactly(`rotatord_rotation_failures_total{destination="billing-prod",reason="unauthorized"}`, 0)
	exactly(`rotatord_rate_limited_total`, 1)
	if lost := sumLines(t, metricsText, `rotatord_lost_secrets_total{destination="`, ""); lost != 1 {
		t.Errorf("rotatord_lost_secrets_total sums to %v, want 1 (the one dropped response)", lost)
	}
	atLeast(`rotatord_api_requests_total{code="200",operation="rotate"}`, 6)
	exactly(`rotatord_api_requests_total{code="429",operation="rotate"}`, 1)
	atLeast(`rotatord_sink_writes_total{result="success",sink="vault"}`, 6)
	exactly(`rotatord_build_info{version="dev"}`, 1)
	atLeast(`rotatord_next_rotation_timestamp_seconds{destination="orders-prod"}`, float64(time.Now().Add(-5*time.Second).Unix()))
	atLeast(`rotatord_rotation_duration_seconds_count`, 6)
	atLeast(`go_goroutines`, 1)
	atLeast(`process_open_fds`, 1)
	// Settled: every destination's Vault entry is the provider's active key.
	for name := range s.dests {
		s.assertVaultHoldsActive(t, name)
	}
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d overlapping rotates", n)
	}
	// No secret and no API key in logs, stdout or metrics.
	haystack := r.stderr + r.stdout + metricsText
	if strings.Contains(haystack, s.apiKey) {
		t.Error("the API key appears in the output")
	}
	for _, id := range s.dests {
		for _, k := range s.em.Keys(id) {
			if strings.Contains(haystack, k.Secret) {
				t.Errorf("a signing secret of %s appears in the output", id)
			}
		}
	}
	if !strings.Contains(r.stderr, `"msg":"rotation succeeded"`) || !strings.Contains(r.stderr, `"msg":"signing secret lost`) {
		t.Errorf("log lacks the audit lines:\n%s", r.stderr)
	}
}

// TestDemoBinary builds rotatord, runs `rotatord demo`, waits for three destinations to
// rotate, scrapes /metrics and sends SIGINT: the process exits 0 within 5 seconds.
func TestDemoBinary(t *testing.T) {
	bin := buildBinary(t)
	for _, withVault := range []bool{false, true} {
		t.Run(map[bool]string{false: "file sink", true: "vault"}[withVault], func(t *testing.T) {
			addr := freeAddr(t)
			cmd := exec.Command(bin, "demo", "--metrics-listen", addr)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			var v *vaulttest.Server
			if withVault {
				// Started by hand as the README says: bin/vaultdev -kv2 kv.
				v = startVaultByHand(t, "kv")
				cmd.Args = append(cmd.Args, "--kv-mount", "kv")
				cmd.Env = append(cmd.Env, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.RootToken)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill() }()

			seen := map[string]bool{}
			var tryThese [][]string // the commands the demo prints to try against it
			demoDir := ""           // the demo's temporary directory (file sink), removed at the end
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			timeout := time.After(30 * time.Second)
			for len(seen) < 3 {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("demo exited early; stderr:\n%s", stderr.String())
					}
					if f := strings.Fields(line); len(f) > 2 && f[2] == "rotated" {
						seen[f[1]] = true
					}
					if rest, ok := strings.CutPrefix(line, "  "+bin+" "); ok {
						tryThese = append(tryThese, strings.Fields(rest))
					}
					if _, after, ok := strings.Cut(line, "secrets to files under "); ok {
						demoDir = filepath.Dir(strings.TrimSpace(after))
					}
				case <-timeout:
					t.Fatalf("only %v rotated within 30s; stderr:\n%s", seen, stderr.String())
				}
			}
			m := scrape(t, "http://"+addr+"/metrics")
			if !strings.Contains(m, `rotatord_rotations_total{destination="billing-demo",result="success"}`) ||
				strings.Contains(m, `rotatord_rotations_total{destination="billing-demo",result="success"} 0`) {
				t.Errorf("metrics show no successful rotation of billing-demo")
			}
			// Every command the demo suggests works against it, as printed.
			if len(tryThese) != 5 {
				t.Errorf("the demo suggested %d commands, want 5: %v", len(tryThese), tryThese)
			}
			for _, args := range tryThese {
				try := exec.Command(bin, args...)
				try.Env = cmd.Env
				out, err := try.CombinedOutput()
				if err != nil {
					t.Errorf("rotatord %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				want := map[string]string{"status": "billing-demo", "plan": "payments-demo", "rotate": "rotated", "check": "online check: ok", "spool": "0 pending"}[args[0]]
				if !strings.Contains(string(out), want) {
					t.Errorf("rotatord %s printed no %q:\n%s", strings.Join(args, " "), want, out)
				}
			}
			if withVault {
				sec, err := v.Client(t).KVv2("kv").Get(context.Background(), "webhookco/billing-demo")
				if err != nil || sec.Data["managed_by"] != nil || sec.Data["signing_secret"] == nil {
					t.Errorf("Vault entry: %v, %v", sec, err)
				}
			}
			go func() {
				for range lines {
				}
			}()
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("demo exited with %v after SIGINT; stderr:\n%s", err, stderr.String())
				}
				if !withVault {
					if demoDir == "" {
						t.Error("the demo did not say where its files are")
					} else if _, err := os.Stat(demoDir); !os.IsNotExist(err) {
						t.Errorf("the demo left %s (with secrets) behind: %v", demoDir, err)
					}
				}
				if strings.Contains(stderr.String(), "ERROR") {
					t.Errorf("Ctrl-C logged an error:\n%s", stderr.String())
				}
			case <-time.After(5 * time.Second):
				t.Errorf("demo still running 5s after SIGINT")
			}
		})
	}
}

// startVaultByHand starts the Vault test server the way the README shows (bin/vaultdev -kv2
// MOUNT) and reads its address and root token from the line it prints.
func startVaultByHand(t *testing.T, mount string) *vaulttest.Server {
	t.Helper()
	cmd := exec.Command(vaulttest.Binary(t), "-kv2", mount)
	stdin, err := cmd.StdinPipe() // closed at the end: vaultdev exits
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	var v vaulttest.Server
	if err := json.NewDecoder(stdout).Decode(&v); err != nil {
		t.Fatalf("vaultdev's first line: %v", err)
	}
	return &v
}
