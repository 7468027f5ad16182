package config

import (
	"fmt"
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
