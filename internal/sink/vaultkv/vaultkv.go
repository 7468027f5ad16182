package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/sink"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/vault"
)

var (
	_ sink.Sink         = (*KV)(nil)
	_ preflight.Checker = (*KV)(nil)
)

// Options configure a Vault sink.
type Options struct {
	Client *vaultapi.Client
	// Mount is the KV secrets engine's mount path, e.g. "secret".
	Mount string
	// Version is the KV version, 1 or 2; 0 detects it from the mount on first use.
	Version int
	// Recover, when set, is called once when Vault answers 403: if it returns nil (a new
	// token is in place), the request is retried once.
	Recover func(ctx context.Context) error
}

// KV stores secrets in a Vault KV mount. KV v2 data holds signing_secret, key_id,
// destination_id and rotated_at (so what must be atomic is written in one request);
// custom_metadata repeats destination_id, key_id and rotated_at with managed_by=rotatord.
type KV struct {
	client  *vaultapi.Client
	mount   string
	recover func(ctx context.Context) error

	mu      sync.Mutex
	version int // 0 until detected
	// described holds the paths whose custom_metadata is known to be rotatord's (read, or
	// written by this process), with the destination id it names: not patched again.
	described descriptions
}

// descriptions maps a path to the destination id its custom_metadata names. A plain map
// under a lock: a fleet of 100,000 kept 9.5 MB in a sync.Map's nodes.
type descriptions struct {
	mu sync.Mutex
	m  map[string]string
}

func (d *descriptions) load(path string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.m[path]
	return id, ok
}

func (d *descriptions) store(path, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]string{}
	}
	d.m[path] = id
}

// New validates opts.
func New(opts Options) (*KV, error) {
	if opts.Client == nil {
		return nil, errors.New("vault sink: no client")
	}
	if opts.Version != 0 && opts.Version != 1 && opts.Version != 2 {
		return nil, fmt.Errorf("vault sink: KV version %d: want 1 or 2 (or 0 to detect)", opts.Version)
	}
	mount := strings.Trim(opts.Mount, "/")
	if mount == "" {
		return nil, errors.New("vault sink: no KV mount")
	}
	return &KV{client: opts.Client, mount: mount, version: opts.Version, recover: opts.Recover}, nil
}

// Name implements rotate.Sink.
func (v *KV) Name() string { return "vault" }

// KVVersion returns the mount's KV version, detecting it on first use.
func (v *KV) KVVersion(ctx context.Context) (int, error) {
	v.mu.Lock()
	known := v.version
	v.mu.Unlock()
	if known != 0 {
		return known, nil
	}
	var version int
	err := v.call(ctx, func() error {
		var err error
		version, err = vault.DetectKVVersion(ctx, v.client, v.mount)
		return err
	})
	if err != nil {
		return 0, err
	}
	v.mu.Lock()
	v.version = version
	v.mu.Unlock()
	return version, nil
}

// CheckMount reads the mount's KV version from Vault, whatever the config says, and fails
// with sink.ErrMisconfigured when it is not the configured one (vault.kv.version): a KV v2 sink
// writing to a KV v1 mount would store every secret at a path no consumer reads. It
// returns the version in use. Run it before the first rotation (start-up, check --online).
func (v *KV) CheckMount(ctx context.Context) (int, error) {
	var found int
	err := v.call(ctx, func() (err error) { found, err = vault.DetectKVVersion(ctx, v.client, v.mount); return err })
	if err != nil {
		return 0, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.version != 0 && v.version != found {
		return 0, fmt.Errorf("vault.kv.version is %d, but %s/ is a KV v%d mount: set vault.kv.version to %d (or leave it out to detect it), or point vault.kv.mount at a KV v%d mount: %w",
			v.version, v.mount, found, found, v.version, sink.ErrMisconfigured)
	}
	v.version = found
	return found, nil
}

// Location implements rotate.Sink: the API path of the secret, for logs.
func (v *KV) Location(path string) string { return v.dataPath(path) }

// dataPath is the API path that holds the secret (every read and write of it).
func (v *KV) dataPath(path string) string {
	v.mu.Lock()
	version := v.version
	v.mu.Unlock()
	if version == 2 {
		return v.mount + "/data/" + path
	}
	return v.mount + "/" + path
}

// metadataPath is the KV v2 API path of the secret's custom_metadata.
func (v *KV) metadataPath(path string) string { return v.mount + "/metadata/" + path }

// Needs lists the capabilities that storing a secret at path uses: create (the first write),
// update (later writes) and read (the stale-write check, the read-back) on the data path,
// and with KV v2 patch on the metadata path (custom_metadata). Call it after CheckMount.
func (v *KV) Needs(path string) []vault.Need {
	data := v.dataPath(path)
	needs := []vault.Need{{Path: data, Capability: "create"}, {Path: data, Capability: "update"}, {Path: data, Capability: "read"}}
	v.mu.Lock()
	version := v.version
	v.mu.Unlock()
	if version == 2 {
		needs = append(needs, vault.Need{Path: v.metadataPath(path), Capability: "patch"})
	}
	return needs
}

// GetVersion reads version v of the secret at path (KV v2 only): the key a delivery's
// retiring signature was made with.
func (v *KV) GetVersion(ctx context.Context, path string, version sink.Version) (sink.Record, error) {
	kv, err := v.KVVersion(ctx)
	if err != nil {
		return sink.Record{}, err
	}
	n, err := strconv.Atoi(string(version))
	if kv != 2 || err != nil || n < 1 {
		return sink.Record{}, fmt.Errorf("vault %s: version %q: %w", v.Location(path), version, sink.ErrNotFound)
	}
	var s *vaultapi.KVSecret
	if err := v.call(ctx, func() (err error) { s, err = v.client.KVv2(v.mount).GetVersion(ctx, path, n); return err }); err != nil {
		return sink.Record{}, v.wrap("read", path, err)
	}
	rec, err := sink.DecodeRecord(s.Data)
	if err != nil {
		return sink.Record{}, fmt.Errorf("vault %s version %d: %w", v.Location(path), n, err)
	}
	rec.Version = version
	return rec, nil
}

// read reads the secret at path from a KV mount of kvVersion.
func (v *KV) read(ctx context.Context, kvVersion int, path string) (*vaultapi.KVSecret, error) {
	var s *vaultapi.KVSecret
	var err error
	if kvVersion == 2 {
		err = v.call(ctx, func() (err error) { s, err = v.client.KVv2(v.mount).Get(ctx, path); return err })
	} else {
		err = v.call(ctx, func() (err error) { s, err = v.client.KVv1(v.mount).Get(ctx, path); return err })
	}
	if err != nil {
		return nil, v.wrap("read", path, err)
	}
	return s, nil
}

// ReadAck reads the keys a consumer acknowledged holding, beside the secret at path
// (sink.AckPath). sink.ErrNotFound when it never acknowledged.
func (v *KV) ReadAck(ctx context.Context, path, consumer string) ([]string, error) {
	kvVersion, err := v.KVVersion(ctx)
	if err != nil {
		return nil, err
	}
	p := sink.AckPath(path, consumer)
	s, err := v.read(ctx, kvVersion, p)
	if err != nil {
		return nil, err
	}
	keys, err := sink.DecodeAck(s.Data)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", v.Location(p), err)
	}
	return keys, nil
}

// ReadNeeds lists the rights reading the secret at path for a report uses: read on the
// data, and with KV v2 read on the metadata (its versions). Call it after CheckMount.
func (v *KV) ReadNeeds(path string) []vault.Need {
	needs := []vault.Need{{Path: v.dataPath(path), Capability: "read"}}
	v.mu.Lock()
	version := v.version
	v.mu.Unlock()
	if version == 2 {
		needs = append(needs, vault.Need{Path: v.metadataPath(path), Capability: "read"})
	}
	return needs
}

// Address is the Vault server's address; Mount the KV mount.
func (v *KV) Address() string { return v.client.Address() }

// Mount is the KV mount's path.
func (v *KV) Mount() string { return v.mount }

// call runs op, and once more after Recover when Vault answered 403.
func (v *KV) call(ctx context.Context, op func() error) error {
	return vault.RetryAfterRecover(ctx, v.recover, op)
}

// Listed returns the names stored directly in folder dir ("" for the mount's top), with
// one LIST request (KV v2: on the metadata path), so that a start with thousands of
// destinations reads only the secrets that exist. Sub-folders end with "/". An error (no
// list right, say) means "unknown": the caller reads each secret instead.
func (v *KV) Listed(ctx context.Context, dir string) (map[string]bool, error) {
	kvVersion, err := v.KVVersion(ctx)
	if err != nil {
		return nil, err
	}
	p := v.mount + "/" + dir
	if kvVersion == 2 {
		p = v.mount + "/metadata/" + dir
	}
	var s *vaultapi.Secret
	if err := v.call(ctx, func() (err error) { s, err = v.client.Logical().ListWithContext(ctx, p); return err }); err != nil {
		return nil, v.wrap("list", dir, err)
	}
	out := map[string]bool{}
	if s == nil || s.Data == nil {
		return out, nil // an empty folder: Vault answers 404, which the client turns into nil
	}
	keys, ok := s.Data["keys"].([]any)
	if !ok {
		return nil, fmt.Errorf("vault list %s: the answer has no keys", p)
	}
	for _, k := range keys {
		if name, ok := k.(string); ok {
			out[name] = true
		}
	}
	return out, nil
}

// Get implements rotate.Sink. A KV v2 answer must carry the version metadata that only a
// KV v2 mount sends; anything else is sink.ErrMisconfigured, never a stored secret.
func (v *KV) Get(ctx context.Context, path string) (sink.Record, error) {
	kvVersion, err := v.KVVersion(ctx)
	if err != nil {
		return sink.Record{}, err
	}
	s, err := v.read(ctx, kvVersion, path)
	if err != nil {
		return sink.Record{}, err
	}
	var version sink.Version
	if kvVersion == 2 {
		if s.VersionMetadata == nil || s.VersionMetadata.Version < 1 {
			return sink.Record{}, fmt.Errorf("vault read %s: the answer has no KV v2 version, so %s/ is not a KV v2 mount: %w", v.Location(path), v.mount, sink.ErrMisconfigured)
		}
		version = sink.Version(strconv.Itoa(s.VersionMetadata.Version))
	}
	rec, err := sink.DecodeRecord(s.Data)
	if err != nil {
		return sink.Record{}, fmt.Errorf("vault %s: %w", v.Location(path), err)
	}
	rec.Version = version
	if kvVersion == 2 && s.CustomMetadata != nil && s.CustomMetadata[sink.FieldManagedBy] == sink.ManagedBy {
		if id, ok := s.CustomMetadata[sink.FieldDestinationID].(string); ok {
			if id == rec.DestinationID {
				id = rec.DestinationID // one string kept, not two equal ones
			}
			v.described.store(path, id)
		}
	}
	return rec, nil
}

// Put implements rotate.Sink. With KV v2 and ifVersion other than sink.NoCAS the write is a
// check-and-set: it fails with sink.ErrConflict unless the current version is ifVersion (the
// zero Version: nothing stored).
// A KV v2 write counts only when Vault's answer names the version it created, which Put
// returns (the write's proof); custom_metadata refused after the secret was written is
// sink.ErrPartial. KV v1 has no versions, ignores ifVersion and returns "" (read it back).
func (v *KV) Put(ctx context.Context, path string, rec sink.Record, ifVersion sink.Version) (sink.Version, error) {
	kvVersion, err := v.KVVersion(ctx)
	if err != nil {
		return "", err
	}
	// The slot and the fencing number travel in the data, written in the same request as
	// the secret (custom_metadata is a second request, and a crash may fall between).
	data := map[string]any{}
	for k, v := range rec.Fields() {
		data[k] = v
	}
	if kvVersion == 1 {
		data[sink.FieldManagedBy] = sink.ManagedBy
		if err := v.call(ctx, func() error { return v.client.KVv1(v.mount).Put(ctx, path, data) }); err != nil {
			return "", v.wrap("write", path, err)
		}
		return "", nil // KV v1 answers nothing that proves the write: read it back
	}
	kv := v.client.KVv2(v.mount)
	var opts []vaultapi.KVOption
	if ifVersion != sink.NoCAS {
		cas := 0
		if ifVersion != "" {
			n, err := strconv.Atoi(string(ifVersion))
			if err != nil || n < 1 {
				return "", fmt.Errorf("vault write %s: check-and-set version %q is not a KV v2 version", v.Location(path), ifVersion)
			}
			cas = n
		}
		opts = append(opts, vaultapi.WithCheckAndSet(cas))
	}
	var written *vaultapi.KVSecret
	if err := v.call(ctx, func() (err error) { written, err = kv.Put(ctx, path, data, opts...); return err }); err != nil {
		switch {
		case vault.IsCASMismatch(err):
			return "", fmt.Errorf("vault write %s (check-and-set version %q): %w", v.Location(path), ifVersion, sink.ErrConflict)
		case errors.Is(err, vaultapi.ErrSecretNotFound):
			// An empty answer: what a KV v1 mount gives for a write to <mount>/data/<path>.
			err = nil
		default:
			return "", v.wrap("write", path, err)
		}
	}
	if written == nil || written.VersionMetadata == nil || written.VersionMetadata.Version < 1 {
		return "", fmt.Errorf("vault write %s: the answer names no KV v2 version, so %s/ is not a KV v2 mount and the secret is not where consumers read it: %w",
			v.Location(path), v.mount, sink.ErrMisconfigured)
	}
	// The answer names the version this write created: the proof that it is stored, with no
	// read-back.
	created := sink.Version(strconv.Itoa(written.VersionMetadata.Version))
	// custom_metadata is a separate request, needed only when it does not say rotatord's yet;
	// PatchMetadata keeps the fields it does not name.
	if id, ok := v.described.load(path); ok && id == rec.DestinationID {
		return created, nil
	}
	custom := map[string]interface{}{}
	for k, v := range rec.Metadata() {
		custom[k] = v
	}
	meta := vaultapi.KVMetadataPatchInput{CustomMetadata: custom}
	if err := v.call(ctx, func() error { return kv.PatchMetadata(ctx, path, meta) }); err != nil {
		return created, fmt.Errorf("vault %s: %w: %w", v.metadataPath(path), sink.ErrPartial, vault.Explain(err))
	}
	v.described.store(path, rec.DestinationID)
	return created, nil
}

// Mark adds fields to the custom_metadata of the secret at path (KV v2; KV v1 keeps no
// metadata: nothing is written and sink.ErrMisconfigured says so). The secret itself is not
// touched. rotatord marks a secret whose destination webhook.co no longer has.
func (v *KV) Mark(ctx context.Context, path string, fields map[string]string) error {
	version, err := v.KVVersion(ctx)
	if err != nil {
		return v.wrap("detect the KV version for", path, err)
	}
	if version != 2 {
		return fmt.Errorf("vault %s: KV v%d keeps no metadata: %w", v.Location(path), version, sink.ErrMisconfigured)
	}
	custom := map[string]interface{}{}
	for k, val := range fields {
		custom[k] = val
	}
	kv := v.client.KVv2(v.mount)
	meta := vaultapi.KVMetadataPatchInput{CustomMetadata: custom}
	if err := v.call(ctx, func() error { return kv.PatchMetadata(ctx, path, meta) }); err != nil {
		return v.wrap("patch metadata of", path, err)
	}
	return nil
}

// wrap names the path and says what kind of failure it is: sink.ErrNotFound, sink.ErrDenied (403
// after one re-login), sink.ErrMisconfigured (no such mount or path, a request the path refuses);
// anything else (Vault down, sealed, a timeout) is left unclassified: worth retrying.
func (v *KV) wrap(op, path string, err error) error {
	switch {
	case errors.Is(err, vaultapi.ErrSecretNotFound):
		return fmt.Errorf("vault %s %s: %w", op, v.Location(path), sink.ErrNotFound)
	case vault.IsPermissionDenied(err):
		return fmt.Errorf("vault %s %s: %w (%w)", op, v.Location(path), sink.ErrDenied, vault.Explain(err))
	case vault.IsNotFound(err) || vault.IsBadRequest(err):
		return fmt.Errorf("vault %s %s: %w (%w)", op, v.Location(path), sink.ErrMisconfigured, vault.Explain(err))
	}
	return fmt.Errorf("vault %s %s: %w", op, v.Location(path), vault.Explain(err))
}

// Metadata reads the KV v2 metadata of the secret at path (nil with KV v1, which keeps
// none). sink.ErrNotFound when nothing was ever stored there.
func (v *KV) Metadata(ctx context.Context, path string) (*sink.KVMetadata, error) {
	version, err := v.KVVersion(ctx)
	if err != nil || version != 2 {
		return nil, err
	}
	var md *vaultapi.KVMetadata
	if err := v.call(ctx, func() (err error) { md, err = v.client.KVv2(v.mount).GetMetadata(ctx, path); return err }); err != nil {
		return nil, v.wrap("read metadata of", path, err)
	}
	out := &sink.KVMetadata{CurrentVersion: md.CurrentVersion, OldestVersion: md.OldestVersion, MaxVersions: md.MaxVersions,
		Versions: map[int]sink.KVVersion{}, Custom: map[string]string{}}
	now := time.Now()
	for _, ver := range md.Versions {
		out.Versions[ver.Version] = sink.KVVersion{Created: ver.CreatedTime, Destroyed: ver.Destroyed,
			Deleted: !ver.DeletionTime.IsZero() && !ver.DeletionTime.After(now)}
	}
	for k, val := range md.CustomMetadata {
		if s, ok := val.(string); ok {
			out.Custom[k] = s
		}
	}
	return out, nil
}

// Preflight implements preflight.Checker: the mount's KV version against the configured
// one, then the rights each target's secret uses (Needs).
func (v *KV) Preflight(ctx context.Context, targets []preflight.Target) preflight.Readiness {
	var r preflight.Readiness
	v.mu.Lock()
	configured := v.version
	v.mu.Unlock()
	found, err := v.CheckMount(ctx)
	switch {
	case err != nil && vault.IsUnreachable(err):
		r.Unchecked = append(r.Unchecked, fmt.Errorf("vault: %w", err))
		return r
	case err != nil:
		r.Fatal = append(r.Fatal, vault.Explain(err))
		return r
	}
	how := "detected"
	if configured != 0 {
		how = strconv.Itoa(configured)
	}
	r.Facts = append(r.Facts, fmt.Sprintf("vault: KV v%d at %s/ (vault.kv.version: %s)", found, v.mount, how))
	r.Needs = make([]preflight.Need, 0, 4*len(targets))
	for _, t := range targets {
		for _, n := range v.Needs(t.Path) {
			r.Needs = append(r.Needs, preflight.Need{Need: n, For: t.Name})
		}
	}
	return r
}
