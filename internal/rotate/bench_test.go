package rotate_test

import (
	"context"
	"testing"

	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// BenchmarkRotateFileSink is one whole rotation (sink read, rotate over loopback HTTP to
// the emulator, write, fsync, rename, read back): rotatord's own overhead per rotation.
func BenchmarkRotateFileSink(b *testing.B) {
	h, r := newHarness(b, harnessOpts{})
	h.storeCurrent(b, h.dest)
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); !res.OK {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkRotateVaultKV2 is the same against the real Vault (KV v2: read, write, patch
// metadata, read back: four Vault round trips).
func BenchmarkRotateVaultKV2(b *testing.B) {
	v := vaulttest.Start(b)
	v.EnableKV(b, "secret-v2", 2)
	s, err := sink.NewVault(sink.VaultOptions{Client: v.Client(b), Mount: "secret-v2", Version: 2})
	if err != nil {
		b.Fatal(err)
	}
	h, r := newHarness(b, harnessOpts{sink: s})
	h.storeCurrent(b, h.dest)
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); !res.OK {
			b.Fatal(res.Err)
		}
	}
}
