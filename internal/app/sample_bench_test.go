package app

import (
	"fmt"
	"testing"

	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/vault"
)

// BenchmarkSampleNeeds100k samples the start's Vault rights of 100,000 destinations (four
// needs each, as a KV v2 sink gives them, and the token's own), as a fleet's start does.
func BenchmarkSampleNeeds100k(b *testing.B) {
	const n = 100_000
	fresh := func() []preflight.Need {
		needs := make([]preflight.Need, 0, 4*n+1)
		for i := range n {
			name, p := fmt.Sprintf("f%d", i), fmt.Sprintf("fleet/team-%d/f%d", i%50, i)
			for _, c := range []string{"create", "update", "read"} {
				needs = append(needs, preflight.Need{Need: vault.Need{Path: "kv/data/" + p, Capability: c}, For: name})
			}
			needs = append(needs, preflight.Need{Need: vault.Need{Path: "kv/metadata/" + p, Capability: "patch"}, For: name})
		}
		return append(needs, preflight.Need{Need: vault.Need{Path: "auth/token/renew-self", Capability: "update"}})
	}
	src := fresh()
	work := make([]preflight.Need, len(src))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, src) // sampleNeeds may reuse the slice it is given, as the start's is
		kept, deferred := sampleNeeds(work, int(startRightsSample))
		if len(kept) != 4*int(startRightsSample)+1 || len(kept)+len(deferred) != len(src) {
			b.Fatal(len(kept), len(deferred))
		}
	}
}
