package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	filesink "github.com/rotatord/rotatord/internal/sink/file"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
)

// tcpProxy stands between rotatord and Vault so a test can take "Vault" off the network:
// while stopped, connections are refused and open ones are cut.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{addr: freeAddr(t), target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]bool{}}
	p.Start(t)
	t.Cleanup(p.Stop)
	return p
}

// Start listens again on the same address.
func (p *tcpProxy) Start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// Stop refuses new connections and cuts the open ones.
func (p *tcpProxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// TestVaultDownThirtySeconds: Vault is stopped before the rotate and comes back 30 s later.
// The secret waits in the spool (the metrics say so; /readyz stays ready), the replayer stores it once Vault is
// back, no second rotate is sent, and the spool ends empty.
func TestVaultDownThirtySeconds(t *testing.T) {
	longTest(t)
	s := newStack(t, "billing-prod")
	proxy := startProxy(t, s.vault.Addr)
	s.vaultAddr = "http://" + proxy.addr
	metricsAddr := freeAddr(t)
	cfg := s.writeConfigWith(t, "@daily", metricsAddr, "    max_sink_wait: 2s\n    max_backoff: 2s\n", "")
	id := s.dests["billing-prod"]

	proxy.Stop()
	stoppedAt := time.Now()
	code, stdout, stderr := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "kept in the spool") {
		t.Fatalf("rotate with Vault down: exit %d\n%s\n%s", code, stdout, stderr)
	}
	minted := s.em.Minted()
	if len(minted) != 1 || !minted[0].Delivered {
		t.Fatalf("minted = %+v", minted)
	}
	code, stdout, _ = runMain(context.Background(), s.env, "spool", "list", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "1 pending") || !strings.Contains(stdout, minted[0].KeyID) || strings.Contains(stdout, s.em.Keys(id)[0].Secret) {
		t.Fatalf("spool list: exit %d\n%s", code, stdout)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var runErr lockedBuffer
	go func() {
		done <- Main(ctx, []string{"run", "--config", cfg}, Env{Stdout: io.Discard, Stderr: &runErr, Getenv: func(k string) string { return s.env[k] }})
	}()
	// The daemon starts while Vault is still down. It is ready all the same (readiness would
	// take a sidecar's whole pod out of service); the metrics say a secret waits.
	// (/readyz answers "starting" from the first moment, served before anything waits on Vault.)
	waitFor(t, 20*time.Second, "/readyz to say ready", func() bool { return tryScrape("http://"+metricsAddr+"/readyz") == "ready\n" })
	if got := tryScrape("http://" + metricsAddr + "/readyz"); got != "ready\n" {
		t.Errorf("/readyz while Vault is down = %q, want ready", got)
	}
	if got := tryScrape("http://" + metricsAddr + "/metrics"); !strings.Contains(got, "\nrotatord_spooled_secrets 1\n") {
		t.Errorf("/metrics while Vault is down lacks rotatord_spooled_secrets 1")
	}

	time.Sleep(time.Until(stoppedAt.Add(30 * time.Second)))
	proxy.Start(t)
	waitFor(t, 30*time.Second, "the secret in Vault", func() bool {
		sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/billing-prod")
		return err == nil && sec.Data["key_id"] == minted[0].KeyID
	})
	waitFor(t, 10*time.Second, "ready", func() bool { return tryScrape("http://"+metricsAddr+"/readyz") == "ready\n" })
	waitFor(t, 10*time.Second, "the spooled gauge at 0", func() bool {
		return strings.Contains(tryScrape("http://"+metricsAddr+"/metrics"), "\nrotatord_spooled_secrets 0\n")
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d\n%s", code, runErr.String())
	}
	s.assertVaultHoldsActive(t, "billing-prod")
	if n := len(s.em.RequestsFor(emulator.OpRotate, id)); n != 1 {
		t.Errorf("%d rotate requests, want exactly 1", n)
	}
	sp, err := spool.Open(s.stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := sp.Len(); n != 0 {
		t.Errorf("spool holds %d entries after the replay", n)
	}
}

// TestKillAtEveryStep runs the rotatord binary, SIGKILLs it at each point of a rotation,
// restarts it, and checks the emulator's record against Vault: every key handed to
// rotatord is in Vault or superseded by a later one there, and every key minted but never
// handed over is reported lost by the restarted process.
func TestKillAtEveryStep(t *testing.T) {
	longTest(t)
	bin := bintest.RotatordWithFailpoints(t)
	s := newStack(t)
	// wantLost: keys the restart must report lost. Killed between the mint and the reading
	// of the body, or after reading it but before spooling it, the secret is gone: the
	// durable intent makes the restart list, notice and count it, then recover.
	steps := []string{"before_request", "after_mint_before_body", "after_response", "after_spool_write", "after_sink_write", "before_spool_remove"}
	wantLost := map[string]int{"after_mint_before_body": 1, "after_response": 1}
	for i, step := range steps {
		t.Run(step, func(t *testing.T) {
			name := fmt.Sprintf("dest-%d", i)
			id := s.em.AddDestination(name)
			s.dests = map[string]string{name: id}
			s.stateDir = t.TempDir()
			cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
			env := []string{"PATH=" + os.Getenv("PATH"), "WEBHOOKCO_API_KEY=" + s.apiKey, "VAULT_TOKEN=" + s.vault.RootToken}

			// A first, clean rotation: the sink holds a key, as in production.
			first := exec.Command(bin, "rotate", "--config", cfg, name)
			first.Env = env
			if out, err := first.CombinedOutput(); err != nil {
				t.Fatalf("first rotation: %v\n%s", err, out)
			}

			// The rotation to be killed.
			cmd := exec.Command(bin, "rotate", "--config", cfg, name)
			cmd.Env = env
			if step == "after_mint_before_body" {
				s.em.InjectFaultsFor(emulator.OpRotate, id, emulator.Fault{Kind: emulator.LatencyAfterMint, Delay: time.Minute})
			} else {
				cmd.Env = append(cmd.Env, "ROTATORD_TEST_FAILPOINT="+step)
			}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			mintedBefore := len(s.em.RequestsFor(emulator.OpRotate, id))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			reached := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "failpoint "+step+" reached") {
						close(reached)
					}
				}
			}()
			if step == "after_mint_before_body" {
				waitFor(t, 10*time.Second, "the key to be minted", func() bool {
					for _, m := range s.em.Minted() {
						if m.DestinationID == id && len(s.em.RequestsFor(emulator.OpRotate, id)) > mintedBefore {
							return true
						}
					}
					return false
				})
				time.Sleep(100 * time.Millisecond)
			} else {
				select {
				case <-reached:
				case <-time.After(20 * time.Second):
					_ = cmd.Process.Kill()
					t.Fatalf("failpoint %s not reached", step)
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()

			// Restart.
			restart := exec.Command(bin, "rotate", "--config", cfg, name)
			restart.Env = env
			out, err := restart.CombinedOutput()
			if err != nil {
				t.Fatalf("restart: %v\n%s", err, out)
			}

			// Account for every key minted for this destination.
			sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/"+name)
			if err != nil {
				t.Fatal(err)
			}
			var minted []emulator.Minted
			for _, m := range s.em.Minted() {
				if m.DestinationID == id {
					minted = append(minted, m)
				}
			}
			vaultIdx := -1
			for j, m := range minted {
				if m.KeyID == sec.Data["key_id"] {
					vaultIdx = j
				}
			}
			if vaultIdx != len(minted)-1 {
				t.Errorf("Vault holds minted key #%d of %d, want the newest", vaultIdx, len(minted))
			}
			for j, m := range minted {
				if m.Delivered && j > vaultIdx {
					t.Errorf("key %s was handed to rotatord and is newer than Vault's", m.KeyID)
				}
				if !m.Delivered && !strings.Contains(string(out), m.KeyID) {
					t.Errorf("key %s was minted and never handed over, and the restart did not report it lost:\n%s", m.KeyID, out)
				}
			}
			if got := strings.Count(string(out), "signing secret lost"); got != wantLost[step] {
				t.Errorf("the restart reported %d lost keys, want %d:\n%s", got, wantLost[step], out)
			}
			s.assertVaultHoldsActive(t, name)
			sp, err := spool.Open(s.stateDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := sp.Len(); n != 0 {
				t.Errorf("spool holds %d entries", n)
			}
			if _, ok, _ := sp.Intent(id); ok {
				t.Error("an intent is left behind")
			}
		})
	}
}

// TestSoak: 200 destinations rotating every second for 2 minutes while Vault goes away
// twice and the emulator answers with random 429s, 500s and dropped connections. Then:
// no key handed to rotatord is newer than Vault's unless reported lost, every key minted
// and never handed over was reported lost (once, and counted), no two rotates of one
// destination overlapped, and Vault holds the provider's active key for every destination.
func TestSoak(t *testing.T) {
	longTest(t)
	t.Parallel() // runs beside TestReplicasRotateOncePerSlot: both are mostly waiting
	names := make([]string, 200)
	for i := range names {
		names[i] = fmt.Sprintf("soak-%03d", i)
	}
	s := newStack(t, names...)
	proxy := startProxy(t, s.vault.Addr)
	s.vaultAddr = "http://" + proxy.addr
	metricsAddr := freeAddr(t)
	cfg := s.writeConfigWith(t, "@every 1s", metricsAddr,
		// The last line is at api level: the soak drives 200 rotations a second on purpose.
		"    initial_backoff: 100ms\n    max_backoff: 1s\n    max_retry_after: 2s\n    max_rate_limit_wait: 20s\n    max_sink_wait: 1s\n  rate_limit: 0\n",
		"  max_concurrent: 8\n  shutdown_timeout: 30s\n")
	s.em.SetRandomFaults(0.1, []string{emulator.OpRotate},
		emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"}, emulator.Fault{Kind: emulator.RateLimit},
		emulator.Fault{Kind: emulator.InternalError}, emulator.Fault{Kind: emulator.InternalErrorAfterMint},
		emulator.Fault{Kind: emulator.DropBeforeMint}, emulator.Fault{Kind: emulator.DropAfterMint},
		emulator.Fault{Kind: emulator.MalformedAfterMint})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var logs lockedBuffer
	go func() {
		done <- Main(ctx, []string{"run", "--config", cfg}, Env{Stdout: io.Discard, Stderr: &logs, Getenv: func(k string) string { return s.env[k] }})
	}()
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	at(30 * time.Second)
	proxy.Stop()
	at(40 * time.Second)
	proxy.Start(t)
	at(70 * time.Second)
	proxy.Stop()
	at(80 * time.Second)
	proxy.Start(t)
	at(100 * time.Second)
	s.em.SetRandomFaults(0, nil)
	at(120 * time.Second)
	metricsText := tryScrape("http://" + metricsAddr + "/metrics")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run exited %d", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop within 60s")
	}

	// A rotate whose outcome was still unknown when run stopped (its request timed out under
	// the soak's load, and the shutdown cut its settle period short) leaves its intent in the
	// write-ahead record: nothing is lost, the next start settles it. Start once more, with
	// no faults, to let it; the checks below then hold for both runs.
	if ro, err := spool.OpenReadOnly(s.stateDir, nil); err == nil {
		if intents, _ := ro.Intents(); len(intents) > 0 {
			t.Logf("%d rotate intents left at shutdown; starting again to settle them", len(intents))
			ctx2, cancel2 := context.WithCancel(context.Background())
			done2 := make(chan int, 1)
			go func() {
				done2 <- Main(ctx2, []string{"run", "--config", cfg}, Env{Stdout: io.Discard, Stderr: &logs, Getenv: func(k string) string { return s.env[k] }})
			}()
			time.Sleep(10 * time.Second)
			second := tryScrape("http://" + metricsAddr + "/metrics")
			cancel2()
			if code := <-done2; code != 0 {
				t.Fatalf("the second run exited %d", code)
			}
			metricsText = addLost(t, metricsText, second)
		}
	}
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d overlapping rotates of one destination", n)
	}
	// Every key minted and never written to rotatord's connection must be reported lost.
	// A key the emulator wrote but rotatord never read (its request timed out under load)
	// is lost too, from rotatord's side; it may be reported, but must never be the stored one.
	minted := s.em.Minted()
	reported := map[string]bool{}
	for _, m := range regexp.MustCompile(`"lost_key_id":"([0-9a-f-]+)"`).FindAllStringSubmatch(logs.String(), -1) {
		// One line per key found minted but never received (the lost_key_ids of a rotation's
		// audit line repeat them).
		if reported[m[1]] {
			t.Errorf("key %s reported lost twice", m[1])
		}
		reported[m[1]] = true
	}
	undelivered, deliveredButLost := 0, 0
	for _, m := range minted {
		switch {
		case !m.Delivered:
			undelivered++
			if !reported[m.KeyID] {
				t.Errorf("key %s of %s was minted, never handed over, and not reported lost", m.KeyID, m.DestinationID)
			}
		case reported[m.KeyID]:
			deliveredButLost++
		}
	}
	if lost := sumMetric(t, metricsText, "rotatord_lost_secrets_total"); lost != float64(len(reported)) {
		t.Errorf("lost_secrets_total = %v, lost keys in the log = %d", lost, len(reported))
	}
	t.Logf("soak: %d keys minted; %d never handed over, %d written by the provider but not read in time; all %d reported lost",
		len(minted), undelivered, deliveredButLost, len(reported))
	if rot := sumMetric(t, metricsText, `rotatord_rotations_total{`); rot < 1000 {
		t.Errorf("only %v rotations in 2 minutes", rot)
	}

	client := s.vault.Client(t)
	for name, id := range s.dests {
		sec, err := client.KVv2("secret-v2").Get(context.Background(), "webhookco/"+name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		active := s.em.ActiveKeys(id)
		if reported[fmt.Sprint(sec.Data["key_id"])] {
			t.Errorf("%s: Vault holds key %v, which was reported lost", name, sec.Data["key_id"])
		}
		if len(active) != 1 || sec.Data["key_id"] != active[0].ID || sec.Data["signing_secret"] != active[0].Secret {
			t.Errorf("%s: Vault holds %v, the provider's active key is %v; its last log lines:\n%s", name, sec.Data["key_id"], active,
				tail(grepLines(logs.String(), `"destination":"`+name+`"`), 3000))
			continue
		}
		seenVault := false
		for i := len(minted) - 1; i >= 0; i-- { // newest first
			m := minted[i]
			if m.DestinationID != id {
				continue
			}
			if m.KeyID == active[0].ID {
				seenVault = true
			} else if !seenVault && m.Delivered && !reported[m.KeyID] {
				t.Errorf("%s: key %s handed to rotatord is newer than Vault's and was not reported lost", name, m.KeyID)
			}
		}
	}
	sp, err := spool.Open(s.stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := sp.Len(); n != 0 {
		t.Errorf("spool holds %d entries at the end", n)
	}
	// No secret in the logs.
	all := logs.String()
	for _, id := range s.dests {
		for _, k := range s.em.Keys(id) {
			if strings.Contains(all, k.Secret) {
				t.Fatalf("a signing secret appears in the logs")
			}
		}
	}
}

// TestRotateBesideRunNeverOverlaps: `rotatord rotate NAME` next to `rotatord run` on the
// same state directory refuses, naming the holder, while run rotates that destination; with
// --wait it waits its turn; the provider never sees two rotates of one destination at once.
func TestRotateBesideRunNeverOverlaps(t *testing.T) {
	for _, mode := range []string{"local", "vault"} {
		t.Run(mode, func(t *testing.T) { rotateBesideRun(t, mode) })
	}
}

// rotateBesideRun is TestRotateBesideRunNeverOverlaps with coordination.mode mode.
func rotateBesideRun(t *testing.T, mode string) {
	s := newStack(t, "billing-prod")
	s.extraYAML = "coordination:\n  mode: " + mode + "\n  lease_ttl: 10s\n  vault:\n    mount: secret-v2\n"
	id := s.dests["billing-prod"]
	cfg := s.writeConfig(t, "@every 1s", freeAddr(t))

	// run's next rotation of billing-prod takes 2 s after the key is minted.
	s.em.InjectFaultsFor(emulator.OpRotate, id, emulator.Fault{Kind: emulator.LatencyAfterMint, Delay: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { code, _, _ := runMain(ctx, s.env, "run", "--config", cfg); done <- code }()
	waitFor(t, 10*time.Second, "run's slow rotation to start", func() bool { return len(s.em.Minted()) > 0 })

	code, stdout, _ := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 1 || !strings.Contains(stdout, "FAILED (busy)") || !strings.Contains(stdout, "(rotatord run") {
		t.Fatalf("rotate beside run: exit %d\n%s", code, stdout)
	}

	// Manual rotations that wait their turn, while run keeps rotating every second.
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = runMain(context.Background(), s.env, "rotate", "--config", cfg, "--wait", "20s", "billing-prod")
		}()
	}
	wg.Wait()
	cancel()
	if c := <-done; c != 0 {
		t.Fatalf("run exited %d", c)
	}
	for i, c := range codes {
		if c != 0 {
			t.Errorf("manual rotation %d exited %d", i, c)
		}
	}
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d overlapping rotates of billing-prod", n)
	}
	s.assertVaultHoldsActive(t, "billing-prod")
	if mode == "vault" {
		// The turns were taken through the Vault lease: its fence is in the stored secret.
		l, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "rotatord/leases/"+id)
		if err != nil || l.Data["released"] != "true" || l.VersionMetadata.Version < 10 {
			t.Fatalf("lease entry: %v, %v; want released after 5 or more turns", l, err)
		}
		sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/billing-prod")
		if err != nil || sec.Data["lease_fence"] == nil || sec.Data["lease_fence"] == "" {
			t.Errorf("stored secret has no lease_fence: %v %v", sec, err)
		}
	}
}

// TestCatchUpAfterDowntime: the sink says when each destination was last rotated. A
// scheduled time that passed since then (rotatord was down) gives exactly one catch-up
// rotation with missed: run_once; none with missed: skip, none for a paused destination,
// none for one rotated on time (a paused one is not even considered). The freshness
// metrics show the overdue one turn fresh.
func TestCatchUpAfterDowntime(t *testing.T) {
	em := emulator.New(emulator.Options{})
	url, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	dir := t.TempDir()
	metricsAddr := freeAddr(t)
	ids := map[string]string{}
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi: {base_url: %q, token_env: KEY}\nsink: {type: file, dir: %s}\n", filepath.Join(dir, "state"), url, filepath.Join(dir, "secrets"))
	fmt.Fprintf(&b, "metrics: {listen: %q}\ndefaults: {schedule: \"@hourly\"}\ndestinations:\n", metricsAddr)
	for _, d := range []struct{ name, extra string }{
		{"missed", "max_age: 90m"}, {"on-time", ""}, {"skipped", "missed: skip"}, {"paused", "enabled: false"},
	} {
		ids[d.name] = em.AddDestination(d.name)
		fmt.Fprintf(&b, "  - {id: %s, name: %s, vault_path: webhookco/%s", ids[d.name], d.name, d.name)
		if d.extra != "" {
			fmt.Fprintf(&b, ", %s", d.extra)
		}
		b.WriteString("}\n")
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The daemon ran here before it went down (a first start would not call a slot missed).
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state", app.StartedFile), []byte("2026-01-01T00:00:00Z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// What the sink held when the daemon went down: two hours ago, except on-time.
	files, err := filesink.New(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range ids {
		k := em.Keys(id)[0]
		at := time.Now().Add(-2 * time.Hour)
		if name == "on-time" {
			at = time.Now().Add(-time.Second)
		}
		if _, err := files.Put(context.Background(), "webhookco/"+name, sink.Record{DestinationID: id, KeyID: k.ID, Secret: secret.New(k.Secret), RotatedAt: at}, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go func() {
		_, _, stderr := runMain(ctx, map[string]string{"KEY": key}, "run", "--config", cfgPath)
		done <- stderr
	}()
	waitFor(t, 15*time.Second, "the catch-up rotation", func() bool { return len(em.RequestsFor(emulator.OpRotate, ids["missed"])) == 1 })
	waitFor(t, 5*time.Second, "fresh metrics", func() bool {
		return strings.Contains(tryScrape("http://"+metricsAddr+"/metrics"), `rotatord_overdue{destination="missed"} 0`)
	})
	m := tryScrape("http://" + metricsAddr + "/metrics")
	time.Sleep(time.Second) // nothing else may fire
	cancel()
	logs := <-done
	for name, want := range map[string]int{"missed": 1, "on-time": 0, "skipped": 0, "paused": 0} {
		if got := len(em.RequestsFor(emulator.OpRotate, ids[name])); got != want {
			t.Errorf("%s: %d rotate requests, want %d", name, got, want)
		}
	}
	if !strings.Contains(logs, `"trigger":"catch_up"`) || strings.Count(logs, `"msg":"scheduled rotation missed while rotatord was down"`) != 2 {
		t.Errorf("log lacks the catch-up trigger or the missed notices:\n%s", logs)
	}
	for _, want := range []string{
		`rotatord_overdue{destination="missed"} 0`,  // caught up, within its max_age (90m)
		`rotatord_overdue{destination="skipped"} 1`, // not caught up, older than the derived max_age (2h for @hourly)
		`rotatord_consecutive_failures{destination="missed"} 0`,
		`rotatord_next_rotation_timestamp_seconds{destination="paused"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// addLost returns first with the second run's rotatord_lost_secrets_total added, as one
// series the sum over both runs (the checks compare that sum with the log).
func addLost(t *testing.T, first, second string) string {
	t.Helper()
	total := sumMetric(t, first, "rotatord_lost_secrets_total") + sumMetric(t, second, "rotatord_lost_secrets_total")
	var keep []string
	for _, l := range strings.Split(first, "\n") {
		if !strings.HasPrefix(l, "rotatord_lost_secrets_total") {
			keep = append(keep, l)
		}
	}
	return strings.Join(append(keep, fmt.Sprintf("rotatord_lost_secrets_total{destination=\"all\"} %v", total)), "\n")
}
