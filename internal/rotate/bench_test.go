package rotate_test

import (
	"context"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/lease/vaultlease"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// BenchmarkRotateFileSink is one whole rotation (sink read, rotate over loopback HTTP to
// the emulator, write, fsync, rename, read back): rotatord's own overhead per rotation.
func BenchmarkRotateFileSink(b *testing.B) {
	h, r := newHarness(b, harnessOpts{})
	h.storeCurrent(b, h.dest)
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); !res.OK() {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkRotateVaultKV2 is the same against the real Vault (KV v2: read, write, patch
// metadata, read back: four Vault round trips).
func BenchmarkRotateVaultKV2(b *testing.B) {
	benchVault(b, false)
}

// BenchmarkRotateVaultKV2WithLease is BenchmarkRotateVaultKV2 under a Vault lease
// (coordination.mode vault): the lease's overhead is the difference in time and in Vault
// requests. One process rotating in turn takes the lease it released with one write.
func BenchmarkRotateVaultKV2WithLease(b *testing.B) {
	benchVault(b, true)
}

// benchVault rotates into a real Vault KV v2, under a Vault lease when withLease, and
// reports the Vault requests per rotation.
func benchVault(b *testing.B, withLease bool) {
	v := vaulttest.Start(b)
	v.EnableKV(b, "secret-v2", 2)
	counted, counter := v.CountingClient(b)
	s, err := vaultkv.New(vaultkv.Options{Client: counted, Mount: "secret-v2", Version: 2})
	if err != nil {
		b.Fatal(err)
	}
	h, _ := newHarness(b, harnessOpts{sink: s})
	h.storeCurrent(b, h.dest)
	opts := h.opts
	if withLease {
		l, err := vaultlease.New(vaultlease.Options{Client: counted, Mount: "secret-v2", Path: "rotatord/leases", TTL: time.Minute, Holder: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		opts.Lease, opts.RequestTimeout = l, 2*time.Second
	}
	r, err := rotate.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	counter.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); !res.OK() {
			b.Fatal(res.Err)
		}
	}
	b.ReportMetric(float64(counter.Load())/float64(b.N), "vault-requests/op")
}

// BenchmarkLeaseHandover is the lease alone when replicas take turns: each take follows
// another process's release, so the remembered version is stale and the take reads first.
func BenchmarkLeaseHandover(b *testing.B) {
	v := vaulttest.Start(b)
	v.EnableKV(b, "secret-v2", 2)
	counted, counter := v.CountingClient(b)
	var ls [2]*vaultlease.Lease
	for i := range ls {
		var err error
		if ls[i], err = vaultlease.New(vaultlease.Options{Client: counted, Mount: "secret-v2", Path: "rotatord/leases", TTL: time.Minute, Holder: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	i := 0
	counter.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		c, err := ls[i%2].Acquire(ctx, "d", 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Release(ctx, false); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(counter.Load())/float64(b.N), "vault-requests/op")
}
