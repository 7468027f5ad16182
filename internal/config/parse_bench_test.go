package config

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
)

// fleetConfig is a config of n destinations, one flow mapping each (as a generated fleet
// config looks).
func fleetConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("state_dir: /tmp/x\napi:\n  token_file: /tmp/k\nvault:\n  address: http://127.0.0.1:8200\n  token_file: /tmp/t\n  kv: {mount: kv, version: 2}\ndefaults: {schedule: \"@daily\", first_rotation: on_schedule}\ndestinations:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {id: %08x-0000-4000-8000-%012x, name: d%05d, vault_path: fleet/d%05d}\n", i, i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkParse100k: a config of 100,000 destinations, read and validated (the start of a
// fleet of that size begins with it).
func BenchmarkParse100k(b *testing.B) {
	data := fleetConfig(100000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLargeParseRestoresTheCollector: a large config is parsed with the collector at
// parseGC, and the operator's setting is back afterwards, whether it was looser (the
// default) or tighter (then it is left alone throughout).
func TestLargeParseRestoresTheCollector(t *testing.T) {
	data := fleetConfig(20000)
	if len(data) < bigConfig {
		t.Fatalf("the test's config is %d bytes, under bigConfig", len(data))
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, before := range []int{100, 20, -1} {
		debug.SetGCPercent(before)
		if _, err := Parse(data); err != nil {
			t.Fatal(err)
		}
		if after := debug.SetGCPercent(before); after != before {
			t.Errorf("GOGC %d before a large parse, %d after", before, after)
		}
	}
}
