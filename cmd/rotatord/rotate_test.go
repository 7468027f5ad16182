package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
)

// TestRotateManyAtOnce: `rotate NAME…` runs up to scheduler.max_concurrent rotations at
// once (with a 300 ms answer, several requests arrive before the first is answered), and
// prints its lines in the order the names were given.
func TestRotateManyAtOnce(t *testing.T) {
	const latency = 300 * time.Millisecond
	em := emulator.New(emulator.Options{RotateLatency: latency})
	apiURL, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi:\n  base_url: %s\n  token_env: K\n  rate_limit: 0\nsink:\n  type: file\n  dir: %s\nscheduler:\n  max_concurrent: 3\ndestinations:\n",
		filepath.Join(dir, "state"), apiURL, filepath.Join(dir, "out"))
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("d%d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n    vault_path: webhookco/%s\n", em.AddDestination(name), name, name)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
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
