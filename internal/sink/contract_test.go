package sink_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	filesink "github.com/rotatord/rotatord/internal/sink/file"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// store is the sink contract the rotator relies on (rotate.Sink), restated here so the
// conformance test needs nothing but package sink.
type store interface {
	Name() string
	Location(path string) string
	Get(ctx context.Context, path string) (sink.Record, error)
	Put(ctx context.Context, path string, rec sink.Record, ifVersion sink.Version) (sink.Version, error)
}

var (
	_ store = (*filesink.Sink)(nil)
	_ store = (*vaultkv.KV)(nil)
)

// TestSinkContract runs the one conformance test against every backend: a new backend is
// one package, one case here, and one case in the wiring.
func TestSinkContract(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	v.EnableKV(t, "kv1", 1)
	backends := map[string]func(t *testing.T) store{
		"file": func(t *testing.T) store {
			s, err := filesink.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"vault kv2": func(t *testing.T) store {
			s, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "kv2", Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"vault kv1": func(t *testing.T) store {
			s, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "kv1", Version: 1})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, newStore := range backends {
		t.Run(name, func(t *testing.T) { conform(t, newStore(t), strings.ReplaceAll(name, " ", "-")) })
	}

	// A write that fails once the record is serialised (the secret is in the request or the
	// file being written) still says nothing of the secret. Each backend's own such failure:
	refusals := map[string]func(t *testing.T) (store, string){
		"file": func(t *testing.T) (store, string) { // a directory where the file goes: the rename fails
			dir := t.TempDir()
			s, err := filesink.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "refused", "x.json", "inside"), 0o700); err != nil {
				t.Fatal(err)
			}
			return s, "refused/x"
		},
		"vault kv2": func(t *testing.T) (store, string) { // a token that may not write
			c := v.Client(t)
			c.SetToken(v.Token(t, "default"))
			s, err := vaultkv.New(vaultkv.Options{Client: c, Mount: "kv2", Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			return s, "refused/x"
		},
		"vault kv1": func(t *testing.T) (store, string) {
			c := v.Client(t)
			c.SetToken(v.Token(t, "default"))
			s, err := vaultkv.New(vaultkv.Options{Client: c, Mount: "kv1", Version: 1})
			if err != nil {
				t.Fatal(err)
			}
			return s, "refused/x"
		},
	}
	if len(refusals) != len(backends) {
		t.Fatalf("%d backends, %d with a refused write: every backend needs one", len(backends), len(refusals))
	}
	for name, refused := range refusals {
		t.Run(name+" refused", func(t *testing.T) {
			s, p := refused(t)
			rec := sink.Record{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", KeyID: "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b",
				Secret: secret.New("whsec_refused-secret-bytes"), RotatedAt: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)}
			_, err := s.Put(context.Background(), p, rec, sink.NoCAS)
			if err == nil {
				t.Fatal("the refused write succeeded")
			}
			if strings.Contains(err.Error(), "refused-secret-bytes") || strings.Contains(fmt.Sprintf("%+v", err), "refused-secret-bytes") {
				t.Errorf("the error of a refused write holds the secret: %v", err)
			}
		})
	}
}

// conform checks one backend against the contract; prefix keeps backends' paths apart.
func conform(t *testing.T, s store, prefix string) {
	ctx := context.Background()
	path := func(n string) string { return "contract/" + prefix + "/" + n }
	record := func(i int) sink.Record {
		return sink.Record{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", KeyID: fmt.Sprintf("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f%04d", i),
			Secret: secret.New(fmt.Sprintf("whsec_contract-secret-%04d", i)), RotatedAt: time.Date(2026, 12, 1, 3, i%60, 0, 0, time.UTC)}
	}

	// Nothing stored: ErrNotFound.
	if _, err := s.Get(ctx, path("a")); !errors.Is(err, sink.ErrNotFound) {
		t.Fatalf("Get of nothing: %v, want ErrNotFound", err)
	}
	// What is put is what is got, to the nanosecond, with slot and fence.
	first := record(1)
	first.Slot, first.Fence = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), 4
	if _, err := s.Put(ctx, path("a"), first, ""); err != nil {
		t.Fatalf("Put on nothing stored (zero version): %v", err)
	}
	got, err := s.Get(ctx, path("a"))
	if err != nil || !got.Same(first) {
		t.Fatalf("Get after Put = %+v, %v; want %+v", got, err, first)
	}
	// Put replaces the whole record: a field the second record lacks is gone.
	second := record(2)
	if _, err := s.Put(ctx, path("a"), second, got.Version); err != nil {
		t.Fatalf("Put with the version read: %v", err)
	}
	now, err := s.Get(ctx, path("a"))
	if err != nil || !now.Same(second) || !now.Slot.IsZero() || now.Fence != 0 {
		t.Fatalf("Get after the second Put = %+v, %v; want %+v with no slot or fence", now, err, second)
	}
	// A check-and-set against a version that is no longer current is a conflict, where the
	// sink has versions; a sink without versions returns none and ignores it.
	if got.Version != "" {
		if _, err := s.Put(ctx, path("a"), record(3), got.Version); !errors.Is(err, sink.ErrConflict) {
			t.Errorf("Put with a stale version: %v, want ErrConflict", err)
		}
		if _, err := s.Put(ctx, path("a"), record(3), ""); !errors.Is(err, sink.ErrConflict) {
			t.Errorf("Put with the zero version over a stored record: %v, want ErrConflict", err)
		}
	}
	if _, err := s.Put(ctx, path("a"), record(4), sink.NoCAS); err != nil {
		t.Errorf("Put with NoCAS: %v", err)
	}
	// Safe for concurrent use on different paths.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Put(ctx, path(fmt.Sprintf("c%02d", i)), record(i), sink.NoCAS); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	for i := range 16 {
		if got, err := s.Get(ctx, path(fmt.Sprintf("c%02d", i))); err != nil || !got.Same(record(i)) {
			t.Errorf("concurrent path %d: %+v, %v", i, got, err)
		}
	}
	// A cancelled context stops the call.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cancelled, path("x"), record(5), sink.NoCAS); err == nil {
		t.Error("Put with a cancelled context succeeded")
	}
	// Errors name the path, never the secret; the name and location say where it goes.
	if s.Name() == "" || !strings.Contains(s.Location(path("a")), "contract/"+prefix+"/a") {
		t.Errorf("Name %q, Location %q", s.Name(), s.Location(path("a")))
	}
	_, putErr := s.Put(cancelled, path("x"), record(6), sink.NoCAS)
	for _, err := range []error{putErr} {
		if err != nil && strings.Contains(err.Error(), "whsec_") {
			t.Errorf("an error holds the secret: %v", err)
		}
	}
}
