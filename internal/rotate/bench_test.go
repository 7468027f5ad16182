package rotate_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

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
	conf := vaultapi.DefaultConfig()
	conf.Address = v.Addr
	counter := &countingTransport{next: conf.HttpClient.Transport}
	conf.HttpClient.Transport = counter
	counted, err := vaultapi.NewClient(conf)
	if err != nil {
		b.Fatal(err)
	}
	counted.SetToken(v.RootToken)
	s, err := sink.NewVault(sink.VaultOptions{Client: counted, Mount: "secret-v2", Version: 2})
	if err != nil {
		b.Fatal(err)
	}
	h, r := newHarness(b, harnessOpts{sink: s})
	h.storeCurrent(b, h.dest)
	counter.n.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); !res.OK {
			b.Fatal(res.Err)
		}
	}
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "vault-requests/op")
}

// countingTransport counts the HTTP requests rotatord sends to Vault.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}
