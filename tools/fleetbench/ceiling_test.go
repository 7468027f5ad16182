package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCeilingPatchBuilds: `make bench-ceiling` builds the ceiling with `make ceiling`, which
// applies ceiling.patch to a copy of the tree in bin/ceiling and builds it. So the patch
// must still apply to the rotator as it is, and the result build. It must also still cut
// the promises out: the patched rotate returns before the write-ahead record, the lease and
// the check-and-set are reached.
func TestCeilingPatchBuilds(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "ceiling")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make ceiling: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "ceiling", "rotatord")); err != nil {
		t.Fatalf("make ceiling built no binary: %v", err)
	}
	patched, err := os.ReadFile(filepath.Join(root, "bin", "ceiling", "internal", "rotate", "rotate.go"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, found := strings.Cut(string(patched), "func (r *Rotator) rotate(ctx")
	body, _, _ = strings.Cut(body, "\n}\n")
	ceiling, rest, ok := strings.Cut(body, "\treturn res\n\tif r.storedByPeer(")
	if !found || !ok || !strings.Contains(rest, "r.rotateLocked(") || strings.Contains(ceiling, "rotateLocked") || strings.Contains(ceiling, "Lease") {
		t.Fatalf("the patched rotate does not return before the lease and rotateLocked:\n%s", body)
	}
}
