package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/spool"
)

// TestRotateManyAtOnce: `rotate NAME…` runs up to scheduler.max_concurrent rotations at
// once (with a 300 ms answer, several requests arrive before the first is answered), and
// prints its lines in the order the names were given.
func TestRotateManyAtOnce(t *testing.T) {
	const latency = 300 * time.Millisecond
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("d%d", i))
	}
	fs := newFileStack(t, emulator.Options{RotateLatency: latency}, "  rate_limit: 0\n", "scheduler:\n  max_concurrent: 3\n", names...)
	em, key, cfg := fs.em, fs.key, fs.cfg
	slices.Reverse(names) // an order that is not the config's
	code, stdout, stderr := runMain(context.Background(), map[string]string{"K": key}, append([]string{"rotate", "--config", cfg}, names...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for i, name := range names {
		if i >= len(lines) || !strings.HasPrefix(lines[i], name+": rotated, key ") {
			t.Fatalf("line %d is %q, want %s's; stdout:\n%s", i, lines[min(i, len(lines)-1)], name, stdout)
		}
	}
	// Concurrency, seen from the provider: requests that arrived before an earlier one could
	// have been answered.
	reqs := em.RequestsFor(emulator.OpRotate, "")
	overlapping := 0
	for i := 1; i < len(reqs); i++ {
		if reqs[i].At.Sub(reqs[i-1].At) < latency/2 {
			overlapping++
		}
	}
	if len(reqs) != 6 || overlapping == 0 {
		t.Errorf("%d rotate requests, %d arriving while another was in flight; want 6, several at once", len(reqs), overlapping)
	}
}

// TestCommandLine: flags may follow the names (`rotate NAME --config PATH` reads PATH, not
// the default), `spool --help` is help (exit 0), and `spool list` shows a rotation whose
// outcome is not known yet, not only spooled secrets.
func TestCommandLine(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", "", "billing")
	em, key, cfg, id := fs.em, fs.key, fs.cfg, fs.ids["billing"]
	env := map[string]string{"K": key}
	code, stdout, stderr := runMain(context.Background(), env, "rotate", "billing", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "billing: rotated, key ") {
		t.Fatalf("rotate billing --config PATH: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runMain(context.Background(), env, "spool", "--help"); code != 0 || !strings.Contains(stdout, "spool list") {
		t.Errorf("spool --help: exit %d, %q", code, stdout)
	}
	// A rotate whose answer never came (the connection dropped after the mint) leaves its
	// write-ahead record; spool list names it.
	em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint}, emulator.Fault{Kind: emulator.DropAfterMint},
		emulator.Fault{Kind: emulator.DropAfterMint}, emulator.Fault{Kind: emulator.DropAfterMint})
	em.InjectFaults(emulator.OpListSigningSecrets, emulator.Fault{Kind: emulator.InternalError}, emulator.Fault{Kind: emulator.InternalError},
		emulator.Fault{Kind: emulator.InternalError}, emulator.Fault{Kind: emulator.InternalError})
	if code, _, _ := runMain(context.Background(), env, "rotate", "--config", cfg, "billing"); code != 1 {
		t.Fatalf("rotate with its answer dropped: exit %d, want 1", code)
	}
	code, stdout, _ = runMain(context.Background(), env, "spool", "list", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "1 rotation whose outcome is not yet known") || !strings.Contains(stdout, id) {
		t.Errorf("spool list after an unknown outcome: exit %d\n%s", code, stdout)
	}
}

// TestDemoOnBusyPort: with the default metrics port taken, the demo starts on a free port
// and says which.
func TestDemoOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", defaultDemoListen)
	if err == nil {
		defer ln.Close() // else it is taken already, which is the case under test too
	}
	code, stdout, stderr := runMain(context.Background(), nil, "demo", "--duration", "2s")
	if code != 0 || !strings.Contains(stdout, "metrics at http://127.0.0.1:") || strings.Contains(stdout, "http://"+defaultDemoListen+"/") {
		t.Errorf("demo with %s taken: exit %d\n%s%s", defaultDemoListen, code, stdout, stderr)
	}
}

// TestOfflineCheckReadsNoSecret: `check` without --online validates the example config,
// whose credential files exist only while the systemd unit runs, without reading them.
func TestOfflineCheckReadsNoSecret(t *testing.T) {
	code, stdout, stderr := runMain(context.Background(), map[string]string{"VAULT_ADDR": "https://vault.example.com:8200"}, "check", "--config", "../../config.example.yaml")
	if code != 0 || !strings.Contains(stdout, ": ok, ") {
		t.Errorf("check of the example config: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestRotateSaysALostKey: when a rotate's answer was lost and the listing shows the key it
// minted, rotate's line says the key was lost and recovered.
func TestRotateSaysALostKey(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "  retry: {initial_backoff: 10ms, max_backoff: 20ms}\n", "", "billing")
	em, key, cfg := fs.em, fs.key, fs.cfg
	em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint})
	code, stdout, stderr := runMain(context.Background(), map[string]string{"K": key}, "rotate", "--config", cfg, "billing")
	if code != 0 || !strings.Contains(stdout, "billing: rotated, key ") || !strings.Contains(stdout, "recovered from lost key ") {
		t.Errorf("rotate after a lost answer: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestStatusTellsSpooledFromDrift: a provider's active key that waits in this host's spool
// is shown as pending there, not as drift.
func TestStatusTellsSpooledFromDrift(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", "", "billing")
	em, key, cfg, id, dir := fs.em, fs.key, fs.cfg, fs.ids["billing"], fs.dir
	env := map[string]string{"K": key}
	if code, stdout, stderr := runMain(context.Background(), env, "rotate", "--config", cfg, "billing"); code != 0 {
		t.Fatalf("rotate: %d\n%s%s", code, stdout, stderr)
	}
	newKey, err := em.RotateDirect(id) // a key the sink does not hold
	if err != nil {
		t.Fatal(err)
	}
	_, stdout, _ := runMain(context.Background(), env, "status", "--config", cfg, "--online")
	if !strings.Contains(tableRows(stdout)["billing"], "DRIFT: "+newKey) {
		t.Fatalf("a key neither stored nor spooled: want DRIFT\n%s", stdout)
	}
	sp, err := spool.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := sp.Put(spool.Entry{DestinationID: id, Destination: "billing", Path: "webhookco/billing", KeyID: newKey, Secret: secret.New("whsec_x"), RotatedAt: now, SpooledAt: now}); err != nil {
		t.Fatal(err)
	}
	_, stdout, _ = runMain(context.Background(), env, "status", "--config", cfg, "--online")
	if row := tableRows(stdout)["billing"]; !strings.Contains(row, "pending in the spool: "+newKey) || strings.Contains(row, "DRIFT") {
		t.Errorf("a key waiting in the spool: want pending, not drift\n%s", stdout)
	}
}
