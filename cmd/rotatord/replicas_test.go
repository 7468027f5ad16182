package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
)

// replica is one `rotatord run` process of the real binary, with its own state_dir (its
// own "host") and its stderr kept.
type replica struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
	// reached is closed when the armed failpoint is first reached.
	reached chan struct{}
	once    sync.Once
}

func (r *replica) log() string { r.mu.Lock(); defer r.mu.Unlock(); return r.stderr.String() }

// killAtFailpoint waits for the replica to reach its armed failpoint, then SIGKILLs it.
func (r *replica) killAtFailpoint(t *testing.T) {
	t.Helper()
	select {
	case <-r.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the replica never reached its failpoint")
	}
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

// startReplica starts `rotatord run` on a copy of s's config with its own state_dir.
func startReplica(t *testing.T, s *stack, schedule string, env ...string) *replica {
	t.Helper()
	return startReplicaIn(t, s, t.TempDir(), schedule, env...)
}

// startReplicaIn is startReplica with a given state_dir (a host that comes back).
func startReplicaIn(t *testing.T, s *stack, stateDir, schedule string, env ...string) *replica {
	t.Helper()
	s.stateDir = stateDir
	cfg := s.writeConfig(t, schedule, "127.0.0.1:0")
	r := &replica{cmd: exec.Command(bintest.RotatordWithFailpoints(t), "run", "--config", cfg), reached: make(chan struct{})}
	r.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "WEBHOOKCO_API_KEY=" + s.apiKey, "VAULT_TOKEN=" + s.vault.RootToken}, env...)
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.stderr.WriteString(line + "\n")
			r.mu.Unlock()
			if strings.Contains(line, "failpoint ") && strings.Contains(line, " reached") {
				r.once.Do(func() { close(r.reached) }) // several rotations may reach it
			}
		}
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		_ = r.cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("replica pid %d log (last 3000 bytes):\n%s", r.cmd.Process.Pid, tail(r.log(), 3000))
		}
	})
	return r
}

// TestReplicasRotateOncePerSlot: three `rotatord run` processes with the same config (each
// with its own state_dir, as on three hosts) and 50 destinations on "* * * * *", for three
// minutes. The emulator's record shows every destination rotated exactly once at start
// (nothing was stored: first_rotation at_start, by one replica) and exactly once in each
// minute, no two rotates of one destination ever in flight at once, and at the end Vault
// holds the provider's active key for every destination, with the slot and fence.
func TestReplicasRotateOncePerSlot(t *testing.T) {
	longTest(t)
	t.Parallel() // three minutes of wall clock, little CPU: overlap it with the soak
	names := make([]string, 50)
	for i := range names {
		names[i] = fmt.Sprintf("replicated-%02d", i)
	}
	s := newStack(t, names...)
	s.extraYAML = vaultCoordination
	// The first rotations at start (nothing is stored yet) must fall in the minute before the
	// first slot: start with at least 30 s of the minute left.
	bintest.RotatordWithFailpoints(t)
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < 30*time.Second {
		time.Sleep(left)
	}
	var replicas []*replica
	for range 3 {
		replicas = append(replicas, startReplica(t, s, "* * * * *"))
	}
	start := time.Now()
	first := start.Truncate(time.Minute).Add(time.Minute)
	slots := []time.Time{first, first.Add(time.Minute), first.Add(2 * time.Minute)}
	// Three slots, and time for the last one's rotations to finish.
	time.Sleep(time.Until(slots[2].Add(20 * time.Second)))

	for _, r := range replicas {
		if r.cmd.ProcessState != nil {
			t.Fatalf("replica pid %d exited early", r.cmd.Process.Pid)
		}
	}
	perSlot := map[string]map[time.Time]int{} // destination id → slot → rotate requests
	atStart := map[string]int{}               // destination id → rotate requests before the first slot
	for _, req := range s.em.RequestsFor(emulator.OpRotate, "") {
		if req.At.Before(first) {
			atStart[req.DestinationID]++
			continue
		}
		if perSlot[req.DestinationID] == nil {
			perSlot[req.DestinationID] = map[time.Time]int{}
		}
		perSlot[req.DestinationID][req.At.Truncate(time.Minute)]++
	}
	for _, name := range names {
		id := s.dests[name]
		if n := atStart[id]; n != 1 {
			t.Errorf("%s: %d rotate requests at start, want 1 (never rotated; one replica rotates it)", name, n)
		}
		for _, slot := range slots {
			if n := perSlot[id][slot]; n != 1 {
				t.Errorf("%s: %d rotate requests in the minute of %s, want 1", name, n, slot.Format(time.TimeOnly))
			}
		}
		if n := len(perSlot[id]); n != len(slots) {
			t.Errorf("%s: rotate requests in %d minutes, want %d: %v", name, n, len(slots), perSlot[id])
		}
		s.assertVaultHoldsActive(t, name)
		sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if sec.Data["slot"] != slots[2].UTC().Format(time.RFC3339Nano) || sec.Data["lease_fence"] == nil {
			t.Errorf("%s: stored slot %v, fence %v; want slot %s and a fence", name, sec.Data["slot"], sec.Data["lease_fence"], slots[2].UTC().Format(time.RFC3339))
		}
	}
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d times two rotates of one destination were in flight at once", n)
	}
	// Every replica fired for every slot: one rotated, the two others skipped (lease held,
	// or the slot found already rotated; a held lease is looked at once more after its
	// expiry, and skipped again as done). Nothing failed.
	var wins, skips []int
	for _, r := range replicas {
		wins = append(wins, strings.Count(r.log(), `"rotation succeeded"`))
		skips = append(skips, strings.Count(r.log(), `"outcome":"skipped"`))
		if n := strings.Count(r.log(), `"rotation failed"`); n > 0 {
			t.Errorf("replica pid %d: %d failed rotations", r.cmd.Process.Pid, n)
		}
	}
	t.Logf("over %d slots × %d destinations, successful rotations per replica %v, skipped %v", len(slots), len(names), wins, skips)
	if sum := wins[0] + wins[1] + wins[2]; sum != (len(slots)+1)*len(names) {
		t.Errorf("replicas report %d successful rotations, want %d (one at start, one per slot)", sum, (len(slots)+1)*len(names))
	}
	if sum := skips[0] + skips[1] + skips[2]; sum < 2*len(slots)*len(names) {
		t.Errorf("replicas report %d skipped rotations, want at least %d (two per destination and slot)", sum, 2*len(slots)*len(names))
	}
}

// TestKillLeaseHolderMidRotation: the replica holding a destination's lease is SIGKILLed
// after the provider minted a key and handed it over, before the key reached the spool or
// Vault. `status` names the dead holder. Another replica, whose scheduled fire found the
// lease held, looks again when it expires, takes it over, lists first, reports the dead
// holder's key lost, rotates once to recover, and stores the provider's active key within
// the lease TTL (plus the clock-skew allowance), before its next slot. Every minted key is
// accounted for: in Vault, or reported lost.
func TestKillLeaseHolderMidRotation(t *testing.T) {
	longTest(t)
	s := newStack(t, "billing-prod")
	s.extraYAML = vaultCoordination
	id := s.dests["billing-prod"]
	const slot, ttl = 10 * time.Second, 10 * time.Second

	doomed := startReplica(t, s, "@every 10s", "ROTATORD_TEST_FAILPOINT=after_response")
	doomed.killAtFailpoint(t)
	killedAt := time.Now()
	minted := s.em.Minted()
	if len(minted) != 1 || !minted[0].Delivered {
		t.Fatalf("minted before the kill: %+v; want one key, handed over", minted)
	}

	// The dead holder's lease is still there, and status says whose it is.
	cfg := s.writeConfig(t, "@every 10s", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "status", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("pid %d on ", doomed.cmd.Process.Pid)) {
		t.Fatalf("status: exit %d, want the dead holder named\n%s\n%s", code, stdout, stderr)
	}

	survivor := startReplica(t, s, "@every 10s")
	waitFor(t, ttl+lease.MaxClockSkew+slot+10*time.Second, "the survivor to store a key", func() bool {
		return strings.Contains(survivor.log(), `"rotation succeeded"`)
	})
	took := time.Since(killedAt)
	t.Logf("the survivor stored the active key %s after the kill", took.Round(100*time.Millisecond))
	if limit := ttl + lease.MaxClockSkew + 5*time.Second; took > limit {
		t.Errorf("the survivor completed %s after the kill, want within %s (TTL + skew allowance + 5s; the next slot is %s away)", took, limit, slot)
	}
	log := survivor.log()
	for _, want := range []string{"took over an expired lease", "listing keys before rotating", "signing secret lost", minted[0].KeyID} {
		if !strings.Contains(log, want) {
			t.Errorf("survivor's log lacks %q", want)
		}
	}
	s.assertVaultHoldsActive(t, "billing-prod")
	sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/billing-prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.em.Minted() {
		if m.DestinationID == id && m.KeyID != sec.Data["key_id"] && !strings.Contains(log, m.KeyID) {
			t.Errorf("key %s was minted, is not in Vault, and nobody reported it lost", m.KeyID)
		}
	}
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d overlapping rotates", n)
	}
}

// TestDeadHostReturnsWithSpooledSecret: the lease holder is SIGKILLed after spooling the
// secret it received and before storing it. Another replica takes over, finds the key in
// the provider's listing and not in Vault, and rotates. When the dead host comes back with
// its state_dir, its replayer offers the spooled secret, and the lease fence and the
// provider's active key keep it from overwriting the newer one; its spool ends empty.
func TestDeadHostReturnsWithSpooledSecret(t *testing.T) {
	longTest(t)
	s := newStack(t, "billing-prod")
	s.extraYAML = vaultCoordination
	deadDir := t.TempDir()
	doomed := startReplicaIn(t, s, deadDir, "@every 10s", "ROTATORD_TEST_FAILPOINT=after_spool_write")
	doomed.killAtFailpoint(t)
	spooled := s.em.Minted()[0].KeyID

	survivor := startReplica(t, s, "@every 10s")
	waitFor(t, 2*(10*time.Second+lease.MaxClockSkew)+10*time.Second, "the survivor to store a key", func() bool {
		return strings.Contains(survivor.log(), `"rotation succeeded"`)
	})
	if err := survivor.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = survivor.cmd.Wait()
	s.assertVaultHoldsActive(t, "billing-prod")
	// From the survivor's side that key's fate is unknown (it sits on a dead host): it is
	// reported, never silently superseded.
	if log := survivor.log(); !strings.Contains(log, "signing secret lost") || !strings.Contains(log, spooled) {
		t.Errorf("the survivor did not report the dead host's key %s", spooled)
	}

	// The dead host returns: its spool holds the superseded secret.
	back := startReplicaIn(t, s, deadDir, "@daily")
	waitFor(t, 20*time.Second, "the returning host to settle its spool", func() bool {
		return strings.Contains(back.log(), "secret is older than the stored one; not written")
	})
	s.assertVaultHoldsActive(t, "billing-prod")
	if sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/billing-prod"); err != nil || sec.Data["key_id"] == spooled {
		t.Errorf("Vault holds %v (%v); the returning host's stale key %s must not win", sec.Data["key_id"], err, spooled)
	}
	waitFor(t, 10*time.Second, "the returning host's spool to empty", func() bool {
		entries, _ := filepath.Glob(filepath.Join(deadDir, "spool", "pending", "*.json"))
		return len(entries) == 0
	})
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d overlapping rotates", n)
	}
}

// TestReplicaRestartedWhilePeersRotate: with Vault leases, a replica that starts while a
// peer is rotating the slot it finds not yet stored (a restart in the middle of a burst)
// does not say the slot was "missed while rotatord was down": it checks each such slot at
// its catch-up time, skips those a peer holds or has stored, and warns only for a slot it
// then finds nobody rotated, when it rotates it. Here replica A is stopped (a failpoint)
// inside the rotations it holds leases for; replica B starts beside it.
func TestReplicaRestartedWhilePeersRotate(t *testing.T) {
	longTest(t)
	names := make([]string, 8)
	for i := range names {
		names[i] = fmt.Sprintf("burst-%d", i)
	}
	s := newStack(t, names...)
	s.extraYAML = vaultCoordination
	// Every destination was last rotated three minutes ago: the slots since are due.
	vs, err := vaultkv.New(vaultkv.Options{Client: s.vault.Client(t), Mount: "secret-v2", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now().Add(-3 * time.Minute)
	for _, name := range names {
		k := s.em.Keys(s.dests[name])[0]
		rec := sink.Record{DestinationID: s.dests[name], KeyID: k.ID, Secret: secret.New(k.Secret), RotatedAt: last, Slot: last.Truncate(time.Minute)}
		if _, err := vs.Put(context.Background(), "webhookco/"+name, rec, sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}
	// A minute boundary must not pass while the replicas start.
	bintest.RotatordWithFailpoints(t)
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < 25*time.Second {
		time.Sleep(left + time.Second)
	}
	a := startReplica(t, s, "* * * * *", "ROTATORD_TEST_FAILPOINT=before_request")
	select { // A holds leases inside its rotations, and stays stopped there
	case <-a.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("replica A never reached its failpoint")
	}
	time.Sleep(500 * time.Millisecond) // all max_concurrent of them
	b := startReplica(t, s, "* * * * *")
	held := 4 // scheduler.max_concurrent: A holds the leases of the rotations it started
	bintest.WaitFor(t, 15*time.Second, "B's catch-ups", func() bool {
		return strings.Count(b.log(), `"trigger":"catch_up"`) >= len(names)
	})
	logB := b.log()
	if n := strings.Count(logB, "missed while rotatord was down"); n != 0 {
		t.Errorf("B says %d slots were missed while rotatord was down; its peer is rotating them", n)
	}
	rotated := strings.Count(logB, `"rotation succeeded"`)
	if want := len(names) - held; rotated != want {
		t.Errorf("B rotated %d destinations, want %d (those A did not hold)", rotated, want)
	}
	if n := strings.Count(logB, `"msg":"scheduled rotation missed: no replica had stored its slot; rotated now"`); n != rotated {
		t.Errorf("B warned of %d missed slots, want one for each of the %d it found nobody rotated", n, rotated)
	}
	if !strings.Contains(logB, `"msg":"slots not stored yet; another replica may be rotating them`) {
		t.Errorf("B's start does not say why it checks the slots it found not stored:\n%s", tail(logB, 3000))
	}
}
