package rotate_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/lease/vaultlease"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"

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

// BenchmarkRememberMatureFleet: the memory the rotator keeps of 10,000 stored records read
// at the start (App.learnStored), each with a full history (sink.HistoryLength earlier keys:
// a year of weekly rotations, as a fleet has after one), in bytes a destination.
func BenchmarkRememberMatureFleet(b *testing.B) {
	h, _ := newHarness(b, harnessOpts{})
	at := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	entries := make([]sink.HistoryEntry, sink.HistoryLength)
	for i := range entries {
		entries[i] = sink.HistoryEntry{KeyID: fmt.Sprintf("0193a5b2-7c4d-7e8f-9a0b-%012x", i), At: at.AddDate(0, 0, 7*i), Version: sink.Version(fmt.Sprint(i + 1))}
	}
	encoded := sink.History{Entries: entries}.String()
	const n = 10_000
	for b.Loop() {
		r, err := rotate.New(h.opts)
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			hist, err := sink.ParseHistory(encoded) // as the sink's read decodes each record
			if err != nil {
				b.Fatal(err)
			}
			id := fmt.Sprintf("0193a5b2-7c4d-7e8f-9a0b-%012x", 1_000_000+i)
			r.Know(id, sink.Record{DestinationID: id, KeyID: entries[0].KeyID, RotatedAt: at, Version: "65", History: hist}, true)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/destination")
		runtime.KeepAlive(r)
	}
}
