package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// TestGoModRequiresThePatchedToolchain: go.mod's go line names a release with the standard
// library's security fixes, so even GOTOOLCHAIN=local refuses to build with an older one
// (a toolchain line alone is ignored there).
func TestGoModRequiresThePatchedToolchain(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go 1\.26\.(\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("go.mod has no go 1.26.N line:\n%s", b[:min(len(b), 200)])
	}
	if patch, _ := strconv.Atoi(string(m[1])); patch < 11 {
		t.Errorf("go.mod requires go 1.26.%d; 1.26.11 is the first release without the reachable standard-library advisories", patch)
	}
}

// TestRepositoryHoldsNoBinaries: no executable built from the code is committed (it would
// carry whatever toolchain built it, advisories included).
func TestRepositoryHoldsNoBinaries(t *testing.T) {
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range bytes.Split(bytes.TrimRight(out, "\x00"), []byte{0}) {
		f, err := os.Open("../../" + string(name))
		if err != nil {
			continue // deleted in the work tree
		}
		head := make([]byte, 4)
		n, _ := f.Read(head)
		f.Close()
		if n == 4 && string(head) == "\x7fELF" {
			t.Errorf("%s is a committed ELF binary", name)
		}
	}
}
