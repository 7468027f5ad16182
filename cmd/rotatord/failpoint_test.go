package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
)

// TestReleaseBuildIgnoresFailpoints: the failpoint variable that makes the tests' binary
// stop forever after minting a key does nothing to a release build, which rotates and
// exits as usual.
func TestReleaseBuildIgnoresFailpoints(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", "", "billing")
	key, cfg := fs.key, fs.cfg
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
