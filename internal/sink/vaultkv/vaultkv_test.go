package vaultkv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

var rec = sink.Record{
	DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f",
	KeyID:         "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b",
	Secret:        secret.New("whsec_dGhpcyBpcyBhIHRlc3Qgc2lnbmluZyBzZWNyZXQhIQ=="),
	RotatedAt:     time.Date(2026, 11, 26, 3, 0, 0, 123456789, time.UTC),
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestVaultKV stores and reads back through a real Vault, KV v2 and v1.
func TestVaultKV(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	v.EnableKV(t, "kv1", 1)
	client := v.Client(t)
	ctx := context.Background()

	for _, version := range []int{2, 1} {
		mount := map[int]string{1: "kv1", 2: "kv2"}[version]
		s, err := vaultkv.New(vaultkv.Options{Client: client, Mount: mount, Version: version})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "webhookco/billing"); !errors.Is(err, sink.ErrNotFound) {
			t.Fatalf("kv%d Get before Put: %v, want ErrNotFound", version, err)
		}
		if _, err := s.Put(ctx, "webhookco/billing", rec, sink.NoCAS); err != nil {
			t.Fatalf("kv%d Put: %v", version, err)
		}
		got, err := s.Get(ctx, "webhookco/billing")
		if err != nil || !got.Same(rec) || (version == 2) != (got.Version == "1") {
			t.Fatalf("kv%d Get = %+v, %v; want %+v", version, got, err, rec)
		}
	}

	// The KV v2 layout, read with the plain Vault API as a consumer would.
	sec, err := client.KVv2("kv2").Get(ctx, "webhookco/billing")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"signing_secret": rec.Secret.Reveal(), "key_id": rec.KeyID, "destination_id": rec.DestinationID,
		"rotated_at": "2026-11-26T03:00:00.123456789Z",
	}
	for k, w := range want {
		if sec.Data[k] != w {
			t.Errorf("data.%s = %v, want %v", k, sec.Data[k], w)
		}
	}
	if len(sec.Data) != len(want) {
		t.Errorf("data has %d fields, want %d: %v", len(sec.Data), len(want), keys(sec.Data))
	}
	meta := sec.CustomMetadata
	for k, w := range map[string]string{"managed_by": "rotatord", "destination_id": rec.DestinationID} {
		if meta[k] != w {
			t.Errorf("custom_metadata.%s = %v, want %s", k, meta[k], w)
		}
	}
	if len(meta) != 2 {
		t.Errorf("custom_metadata = %v, want managed_by and destination_id alone (what changes is in the data)", meta)
	}

	// A second write adds a version; its answer names it.
	rec2 := rec
	rec2.KeyID, rec2.Secret = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", secret.New("whsec_second")
	// Rotated for a slot under a Vault lease: both travel with the secret.
	rec2.Slot, rec2.Fence = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC), 42
	s2, _ := vaultkv.New(vaultkv.Options{Client: client, Mount: "kv2", Version: 2})
	if _, err := s2.Put(ctx, "webhookco/billing", rec2, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Get(ctx, "webhookco/billing"); err != nil || !got.Same(rec2) || got.Fence != 42 {
		t.Fatalf("Get after a fenced Put = %+v, %v; want %+v", got, err, rec2)
	}
	sec2, err := client.KVv2("kv2").Get(ctx, "webhookco/billing")
	if err != nil {
		t.Fatal(err)
	}
	if sec2.Data["slot"] != "2026-11-26T03:00:00Z" || sec2.Data["lease_fence"] != "42" {
		t.Errorf("slot and fence: data %v %v; want 2026-11-26T03:00:00Z, 42", sec2.Data["slot"], sec2.Data["lease_fence"])
	}
	// A check-and-set against a version that is no longer current is a conflict.
	if _, err := s2.Put(ctx, "webhookco/billing", rec, "1"); !errors.Is(err, sink.ErrConflict) {
		t.Errorf("Put with a stale check-and-set version: %v, want ErrConflict", err)
	}
	if got, err := s2.Get(ctx, "webhookco/billing"); err != nil || got.Version != "2" || got.KeyID != rec2.KeyID {
		t.Errorf("after the refused write: %+v, %v", got, err)
	}
	if _, err := s2.Put(ctx, "webhookco/other", rec, ""); err != nil {
		t.Errorf("check-and-set 0 on a new path: %v", err)
	}
	sec, err = client.KVv2("kv2").Get(ctx, "webhookco/billing")
	if err != nil || sec.VersionMetadata.Version != 2 || sec.Data["key_id"] != rec2.KeyID || sec.CustomMetadata["managed_by"] != "rotatord" {
		t.Errorf("after the second write: version %v, key_id %v, custom_metadata %v, err %v", sec.VersionMetadata, sec.Data["key_id"], sec.CustomMetadata, err)
	}

	// KV v1 holds the same fields plus managed_by.
	v1, err := client.KVv1("kv1").Get(ctx, "webhookco/billing")
	if err != nil || v1.Data["managed_by"] != "rotatord" || v1.Data["key_id"] != rec.KeyID {
		t.Errorf("kv1 data = %v, %v", keys(v1.Data), err)
	}
}

// TestVaultErrorsNameThePathNotTheSecret: a token without rights gets a clear error.
func TestVaultErrorsNameThePathNotTheSecret(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	client := v.Client(t)
	client.SetToken(v.Token(t, "default"))
	s, _ := vaultkv.New(vaultkv.Options{Client: client, Mount: "kv2", Version: 2})
	_, err := s.Put(context.Background(), "webhookco/billing", rec, sink.NoCAS)
	if err == nil {
		t.Fatal("Put with a default-policy token succeeded")
	}
	if !strings.Contains(err.Error(), "kv2/data/webhookco/billing") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("error = %v, want the path and permission denied", err)
	}
	if strings.Contains(err.Error(), rec.Secret.Reveal()) {
		t.Error("error contains the secret")
	}
	missing, err := vault.Missing(context.Background(), client, nil, s.Needs("webhookco/billing"))
	if got := fmt.Sprint(missing); err != nil || got != "[create on kv2/data/webhookco/billing update on kv2/data/webhookco/billing read on kv2/data/webhookco/billing patch on kv2/metadata/webhookco/billing]" {
		t.Errorf("Missing = %s, %v; want create, update, read and the metadata patch", got, err)
	}
}

// TestKVVersionDetected: without a configured version the sink asks the mount.
func TestKVVersionDetected(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	v.EnableKV(t, "kv1", 1)
	ctx := context.Background()
	for mount, want := range map[string]int{"kv1": 1, "kv2": 2} {
		s, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: mount})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.KVVersion(ctx); err != nil || got != want {
			t.Errorf("%s: detected %d, %v; want %d", mount, got, err, want)
		}
		if _, err := s.Put(ctx, "webhookco/billing", rec, sink.NoCAS); err != nil {
			t.Fatalf("%s: %v", mount, err)
		}
		if got, err := s.Get(ctx, "webhookco/billing"); err != nil || !got.Same(rec) {
			t.Errorf("%s: read back %+v, %v", mount, got, err)
		}
		if loc := s.Location("webhookco/billing"); loc != map[int]string{1: "kv1/webhookco/billing", 2: "kv2/data/webhookco/billing"}[want] {
			t.Errorf("%s: Location = %s", mount, loc)
		}
	}
	// A plain KV v2 read by a consumer sees the v2 layout.
	if _, err := v.Client(t).KVv2("kv2").Get(ctx, "webhookco/billing"); err != nil {
		t.Errorf("consumer read: %v", err)
	}
	s, _ := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "nothing"})
	if _, err := s.KVVersion(ctx); err == nil || !strings.Contains(err.Error(), "nothing/") {
		t.Errorf("missing mount: %v", err)
	}
}

// TestKVVersionMismatch: a sink configured for one KV version on a mount of the other is
// found out at the mount check, and no write or read through it passes for a success.
func TestKVVersionMismatch(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	v.EnableKV(t, "kv1", 1)
	ctx := context.Background()
	for _, c := range []struct {
		mount      string
		configured int
		want       string
	}{
		{"kv1", 2, "vault.kv.version is 2, but kv1/ is a KV v1 mount"},
		{"kv2", 1, "vault.kv.version is 1, but kv2/ is a KV v2 mount"},
	} {
		s, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: c.mount, Version: c.configured})
		if err != nil {
			t.Fatal(err)
		}
		// The write itself is refused for what it is, even before any mount check.
		_, err = s.Put(ctx, "webhookco/billing", rec, sink.NoCAS)
		if !errors.Is(err, sink.ErrMisconfigured) || errors.Is(err, sink.ErrNotFound) {
			t.Errorf("%s as v%d: Put = %v, want ErrMisconfigured", c.mount, c.configured, err)
		}
		if got, err := s.Get(ctx, "webhookco/billing"); err == nil {
			t.Errorf("%s as v%d: Get after the refused write = %+v, want an error", c.mount, c.configured, got)
		}
		_, err = s.CheckMount(ctx)
		if !errors.Is(err, sink.ErrMisconfigured) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s as v%d: CheckMount = %v, want ErrMisconfigured saying %q", c.mount, c.configured, err, c.want)
		}
	}
	// The right version passes the check and says which it found.
	s, _ := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "kv2", Version: 2})
	if got, err := s.CheckMount(ctx); err != nil || got != 2 {
		t.Errorf("kv2 as v2: CheckMount = %d, %v", got, err)
	}
}

// TestVaultErrorClasses: the sink says what kind of failure it met, so the rotator can tell
// one worth retrying (Vault down) from one that cannot heal by itself.
func TestVaultErrorClasses(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	ctx := context.Background()
	root := v.Client(t)

	// A token that may write the data but not patch the metadata: a partial write.
	if err := root.Sys().PutPolicy("data-only", `path "kv2/data/*" { capabilities = ["create", "update", "read"] }`); err != nil {
		t.Fatal(err)
	}
	partial := v.Client(t)
	partial.SetToken(v.Token(t, "data-only"))
	s, _ := vaultkv.New(vaultkv.Options{Client: partial, Mount: "kv2", Version: 2})
	_, err := s.Put(ctx, "webhookco/billing", rec, sink.NoCAS)
	if !errors.Is(err, sink.ErrPartial) || errors.Is(err, sink.ErrDenied) {
		t.Errorf("data-only token: Put = %v, want ErrPartial", err)
	}
	if got, err := s.Get(ctx, "webhookco/billing"); err != nil || !got.Same(rec) {
		t.Errorf("after the partial write: %+v, %v; want the secret stored", got, err)
	}

	denied := v.Client(t)
	denied.SetToken(v.Token(t, "default"))
	s, _ = vaultkv.New(vaultkv.Options{Client: denied, Mount: "kv2", Version: 2})
	if _, err := s.Put(ctx, "webhookco/billing", rec, sink.NoCAS); !errors.Is(err, sink.ErrDenied) {
		t.Errorf("default-policy token: Put = %v, want ErrDenied", err)
	}

	s, _ = vaultkv.New(vaultkv.Options{Client: root, Mount: "nothing", Version: 2})
	if _, err := s.Put(ctx, "webhookco/billing", rec, sink.NoCAS); !errors.Is(err, sink.ErrMisconfigured) {
		t.Errorf("no such mount: Put = %v, want ErrMisconfigured", err)
	}

	// Vault down is none of these: it is worth retrying.
	down := v.Client(t)
	_ = down.SetAddress("http://127.0.0.1:1")
	down.SetMaxRetries(0)
	s, _ = vaultkv.New(vaultkv.Options{Client: down, Mount: "kv2", Version: 2})
	_, err = s.Put(ctx, "webhookco/billing", rec, sink.NoCAS)
	if err == nil || errors.Is(err, sink.ErrDenied) || errors.Is(err, sink.ErrMisconfigured) || errors.Is(err, sink.ErrPartial) {
		t.Errorf("Vault down: Put = %v, want an unclassified (retryable) error", err)
	}
}

// TestVaultWriteCosts: a KV v2 write is proven by its own answer (the version it created,
// returned by Put) and costs one request; custom_metadata, which never changes, is written
// by the first write to a path and not again, nor after a read that showed it in place.
func TestVaultWriteCosts(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	client, counter := v.CountingClient(t)
	ctx := context.Background()
	rec := sink.Record{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", KeyID: "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", Secret: secret.New("whsec_a"), RotatedAt: time.Now()}
	s, err := vaultkv.New(vaultkv.Options{Client: client, Mount: "kv2", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	cost := func(what string, want int64, f func() error) {
		t.Helper()
		before := counter.Load()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := counter.Load() - before; got != want {
			t.Errorf("%s: %d Vault requests, want %d", what, got, want)
		}
	}
	var created sink.Version
	cost("the first write (data, then custom_metadata)", 2, func() (err error) { created, err = s.Put(ctx, "p", rec, ""); return err })
	if created != "1" {
		t.Errorf("the first write returned version %q, want 1", created)
	}
	cost("the next write", 1, func() (err error) { created, err = s.Put(ctx, "p", rec, created); return err })
	if created != "2" {
		t.Errorf("the second write returned version %q, want 2", created)
	}
	fresh, _ := vaultkv.New(vaultkv.Options{Client: client, Mount: "kv2", Version: 2})
	var got sink.Record
	cost("a read", 1, func() (err error) { got, err = fresh.Get(ctx, "p"); return err })
	cost("a write after the read showed custom_metadata in place", 1, func() (err error) { _, err = fresh.Put(ctx, "p", rec, got.Version); return err })
}

// TestVaultListed: one LIST says which secrets a folder holds, with the policy's optional
// list grant alone (as deploy/vault/rotatord-policy.hcl ships it, mount renamed).
func TestVaultListed(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	root, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "kv2", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := sink.Record{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", KeyID: "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", Secret: secret.New("whsec_a"), RotatedAt: time.Now()}
	if _, err := root.Put(ctx, "webhookco/billing", rec, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	if err := v.Client(t).Sys().PutPolicy("lister", `path "kv2/metadata/webhookco" { capabilities = ["list"] }`); err != nil {
		t.Fatal(err)
	}
	client := v.Client(t)
	client.SetToken(v.Token(t, "lister"))
	s, err := vaultkv.New(vaultkv.Options{Client: client, Mount: "kv2", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := s.Listed(ctx, "webhookco/")
	if err != nil || !listed["billing"] || len(listed) != 1 {
		t.Errorf("Listed(webhookco/) = %v, %v; want billing alone", listed, err)
	}
	if listed, err := s.Listed(ctx, "empty/"); err == nil && len(listed) != 0 {
		t.Errorf("Listed(empty/) = %v", listed)
	}
}
