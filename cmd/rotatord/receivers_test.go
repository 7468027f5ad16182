package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/receivers"
)

var (
	receiverOnce sync.Once
	receiverBin  string
	receiverErr  error
)

// referenceReceiver builds examples/receiver once and starts it with args; it returns its
// address and a stop function.
func referenceReceiver(t *testing.T, env []string, args ...string) string {
	t.Helper()
	receiverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rotatord-receiver-")
		if err != nil {
			receiverErr = err
			return
		}
		receiverBin = filepath.Join(dir, "receiver")
		out, err := exec.Command("go", "build", "-o", receiverBin, "../../examples/receiver").CombinedOutput()
		if err != nil {
			receiverErr = fmt.Errorf("build examples/receiver: %v\n%s", err, out)
		}
	})
	if receiverErr != nil {
		t.Fatal(receiverErr)
	}
	cmd := exec.Command(receiverBin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("receiver did not start: %v", err)
	}
	var a struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &a); err != nil {
		t.Fatal(err)
	}
	return a.Addr
}

func rejected(em *emulator.Emulator, id string) (ok, bad int) {
	for _, d := range em.Deliveries(id) {
		if d.StatusCode == http.StatusNoContent {
			ok++
		} else {
			bad++
		}
	}
	return ok, bad
}

// receiverStack is a stack with one destination rotated once, the reference receiver
// reading its key from Vault, and the emulator delivering to it every 100 ms.
type receiverStack struct {
	*stack
	addr, pause, notifyKey string
	stopDeliveries         func()
}

func newReceiverStack(t *testing.T) *receiverStack {
	t.Helper()
	s := newStack(t, "billing-prod")
	first := s.writeConfig(t, "@every 1s", freeAddr(t))
	if code, out, errs := runMain(context.Background(), s.env, "rotate", "--config", first, "billing-prod"); code != 0 {
		t.Fatalf("first rotation: %d\n%s\n%s", code, out, errs)
	}
	dir := t.TempDir()
	rs := &receiverStack{stack: s, pause: filepath.Join(dir, "pause"), notifyKey: filepath.Join(dir, "notify.key")}
	if err := os.WriteFile(rs.notifyKey, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs.addr = referenceReceiver(t, []string{"VAULT_TOKEN=" + s.vault.RootToken}, "-vault-addr", s.vault.Addr, "-vault-mount", "secret-v2",
		"-vault-path", "webhookco/billing-prod", "-pause-file", rs.pause, "-notify-key-file", rs.notifyKey, "-refresh-for", "1s")
	rs.stopDeliveries = s.em.Deliver(s.dests["billing-prod"], "http://"+rs.addr+"/webhook", 100*time.Millisecond)
	t.Cleanup(rs.stopDeliveries)
	return rs
}

// config writes a config whose destination has the receiver as consumer (with adoption
// when adopt) and runs every second.
func (rs *receiverStack) config(t *testing.T, adopt bool) string {
	t.Helper()
	return rs.configWith(t, adopt, "@every 1s", "", "")
}

// configWith is config with another schedule, YAML under scheduler and YAML for the destination.
func (rs *receiverStack) configWith(t *testing.T, adopt bool, schedule, sched, dest string) string {
	t.Helper()
	if sched != "" {
		sched = "  shutdown_timeout: 5s\n" + sched
	}
	cfg := rs.writeConfigWith(t, schedule, freeAddr(t), "", sched)
	consumer := fmt.Sprintf("    vault_path: webhookco/billing-prod\n%s    consumers:\n      - name: billing-api\n        notify: {url: \"http://%s/rotatord/notify\", key_file: %s, debounce: 100ms}\n", dest, rs.addr, rs.notifyKey)
	if adopt {
		consumer += fmt.Sprintf("        adoption: {url: \"http://%s/rotatord/keys\"}\n", rs.addr)
	}
	editConfig(t, cfg, "    vault_path: webhookco/billing-prod\n", consumer)
	return cfg
}

func (rs *receiverStack) rotations() int {
	return len(rs.em.RequestsFor(emulator.OpRotate, rs.dests["billing-prod"]))
}

// TestAReceiverThatLagsHoldsTheRotation: the reference receiver reloads on each
// notification and no delivery is rejected; once it stops reloading, the next rotation is
// held (no rotate reaches webhook.co), the metric and status name the receiver, and
// rotations resume when it catches up. Without adoption (no gate) the same lag cuts it off.
func TestAReceiverThatLagsHoldsTheRotation(t *testing.T) {
	rs := newReceiverStack(t)
	cfg := rs.config(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go func() {
		_, _, stderr := runMain(ctx, rs.env, "run", "--config", cfg)
		done <- stderr
	}()
	start := rs.rotations()
	waitFor(t, 30*time.Second, "four rotations with the receiver keeping up", func() bool { return rs.rotations() >= start+4 })
	if ok, bad := rejected(rs.em, rs.dests["billing-prod"]); bad != 0 || ok == 0 {
		t.Fatalf("while the receiver keeps up: %d deliveries accepted, %d rejected", ok, bad)
	}
	// The receiver stops reloading: one more rotation can pass (it holds the stored key),
	// then every rotation is held.
	if err := os.WriteFile(rs.pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	held := rs.rotations()
	time.Sleep(4 * time.Second)
	if n := rs.rotations(); n != held {
		t.Fatalf("%d rotate calls reached webhook.co while the receiver lagged", n-held)
	}
	metricsText := scrape(t, "http://"+metricsAddrOf(t, cfg)+"/metrics")
	if !strings.Contains(metricsText, `rotatord_rotation_held_since_timestamp_seconds{consumer="billing-api",destination="billing-prod"}`) ||
		!strings.Contains(metricsText, `rotatord_consumer_behind{consumer="billing-api"} 1`) {
		t.Errorf("the hold is not in /metrics:\n%s", grepLines(metricsText, "rotatord_"))
	}
	code, stdout, _ := runMain(context.Background(), rs.env, "status", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "HELD billing-prod: rotations held, nothing minted: consumer billing-api holds") {
		t.Errorf("status does not name the lagging receiver:\n%s", stdout)
	}
	if ok, bad := rejected(rs.em, rs.dests["billing-prod"]); bad != 0 {
		t.Errorf("the gate let %d deliveries be rejected (%d accepted)", bad, ok)
	}
	// It catches up: told again, it reloads, and rotations resume.
	if err := os.Remove(rs.pause); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "rotations to resume", func() bool { return rs.rotations() >= held+2 })
	cancel()
	stderr := <-done
	if ok, bad := rejected(rs.em, rs.dests["billing-prod"]); bad != 0 || ok < 20 {
		t.Errorf("over the whole run: %d deliveries accepted, %d rejected", ok, bad)
	}
	if !strings.Contains(stderr, `"outcome":"held"`) || !strings.Contains(stderr, "consumer caught up") || !strings.Contains(stderr, "consumer notified of new keys") {
		t.Errorf("the log lacks the hold, the catch-up or the notifications:\n%s", tail(stderr, 3000))
	}

	// Without adoption nothing gates the rotation: the lagging receiver is cut off. The
	// delivery watch (a key with events:read) sees its 401s in webhook.co's delivery log,
	// says so, and holds the next rotation.
	cfg = rs.config(t, false)
	editConfig(t, cfg, "  timeout: 5s\n", "  timeout: 5s\n  delivery_watch_interval: 1s\n")
	watchEnv := map[string]string{"WEBHOOKCO_API_KEY": rs.em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite, emulator.ScopeEventsRead), "VAULT_TOKEN": rs.vault.RootToken}
	if err := os.WriteFile(rs.pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, before := rejected(rs.em, rs.dests["billing-prod"])
	stop := runDaemon(watchEnv, cfg)
	waitFor(t, 30*time.Second, "deliveries rejected without a gate", func() bool { _, bad := rejected(rs.em, rs.dests["billing-prod"]); return bad > before })
	time.Sleep(3 * time.Second) // the watch reads the log, and holds
	watched := rs.rotations()
	watchMetrics := scrape(t, "http://"+metricsAddrOf(t, cfg)+"/metrics")
	time.Sleep(3 * time.Second)
	stderr = stop()
	if n := rs.rotations(); n != watched {
		t.Errorf("%d rotations after the delivery watch saw the receivers reject deliveries", n-watched)
	}
	if !strings.Contains(stderr, "receivers reject deliveries since a rotation") || !strings.Contains(stderr, "receivers reject deliveries since the rotation to key") {
		t.Errorf("the delivery watch said nothing:\n%s", tail(stderr, 3000))
	}
	if !strings.Contains(watchMetrics, `rotatord_deliveries_rejected{destination="billing-prod"}`) || strings.Contains(watchMetrics, `rotatord_deliveries_rejected{destination="billing-prod"} 0`) {
		t.Errorf("rotatord_deliveries_rejected:\n%s", grepLines(watchMetrics, "deliveries_rejected"))
	}
	if !strings.Contains(stderr, `"revoked_key_id"`) && !strings.Contains(stderr, "key revoked while a consumer still held only it") {
		t.Errorf("no revocation said out loud:\n%s", tail(stderr, 2000))
	}
}

func metricsAddrOf(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "listen:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no metrics listen address in the config")
	return ""
}

// TestMinIntervalAcrossReplicasAndAManualRotate: with min_interval 1h, a second rotation —
// manual, or a replica's (another state_dir, the same Vault) — is held and mints nothing;
// --force rotates and is audited as forced; a delivery captured from webhook.co is verified
// by the active key, then by the retiring key, and one signed by a revoked key by none.
func TestMinIntervalAcrossReplicasAndAManualRotate(t *testing.T) {
	s := newStack(t, "billing-prod")
	s.extraYAML = "coordination: {mode: vault, lease_ttl: 60s}\n"
	cfg := s.writeConfig(t, "@daily", freeAddr(t))
	editConfig(t, cfg, "    vault_path: webhookco/billing-prod\n", "    vault_path: webhookco/billing-prod\n    min_interval: 1h\n")
	id := s.dests["billing-prod"]
	rotates := func() int { return len(s.em.RequestsFor(emulator.OpRotate, id)) }
	if code, out, errs := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod"); code != 0 {
		t.Fatalf("first rotation: %d\n%s\n%s", code, out, errs)
	}
	capture := captureDelivery(t, s, id) // signed with the active key and the one before it
	n := rotates()
	code, stdout, _ := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "billing-prod: HELD (min_interval): not rotated, nothing minted") || rotates() != n {
		t.Fatalf("second rotation inside min_interval: exit %d, %d rotate calls\n%s", code, rotates()-n, stdout)
	}
	// A replica: another state_dir, the same Vault and leases.
	other := strings.Replace(readFile(t, cfg), s.stateDir, t.TempDir(), 1)
	replica := filepath.Join(t.TempDir(), "replica.yaml")
	if err := os.WriteFile(replica, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runMain(context.Background(), s.env, "rotate", "--config", replica, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "HELD (min_interval)") || rotates() != n {
		t.Fatalf("a replica's rotation inside min_interval: exit %d\n%s", code, stdout)
	}
	code, stdout, stderr := runMain(context.Background(), s.env, "rotate", "--config", replica, "--force", "billing-prod")
	if code != 0 || !strings.Contains(stdout, "(forced)") || rotates() != n+1 || !strings.Contains(stderr, `"forced":true`) {
		t.Fatalf("forced rotation: exit %d, %d rotate calls\n%s\n%s", code, rotates()-n, stdout, tail(stderr, 1500))
	}
	s.assertVaultHoldsActive(t, "billing-prod")

	// verify: the captured delivery was signed with the key now retiring (and the one now revoked).
	code, stdout, stderr = runMain(context.Background(), s.env, "verify", "--config", cfg, "--delivery", capture, "billing-prod")
	if code != 0 || !strings.Contains(stdout, "verified by the retiring key") || strings.Contains(stdout+stderr, "whsec_") {
		t.Errorf("verify (retiring): exit %d\n%s\n%s", code, stdout, stderr)
	}
	fresh := captureDelivery(t, s, id)
	code, stdout, stderr = runMain(context.Background(), s.env, "verify", "--config", cfg, "--delivery", fresh, "billing-prod")
	if code != 0 || !strings.Contains(stdout, "verified by the active key") {
		t.Errorf("verify (active): exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, _ := runMain(context.Background(), s.env, "rotate", "--config", cfg, "--force", "billing-prod"); code != 0 {
		t.Fatal("third rotation")
	}
	code, _, stderr = runMain(context.Background(), s.env, "verify", "--config", cfg, "--delivery", capture, "billing-prod")
	if code != 1 || !strings.Contains(stderr, "NOT verified: none of the delivery's 2 signatures matches the stored keys") {
		t.Errorf("verify (revoked): exit %d\n%s", code, stderr)
	}
	code, _, stderr = runMain(context.Background(), s.env, "verify", "--config", cfg, "--delivery", fresh, "--at", time.Now().Add(time.Hour).Format(time.RFC3339), "billing-prod")
	if code != 1 || !strings.Contains(stderr, "outside the tolerance") {
		t.Errorf("verify (an hour later): exit %d\n%s", code, stderr)
	}
}

// captureDelivery has the emulator deliver one event to a recorder and writes what it
// received as verify's JSON.
func captureDelivery(t *testing.T, s *stack, id string) string {
	t.Helper()
	var got []byte
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		hdr = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s.em.DeliverOnce(srv.Client(), id, srv.URL)
	b, _ := json.Marshal(map[string]any{"headers": map[string]string{"webhook-id": hdr.Get("webhook-id"), "webhook-timestamp": hdr.Get("webhook-timestamp"),
		"webhook-signature": hdr.Get("webhook-signature")}, "body": string(got)})
	f := filepath.Join(t.TempDir(), "delivery.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runDaemon starts `rotatord run` on cfg; stop ends it and returns its log.
func runDaemon(env map[string]string, cfg string) (stop func() string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() {
		_, _, stderr := runMain(ctx, env, "run", "--config", cfg)
		done <- stderr
	}()
	return func() string { cancel(); return <-done }
}

// TestFiftyRotationsNoDeliveryRejected: the reference receiver, deliveries every 100 ms,
// and 50 rotations that include a drift repair (a key minted outside rotatord), a lost
// secret's recovery and a manual rotate: no delivery is rejected, and each burst of stores
// is one notification, delivered.
func TestFiftyRotationsNoDeliveryRejected(t *testing.T) {
	longTest(t)
	rs := newReceiverStack(t)
	id := rs.dests["billing-prod"]
	var logs []string
	// Scheduled rotations every second.
	stop := runDaemon(rs.env, rs.config(t, true))
	base := rs.rotations()
	waitFor(t, 60*time.Second, "20 scheduled rotations", func() bool { return rs.rotations() >= base+20 })
	logs = append(logs, stop())
	// A drift repair: someone rotates in the dashboard; rotatord (nothing scheduled today)
	// sees the drift within a second and rotates.
	stop = runDaemon(rs.env, rs.configWith(t, true, "@daily", "  drift_check_interval: 1s\n", "    on_drift: rotate\n"))
	time.Sleep(time.Second)
	if _, err := rs.em.RotateDirect(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the drift repair", func() bool {
		stored := rs.em.ActiveKeys(id)
		return len(stored) == 1 && len(rs.em.RequestsFor(emulator.OpRotate, id)) > base+20
	})
	time.Sleep(time.Second)
	drift := stop()
	logs = append(logs, drift)
	if !strings.Contains(drift, `"trigger":"drift"`) {
		t.Fatalf("no drift repair:\n%s", tail(drift, 3000))
	}
	// A lost secret (the provider mints, then answers 500), its recovery, a manual rotate,
	// and scheduled rotations up to 50.
	stop = runDaemon(rs.env, rs.config(t, true))
	rs.em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.InternalErrorAfterMint})
	waitFor(t, 30*time.Second, "the lost secret's recovery", func() bool { return rs.rotations() >= base+24 })
	manual := false
	for range 10 {
		code, out, _ := runMain(context.Background(), rs.env, "rotate", "--config", rs.config(t, true), "--wait", "10s", "billing-prod")
		if code == 0 && strings.Contains(out, "rotated, key") {
			manual = true
			break
		}
		time.Sleep(300 * time.Millisecond) // held until the receiver has the newest key
	}
	if !manual {
		t.Error("the manual rotation never went through")
	}
	waitFor(t, 90*time.Second, "50 rotations", func() bool { return rs.rotations() >= base+50 })
	logs = append(logs, stop())
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, `"lost_key_id"`) {
		t.Error("no lost secret was recovered")
	}
	ok, bad := rejected(rs.em, id)
	if bad != 0 || ok < 200 {
		t.Errorf("%d deliveries accepted, %d rejected; want none rejected", ok, bad)
	}
	delivered := strings.Count(all, "consumer notified of new keys")
	if failed := strings.Count(all, "consumer not notified"); failed != 0 || delivered < 40 {
		t.Errorf("notifications: %d delivered, %d failed (for about 50 rotations)", delivered, failed)
	}
	t.Logf("%d rotate calls, %d deliveries accepted, %d notifications delivered", rs.rotations()-base, ok, delivered)
}

// TestOutputsBesideTheSink: a destination's outputs get the stored record after each store,
// mode 0600; an output that cannot be written keeps the secret in the spool (the rotation
// says so, and nothing is lost), and once it can, the spool's replay writes it.
func TestOutputsBesideTheSink(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "  retry: {max_sink_wait: 1s}\n", "", "billing-prod")
	out := filepath.Join(fs.dir, "shared", "billing.json")
	blocked := filepath.Join(fs.dir, "blocked")
	editConfig(t, fs.cfg, "    vault_path: webhookco/billing-prod\n", fmt.Sprintf("    vault_path: webhookco/billing-prod\n    outputs:\n      - {file: %s}\n", out))
	code, stdout, stderr := runMain(context.Background(), fs.env, "rotate", "--config", fs.cfg, "billing-prod")
	if code != 0 {
		t.Fatalf("rotate: %d\n%s\n%s", code, stdout, stderr)
	}
	active := fs.em.ActiveKeys(fs.ids["billing-prod"])[0]
	var rec map[string]string
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec["key_id"] != active.ID || rec["signing_secret"] != active.Secret {
		t.Fatalf("output: %v %v", rec["key_id"], err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v, want 0600", st.Mode().Perm())
	}
	// An output below a regular file cannot be written.
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	editConfig(t, fs.cfg, out, filepath.Join(blocked, "billing.json"))
	code, stdout, _ = runMain(context.Background(), fs.env, "rotate", "--config", fs.cfg, "billing-prod")
	active = fs.em.ActiveKeys(fs.ids["billing-prod"])[0]
	if code != 1 || !strings.Contains(stdout, "kept in the spool until the sink accepts it") || !strings.Contains(stdout, "output "+filepath.Join(blocked, "billing.json")) {
		t.Fatalf("rotate with a blocked output: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runMain(context.Background(), fs.env, "spool", "list", "--config", fs.cfg)
	if code != 0 || !strings.Contains(stdout, active.ID) {
		t.Errorf("the secret is not in the spool:\n%s", stdout)
	}
	// Unblocked: the next command's drain writes the output and empties the spool.
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	// The next rotate drains the spool first: the secret waiting there is stored again
	// (already in the sink) and its output written; then it rotates.
	code, stdout, stderr = runMain(context.Background(), fs.env, "rotate", "--config", fs.cfg, "billing-prod")
	if code != 0 {
		t.Fatalf("rotate after unblocking: %d\n%s\n%s", code, stdout, stderr)
	}
	b, _ = os.ReadFile(filepath.Join(blocked, "billing.json"))
	newest := fs.em.ActiveKeys(fs.ids["billing-prod"])[0]
	if err := json.Unmarshal(b, &rec); err != nil || rec["key_id"] != newest.ID {
		t.Errorf("output after the replay: %v %v, want %s", rec["key_id"], err, newest.ID)
	}
	code, stdout, _ = runMain(context.Background(), fs.env, "spool", "list", "--config", fs.cfg)
	if code != 0 || strings.Contains(stdout, active.ID) {
		t.Errorf("the replayed secret is still in the spool:\n%s", stdout)
	}
}

// TestAdoptionByAcknowledgement: a consumer that writes the keys it holds beside the secret
// in Vault (<vault_path>/consumers/<name>) holds the rotation until it acknowledges the
// stored key; `rotate` says which consumer it would cut off.
func TestAdoptionByAcknowledgement(t *testing.T) {
	s := newStack(t, "billing-prod")
	cfg := s.writeConfig(t, "@daily", freeAddr(t))
	editConfig(t, cfg, "    vault_path: webhookco/billing-prod\n", "    vault_path: webhookco/billing-prod\n    consumers:\n      - {name: billing-api, adoption: {ack: true}}\n")
	id := s.dests["billing-prod"]
	rotates := func() int { return len(s.em.RequestsFor(emulator.OpRotate, id)) }
	vc := s.vault.Client(t)
	ack := func(keys ...string) {
		t.Helper()
		if _, err := vc.KVv2("secret-v2").Put(context.Background(), "webhookco/billing-prod/consumers/billing-api", map[string]any{"key_ids": keys}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing stored yet: nothing to guard.
	if code, out, errs := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod"); code != 0 {
		t.Fatalf("first rotation: %d\n%s\n%s", code, out, errs)
	}
	first := s.em.ActiveKeys(id)[0].ID
	n := rotates()
	code, stdout, _ := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "HELD (held)") || !strings.Contains(stdout, "consumer billing-api could not say which key it holds") || rotates() != n {
		t.Fatalf("no acknowledgement yet: exit %d\n%s", code, stdout)
	}
	ack("some-older-key")
	code, stdout, _ = runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "consumer billing-api holds some-older-key, not the stored key "+first) || rotates() != n {
		t.Fatalf("an old acknowledgement: exit %d\n%s", code, stdout)
	}
	ack(first, "some-older-key")
	code, stdout, _ = runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 0 || rotates() != n+1 {
		t.Fatalf("acknowledged: exit %d\n%s", code, stdout)
	}
	s.assertVaultHoldsActive(t, "billing-prod")
}

// TestMinIntervalWithTwoRunningReplicas: two `run` replicas with Vault leases, both firing
// every second, min_interval 3s: no two rotations of the destination closer than 3 s.
func TestMinIntervalWithTwoRunningReplicas(t *testing.T) {
	longTest(t)
	s := newStack(t, "billing-prod")
	s.extraYAML = "coordination: {mode: vault, lease_ttl: 60s}\n"
	a := s.writeConfig(t, "@every 1s", freeAddr(t))
	editConfig(t, a, "    vault_path: webhookco/billing-prod\n", "    vault_path: webhookco/billing-prod\n    min_interval: 3s\n")
	b := strings.Replace(readFile(t, a), s.stateDir, t.TempDir(), 1)
	b = strings.Replace(b, metricsAddrOf(t, a), freeAddr(t), 1)
	bPath := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(bPath, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	stopA, stopB := runDaemon(s.env, a), runDaemon(s.env, bPath)
	time.Sleep(13 * time.Second)
	logs := stopA() + stopB()
	var at []time.Time
	for _, r := range s.em.RequestsFor(emulator.OpRotate, s.dests["billing-prod"]) {
		at = append(at, r.At)
	}
	if len(at) < 3 {
		t.Fatalf("%d rotations in 13 s, want about 4\n%s", len(at), tail(logs, 2000))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 3*time.Second {
			t.Errorf("rotations %d and %d only %s apart (min_interval 3s)", i, i+1, gap)
		}
	}
	if !strings.Contains(logs, `"reason":"min_interval"`) {
		t.Errorf("no rotation held for min_interval:\n%s", tail(logs, 2000))
	}
	s.assertVaultHoldsActive(t, "billing-prod")
}

// TestStatusOnlineAsksTheConsumers: `status --online` asks each consumer with adoption
// which keys it holds, so any host (another replica, an operator's machine) sees who is
// behind; before, status read only the held rotations the daemon on its own host had
// written (held.json), and no daemon ran here. A consumer that holds the stored key is not
// named; one that holds only the key before it is, with both key ids. `plan --online` asks
// them the same way (before, it too named only this host's daemon's holds).
func TestStatusOnlineAsksTheConsumers(t *testing.T) {
	rs := newReceiverStack(t)
	cfg := rs.config(t, true)
	ctx := context.Background()
	code, stdout, stderr := runMain(ctx, rs.env, "status", "--online", "--config", cfg)
	if code != 0 || strings.Contains(stdout, "HELD") {
		t.Fatalf("the receiver holds the stored key, yet status says (exit %d):\n%s\n%s", code, stdout, stderr)
	}
	first := storedKeyID(t, rs.stack, cfg)
	// The receiver stops reloading, and a rotation without the gate stores another key.
	if err := os.WriteFile(rs.pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runMain(ctx, rs.env, "rotate", "--config", rs.config(t, false), "billing-prod"); code != 0 {
		t.Fatalf("rotate: %d\n%s\n%s", code, out, errs)
	}
	second := storedKeyID(t, rs.stack, cfg)
	if _, err := os.Stat(filepath.Join(rs.stateDir, "held.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("held.json: %v; want none (no daemon held anything on this host)", err)
	}
	code, stdout, stderr = runMain(ctx, rs.env, "status", "--online", "--config", cfg)
	want := "HELD billing-prod: rotations held, nothing minted: consumer billing-api holds " + first + ", not the stored key " + second
	if code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("status --online (exit %d) does not name the lagging receiver; want %q in:\n%s\n%s", code, want, stdout, stderr)
	}
	code, stdout, _ = runMain(ctx, rs.env, "status", "--online", "--output", "json", "--config", cfg)
	var entries []struct {
		Destination string   `json:"destination"`
		Held        []string `json:"held"`
	}
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil || code != 0 || len(entries) != 1 || len(entries[0].Held) != 1 || !strings.Contains(entries[0].Held[0], "consumer billing-api holds "+first) {
		t.Errorf("status --online --output json (exit %d, %v):\n%s", code, err, stdout)
	}
	// plan --online asks them too: the plan's times do not come while the consumer lags.
	code, stdout, stderr = runMain(ctx, rs.env, "plan", "--online", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("plan --online (exit %d) does not name the lagging receiver; want %q in:\n%s\n%s", code, want, stdout, stderr)
	}
	code, stdout, _ = runMain(ctx, rs.env, "plan", "--online", "--output", "json", "--config", cfg)
	entries = nil
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil || code != 0 || len(entries) != 1 || len(entries[0].Held) != 1 || !strings.Contains(entries[0].Held[0], "consumer billing-api holds "+first) {
		t.Errorf("plan --online --output json (exit %d, %v):\n%s", code, err, stdout)
	}
	// Offline, status and plan say what the daemon on this host holds: nothing here.
	if code, stdout, _ = runMain(ctx, rs.env, "status", "--config", cfg); code != 0 || strings.Contains(stdout, "HELD") {
		t.Errorf("status without --online (exit %d) names a hold no daemon here made:\n%s", code, stdout)
	}
	if code, stdout, _ = runMain(ctx, rs.env, "plan", "--config", cfg); code != 0 || strings.Contains(stdout, "HELD") {
		t.Errorf("plan without --online (exit %d) names a hold no daemon here made:\n%s", code, stdout)
	}
	// Where the sink cannot be read, plan --online cannot ask about the stored key: the hold
	// this host's daemon recorded stands, beside the error.
	hold := receivers.Hold{Destination: "billing-prod", Consumer: "billing-api", StoredKeyID: second, Holds: []string{first}, Since: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	b, _ := json.Marshal([]receivers.Hold{hold})
	if err := os.WriteFile(filepath.Join(rs.stateDir, receivers.HeldFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.vault.Client(t).KVv2("secret-v2").Put(ctx, "webhookco/billing-prod", map[string]any{"not": "a rotatord record"}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runMain(ctx, rs.env, "plan", "--online", "--config", cfg)
	if want := "HELD billing-prod: rotations held, nothing minted: " + hold.Describe(); code != 0 || !strings.Contains(stdout, "error: ") || !strings.Contains(stdout, want) {
		t.Errorf("plan --online with the sink unreadable (exit %d): want an error and %q in:\n%s\n%s", code, want, stdout, stderr)
	}
}

// storedKeyID is the key id status reads from the sink for billing-prod.
func storedKeyID(t *testing.T, s *stack, cfg string) string {
	t.Helper()
	code, stdout, stderr := runMain(context.Background(), s.env, "status", "--output", "json", "--config", cfg)
	var entries []struct {
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil || code != 0 || len(entries) != 1 || entries[0].KeyID == "" {
		t.Fatalf("status --output json (exit %d, %v):\n%s\n%s", code, err, stdout, stderr)
	}
	return entries[0].KeyID
}
