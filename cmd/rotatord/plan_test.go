package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPlanGolden compares `rotatord plan` (table and JSON) with golden files.
func TestPlanGolden(t *testing.T) {
	for _, output := range []string{"table", "json"} {
		code, stdout, stderr := runMain(context.Background(), nil, "plan", "--config", "testdata/plan.yaml", "--from", "2026-11-26T12:00:00Z", "--output", output)
		if code != 0 {
			t.Fatalf("plan --output %s: exit %d: %s", output, code, stderr)
		}
		compareGolden(t, "plan."+output+".golden", stdout)
	}
}

// compareGolden compares got with testdata/name; -update rewrites the file.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n%s\nwant:\n%s", name, got, want)
	}
}
