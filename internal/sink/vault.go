package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/vault"
)

// VaultOptions configure a Vault sink.
type VaultOptions struct {
	Client *vaultapi.Client
	// Mount is the KV secrets engine's mount path, e.g. "secret".
	Mount string
	// Version is the KV version, 1 or 2; 0 detects it from the mount on first use.
	Version int
	// Recover, when set, is called once when Vault answers 403: if it returns nil (a new
	// token is in place), the request is retried once.
	Recover func(ctx context.Context) error
}

// Vault stores secrets in a Vault KV mount. KV v2 data holds signing_secret, key_id,
// destination_id and rotated_at (so what must be atomic is written in one request);
// custom_metadata repeats destination_id, key_id and rotated_at with managed_by=rotatord.
type Vault struct {
	client  *vaultapi.Client
	mount   string
	recover func(ctx context.Context) error

	mu      sync.Mutex
	version int // 0 until detected
	// described holds the paths whose custom_metadata is known to be rotatord's (read, or
	// written by this process), with the destination id it names: not patched again.
	described sync.Map
}

// NewVault validates opts.
func NewVault(opts VaultOptions) (*Vault, error) {
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
	return &Vault{client: opts.Client, mount: mount, version: opts.Version, recover: opts.Recover}, nil
}

// Name implements rotate.Sink.
func (v *Vault) Name() string { return "vault" }

// KVVersion returns the mount's KV version, detecting it on first use.
func (v *Vault) KVVersion(ctx context.Context) (int, error) {
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
// with ErrMisconfigured when it is not the configured one (vault.kv.version): a KV v2 sink
// writing to a KV v1 mount would store every secret at a path no consumer reads. It
// returns the version in use. Run it before the first rotation (start-up, check --online).
func (v *Vault) CheckMount(ctx context.Context) (int, error) {
	var found int
	err := v.call(ctx, func() (err error) { found, err = vault.DetectKVVersion(ctx, v.client, v.mount); return err })
	if err != nil {
		return 0, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.version != 0 && v.version != found {
		return 0, fmt.Errorf("vault.kv.version is %d, but %s/ is a KV v%d mount: set vault.kv.version to %d (or leave it out to detect it), or point vault.kv.mount at a KV v%d mount: %w",
			v.version, v.mount, found, found, v.version, ErrMisconfigured)
	}
	v.version = found
	return found, nil
}

// Location implements rotate.Sink: the API path of the secret, for logs.
func (v *Vault) Location(path string) string { return v.dataPath(path) }

// dataPath is the API path that holds the secret (every read and write of it).
func (v *Vault) dataPath(path string) string {
	v.mu.Lock()
	version := v.version
	v.mu.Unlock()
	if version == 2 {
		return v.mount + "/data/" + path
	}
	return v.mount + "/" + path
}

// metadataPath is the KV v2 API path of the secret's custom_metadata.
func (v *Vault) metadataPath(path string) string { return v.mount + "/metadata/" + path }

// Needs lists the capabilities that storing a secret at path uses: create (the first write),
// update (later writes) and read (the stale-write check, the read-back) on the data path,
// and with KV v2 patch on the metadata path (custom_metadata). Call it after CheckMount.
func (v *Vault) Needs(path string) []vault.Need {
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
func (v *Vault) GetVersion(ctx context.Context, path string, version Version) (Record, error) {
	kv, err := v.KVVersion(ctx)
	if err != nil {
		return Record{}, err
	}
	n, err := strconv.Atoi(string(version))
	if kv != 2 || err != nil || n < 1 {
		return Record{}, fmt.Errorf("vault %s: version %q: %w", v.Location(path), version, ErrNotFound)
	}
	var s *vaultapi.KVSecret
	if err := v.call(ctx, func() (err error) { s, err = v.client.KVv2(v.mount).GetVersion(ctx, path, n); return err }); err != nil {
		return Record{}, v.wrap("read", path, err)
	}
	rec, err := DecodeRecord(s.Data)
	if err != nil {
		return Record{}, fmt.Errorf("vault %s version %d: %w", v.Location(path), n, err)
	}
	rec.Version = version
	return rec, nil
}

// read reads the secret at path from a KV mount of kvVersion.
func (v *Vault) read(ctx context.Context, kvVersion int, path string) (*vaultapi.KVSecret, error) {
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
// (AckPath). ErrNotFound when it never acknowledged.
func (v *Vault) ReadAck(ctx context.Context, path, consumer string) ([]string, error) {
	kvVersion, err := v.KVVersion(ctx)
	if err != nil {
		return nil, err
	}
	p := AckPath(path, consumer)
	s, err := v.read(ctx, kvVersion, p)
	if err != nil {
		return nil, err
	}
	keys, err := DecodeAck(s.Data)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", v.Location(p), err)
	}
	return keys, nil
}

// ReadNeeds lists the rights reading the secret at path for a report uses: read on the
// data, and with KV v2 read on the metadata (its versions). Call it after CheckMount.
func (v *Vault) ReadNeeds(path string) []vault.Need {
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
func (v *Vault) Address() string { return v.client.Address() }

// Mount is the KV mount's path.
func (v *Vault) Mount() string { return v.mount }

// call runs op, and once more after Recover when Vault answered 403.
func (v *Vault) call(ctx context.Context, op func() error) error {
	return vault.RetryAfterRecover(ctx, v.recover, op)
}

// Listed returns the names stored directly in folder dir ("" for the mount's top), with
// one LIST request (KV v2: on the metadata path), so that a start with thousands of
// destinations reads only the secrets that exist. Sub-folders end with "/". An error (no
// list right, say) means "unknown": the caller reads each secret instead.
func (v *Vault) Listed(ctx context.Context, dir string) (map[string]bool, error) {
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
// KV v2 mount sends; anything else is ErrMisconfigured, never a stored secret.
func (v *Vault) Get(ctx context.Context, path string) (Record, error) {
	kvVersion, err := v.KVVersion(ctx)
	if err != nil {
		return Record{}, err
	}
	s, err := v.read(ctx, kvVersion, path)
	if err != nil {
		return Record{}, err
	}
	var version Version
	if kvVersion == 2 {
		if s.VersionMetadata == nil || s.VersionMetadata.Version < 1 {
			return Record{}, fmt.Errorf("vault read %s: the answer has no KV v2 version, so %s/ is not a KV v2 mount: %w", v.Location(path), v.mount, ErrMisconfigured)
		}
		version = Version(strconv.Itoa(s.VersionMetadata.Version))
	}
	rec, err := DecodeRecord(s.Data)
	if err != nil {
		return Record{}, fmt.Errorf("vault %s: %w", v.Location(path), err)
	}
	rec.Version = version
	if kvVersion == 2 && s.CustomMetadata != nil && s.CustomMetadata[FieldManagedBy] == ManagedBy {
		if id, ok := s.CustomMetadata[FieldDestinationID].(string); ok {
			v.described.Store(path, id)
		}
	}
	return rec, nil
}

// Put implements rotate.Sink. With KV v2 and ifVersion other than NoCAS the write is a
// check-and-set: it fails with ErrConflict unless the current version is ifVersion (the
// zero Version: nothing stored).
// A KV v2 write counts only when Vault's answer names the version it created, which Put
// returns (the write's proof); custom_metadata refused after the secret was written is
// ErrPartial. KV v1 has no versions, ignores ifVersion and returns "" (read it back).
func (v *Vault) Put(ctx context.Context, path string, rec Record, ifVersion Version) (Version, error) {
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
		data[FieldManagedBy] = ManagedBy
		if err := v.call(ctx, func() error { return v.client.KVv1(v.mount).Put(ctx, path, data) }); err != nil {
			return "", v.wrap("write", path, err)
		}
		return "", nil // KV v1 answers nothing that proves the write: read it back
	}
	kv := v.client.KVv2(v.mount)
	var opts []vaultapi.KVOption
	if ifVersion != NoCAS {
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
			return "", fmt.Errorf("vault write %s (check-and-set version %q): %w", v.Location(path), ifVersion, ErrConflict)
		case errors.Is(err, vaultapi.ErrSecretNotFound):
			// An empty answer: what a KV v1 mount gives for a write to <mount>/data/<path>.
			err = nil
		default:
			return "", v.wrap("write", path, err)
		}
	}
	if written == nil || written.VersionMetadata == nil || written.VersionMetadata.Version < 1 {
		return "", fmt.Errorf("vault write %s: the answer names no KV v2 version, so %s/ is not a KV v2 mount and the secret is not where consumers read it: %w",
			v.Location(path), v.mount, ErrMisconfigured)
	}
	// The answer names the version this write created: the proof that it is stored, with no
	// read-back.
	created := Version(strconv.Itoa(written.VersionMetadata.Version))
	// custom_metadata is a separate request, needed only when it does not say rotatord's yet;
	// PatchMetadata keeps the fields it does not name.
	if id, ok := v.described.Load(path); ok && id == rec.DestinationID {
		return created, nil
	}
	custom := map[string]interface{}{}
	for k, v := range rec.Metadata() {
		custom[k] = v
	}
	meta := vaultapi.KVMetadataPatchInput{CustomMetadata: custom}
	if err := v.call(ctx, func() error { return kv.PatchMetadata(ctx, path, meta) }); err != nil {
		return created, fmt.Errorf("vault %s: %w: %w", v.metadataPath(path), ErrPartial, vault.Explain(err))
	}
	v.described.Store(path, rec.DestinationID)
	return created, nil
}

// Mark adds fields to the custom_metadata of the secret at path (KV v2; KV v1 keeps no
// metadata: nothing is written and ErrMisconfigured says so). The secret itself is not
// touched. rotatord marks a secret whose destination webhook.co no longer has.
func (v *Vault) Mark(ctx context.Context, path string, fields map[string]string) error {
	version, err := v.KVVersion(ctx)
	if err != nil {
		return v.wrap("detect the KV version for", path, err)
	}
	if version != 2 {
		return fmt.Errorf("vault %s: KV v%d keeps no metadata: %w", v.Location(path), version, ErrMisconfigured)
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

// wrap names the path and says what kind of failure it is: ErrNotFound, ErrDenied (403
// after one re-login), ErrMisconfigured (no such mount or path, a request the path refuses);
// anything else (Vault down, sealed, a timeout) is left unclassified: worth retrying.
func (v *Vault) wrap(op, path string, err error) error {
	switch {
	case errors.Is(err, vaultapi.ErrSecretNotFound):
		return fmt.Errorf("vault %s %s: %w", op, v.Location(path), ErrNotFound)
	case vault.IsPermissionDenied(err):
		return fmt.Errorf("vault %s %s: %w (%w)", op, v.Location(path), ErrDenied, vault.Explain(err))
	case vault.IsNotFound(err) || vault.IsBadRequest(err):
		return fmt.Errorf("vault %s %s: %w (%w)", op, v.Location(path), ErrMisconfigured, vault.Explain(err))
	}
	return fmt.Errorf("vault %s %s: %w", op, v.Location(path), vault.Explain(err))
}

// DecodeRecord reads what Record.Fields wrote (and managed_by, ignored); errors name the
// field, never the secret. A backend in its own package stores and reads records with it.
func DecodeRecord(data map[string]any) (Record, error) {
	str := func(k string) (string, error) {
		v, ok := data[k].(string)
		if !ok || v == "" {
			return "", fmt.Errorf("stored secret lacks the string field %q (not written by rotatord?)", k)
		}
		return v, nil
	}
	var rec Record
	var err error
	var sec, at string
	if sec, err = str(FieldSigningSecret); err != nil {
		return Record{}, err
	}
	if rec.KeyID, err = str(FieldKeyID); err != nil {
		return Record{}, err
	}
	if rec.DestinationID, err = str(FieldDestinationID); err != nil {
		return Record{}, err
	}
	if at, err = str(FieldRotatedAt); err != nil {
		return Record{}, err
	}
	if rec.RotatedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return Record{}, fmt.Errorf("stored %s %q is not RFC 3339", FieldRotatedAt, at)
	}
	if v, ok := data[FieldSlot].(string); ok && v != "" {
		if rec.Slot, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return Record{}, fmt.Errorf("stored %s %q is not RFC 3339", FieldSlot, v)
		}
	}
	if v, ok := data[FieldLeaseFence].(string); ok && v != "" {
		if rec.Fence, err = strconv.ParseInt(v, 10, 64); err != nil || rec.Fence < 0 {
			return Record{}, fmt.Errorf("stored %s %q is not a non-negative integer", FieldLeaseFence, v)
		}
	}
	if v, ok := data[FieldHistory].(string); ok && v != "" {
		if rec.History, err = ParseHistory(v); err != nil {
			// The secret still serves; the next write starts the history again.
			rec.History = History{Unreadable: err.Error()}
		}
	}
	rec.Secret = secret.New(sec)
	return rec, nil
}

// KVMetadata is what KV v2 keeps about a secret's versions, without their data.
type KVMetadata struct {
	CurrentVersion, OldestVersion, MaxVersions int
	Versions                                   map[int]KVVersion
	Custom                                     map[string]string
}

// KVVersion is one version's state.
type KVVersion struct {
	Created   time.Time
	Deleted   bool // soft-deleted (deletion_time set and passed)
	Destroyed bool
}

// State names what became of version v: current, kept, deleted, destroyed, or pruned (no
// longer kept: beyond max_versions, or its metadata deleted). "" when m or v is unknown.
func (m *KVMetadata) State(v Version) string {
	n, err := strconv.Atoi(string(v))
	if m == nil || err != nil {
		return ""
	}
	ver, ok := m.Versions[n]
	switch {
	case !ok:
		return "pruned"
	case ver.Destroyed:
		return "destroyed"
	case ver.Deleted:
		return "deleted"
	case n == m.CurrentVersion:
		return "current"
	}
	return "kept"
}

// Metadata reads the KV v2 metadata of the secret at path (nil with KV v1, which keeps
// none). ErrNotFound when nothing was ever stored there.
func (v *Vault) Metadata(ctx context.Context, path string) (*KVMetadata, error) {
	version, err := v.KVVersion(ctx)
	if err != nil || version != 2 {
		return nil, err
	}
	var md *vaultapi.KVMetadata
	if err := v.call(ctx, func() (err error) { md, err = v.client.KVv2(v.mount).GetMetadata(ctx, path); return err }); err != nil {
		return nil, v.wrap("read metadata of", path, err)
	}
	out := &KVMetadata{CurrentVersion: md.CurrentVersion, OldestVersion: md.OldestVersion, MaxVersions: md.MaxVersions,
		Versions: map[int]KVVersion{}, Custom: map[string]string{}}
	now := time.Now()
	for _, ver := range md.Versions {
		out.Versions[ver.Version] = KVVersion{Created: ver.CreatedTime, Destroyed: ver.Destroyed,
			Deleted: !ver.DeletionTime.IsZero() && !ver.DeletionTime.After(now)}
	}
	for k, val := range md.CustomMetadata {
		if s, ok := val.(string); ok {
			out.Custom[k] = s
		}
	}
	return out, nil
}
