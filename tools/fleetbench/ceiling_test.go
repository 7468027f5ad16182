package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCeilingPatchBuilds: `make bench-ceiling` applies ceiling.patch to a copy of the tree
// and builds it, so the patch must still apply to the rotator as it is, and the result
// build. It must also still cut the promises out: the patched rotate returns before the
// write-ahead record, the lease and the check-and-set are reached.
func TestCeilingPatchBuilds(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	patch := filepath.Join(root, "tools", "fleetbench", "ceiling.patch")
	tree := t.TempDir()
	for _, name := range []string{"go.mod", "go.sum", "cmd", "internal"} {
		src := filepath.Join(root, name)
		if st, err := os.Stat(src); err != nil {
			t.Fatal(err)
		} else if !st.IsDir() {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tree, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.CopyFS(filepath.Join(tree, name), os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = tree
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("git", "apply", patch)
	patched, err := os.ReadFile(filepath.Join(tree, "internal", "rotate", "rotate.go"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, found := strings.Cut(string(patched), "func (r *Rotator) rotate(ctx")
	body, _, _ = strings.Cut(body, "\n}\n")
	ceiling, rest, ok := strings.Cut(body, "\treturn res\n\tif r.storedByPeer(")
	if !found || !ok || !strings.Contains(rest, "r.rotateLocked(") || strings.Contains(ceiling, "rotateLocked") || strings.Contains(ceiling, "Lease") {
		t.Fatalf("the patched rotate does not return before the lease and rotateLocked:\n%s", body)
	}
	run("go", "build", "-trimpath", "-o", filepath.Join(tree, "rotatord"), "./cmd/rotatord")
}
