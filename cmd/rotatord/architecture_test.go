package main

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/rotatord/rotatord/"

// floors is the house: each package of rotatord on its floor. A package imports only
// packages on lower floors (docs/architecture.md draws it; `go list -deps` reads it).
var floors = map[string]int{
	"internal/backoff": 1, "internal/durable": 1, "internal/gcpace": 1, "internal/loopback": 1, "internal/metrics": 1, "internal/scheduler": 1, "internal/secret": 1,
	"internal/vault": 2, "internal/webhookco": 2,
	"internal/config": 3, "internal/preflight": 3, "internal/spool": 3, "internal/emulator": 3,
	"internal/sink": 4, "internal/lease": 4, "internal/account": 4,
	"internal/sink/vaultkv": 5, "internal/sink/file": 5, "internal/lease/vaultlease": 5, "internal/lease/local": 5,
	"internal/rotate": 5, "internal/report": 5,
	"internal/receivers": 6,
	"internal/app":       7,
	"internal/cli":       8,
	"cmd/rotatord":       9,
}

// TestImportsRunDown: every import between rotatord's packages runs to a lower floor, and
// every package has a floor (a new one is placed here, and in docs/architecture.md).
func TestImportsRunDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "../../internal/...", "../../cmd/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		from := strings.TrimPrefix(p.ImportPath, module)
		if from == "internal/vaulttest" || from == "internal/bintest" {
			continue // test helpers, imported by tests only
		}
		seen++
		f, ok := floors[from]
		if !ok {
			t.Errorf("%s has no floor: place it in floors and in docs/architecture.md", from)
			continue
		}
		for _, imp := range p.Imports {
			to, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if g, ok := floors[to]; ok && g >= f {
				t.Errorf("%s (floor %d) imports %s (floor %d): an arrow that does not run down", from, f, to, g)
			}
		}
	}
	if seen < len(floors) {
		t.Errorf("go list named %d packages; the house has %d", seen, len(floors))
	}
}

// TestOneFileNamesTheBackends: the concrete sinks and leases are named in one wiring file
// (internal/app/backends.go); the rest of the product uses the contracts and the
// capabilities the backends declare. (The tools, such as the fleet benchmark that seeds
// Vault with the KV backend, are not the product.)
func TestOneFileNamesTheBackends(t *testing.T) {
	backends := []string{"internal/sink/vaultkv", "internal/sink/file", "internal/lease/vaultlease", "internal/lease/local"}
	var naming []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "tools") {
			return filepath.SkipDir // the benchmarks and test servers are not the product
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../..", path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(backends, strings.TrimPrefix(p, module)) && !strings.HasPrefix(rel, filepath.Dir(strings.TrimPrefix(p, module))+"/") {
				naming = append(naming, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(naming)
	naming = slices.Compact(naming)
	if want := []string{"internal/app/backends.go"}; !slices.Equal(naming, want) {
		t.Errorf("files outside the backends that import one: %v, want %v", naming, want)
	}
}
