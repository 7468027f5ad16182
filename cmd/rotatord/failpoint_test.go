package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
)

// TestReleaseBuildIgnoresFailpoints: the failpoint variable that makes the tests' binary
// stop forever after minting a key does nothing to a release build, which rotates and
// exits as usual.
func TestReleaseBuildIgnoresFailpoints(t *testing.T) {
	em := emulator.New(emulator.Options{})
	apiURL, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	id := em.AddDestination("billing")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := "state_dir: " + filepath.Join(dir, "state") + "\napi:\n  base_url: " + apiURL + "\n  token_env: K\n" +
		"sink:\n  type: file\n  dir: " + filepath.Join(dir, "out") + "\n" +
		"destinations:\n  - id: " + id + "\n    name: billing\n    vault_path: webhookco/billing\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "rotate", "--config", cfg, "billing")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "K=" + key, "ROTATORD_TEST_FAILPOINT=after_response"}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the release binary stopped at the failpoint (killed after 60s):\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "billing: rotated, key ") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "failpoint") {
		t.Errorf("the release binary mentions a failpoint:\n%s", out)
	}
}
