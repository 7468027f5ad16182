package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/secret"
)

// VaultOptions configure a Vault sink.
type VaultOptions struct {
	Client *vaultapi.Client
	// Mount is the KV secrets engine's mount path, e.g. "secret".
	Mount string
	// Version is the KV version, 1 or 2.
	Version int
}

// Vault stores secrets in a Vault KV mount. KV v2 data holds signing_secret, key_id,
// destination_id and rotated_at (so what must be atomic is written in one request);
// custom_metadata repeats destination_id, key_id and rotated_at with managed_by=rotatord.
type Vault struct {
	client  *vaultapi.Client
	mount   string
	version int
}

// NewVault validates opts.
func NewVault(opts VaultOptions) (*Vault, error) {
	if opts.Client == nil {
		return nil, errors.New("vault sink: no client")
	}
	if opts.Version != 1 && opts.Version != 2 {
		return nil, fmt.Errorf("vault sink: KV version %d: want 1 or 2", opts.Version)
	}
	mount := strings.Trim(opts.Mount, "/")
	if mount == "" {
		return nil, errors.New("vault sink: no KV mount")
	}
	return &Vault{client: opts.Client, mount: mount, version: opts.Version}, nil
}

// Name implements rotate.Sink.
func (v *Vault) Name() string { return fmt.Sprintf("vault_kv%d", v.version) }

// Location implements rotate.Sink: the API path of the secret, for logs.
func (v *Vault) Location(path string) string {
	if v.version == 2 {
		return v.mount + "/data/" + path
	}
	return v.mount + "/" + path
}

// Get implements rotate.Sink.
func (v *Vault) Get(ctx context.Context, path string) (Record, error) {
	var data map[string]any
	var version int
	if v.version == 2 {
		s, err := v.client.KVv2(v.mount).Get(ctx, path)
		if err != nil {
			return Record{}, v.wrap("read", path, err)
		}
		data = s.Data
		if s.VersionMetadata != nil {
			version = s.VersionMetadata.Version
		}
	} else {
		s, err := v.client.KVv1(v.mount).Get(ctx, path)
		if err != nil {
			return Record{}, v.wrap("read", path, err)
		}
		data = s.Data
	}
	rec, err := recordFromMap(data)
	if err != nil {
		return Record{}, fmt.Errorf("vault %s: %w", v.Location(path), err)
	}
	rec.Version = version
	return rec, nil
}

// Put implements rotate.Sink. With KV v2 and ifVersion >= 0 the write is a check-and-set:
// it fails with ErrConflict unless the current version is ifVersion (0: nothing stored).
// KV v1 has no versions and ignores ifVersion.
func (v *Vault) Put(ctx context.Context, path string, rec Record, ifVersion int) error {
	data := map[string]any{
		FieldSigningSecret: rec.Secret.Reveal(),
		FieldKeyID:         rec.KeyID,
		FieldDestinationID: rec.DestinationID,
		FieldRotatedAt:     formatTime(rec.RotatedAt),
	}
	if v.version == 1 {
		data[FieldManagedBy] = ManagedBy
		if err := v.client.KVv1(v.mount).Put(ctx, path, data); err != nil {
			return v.wrap("write", path, err)
		}
		return nil
	}
	kv := v.client.KVv2(v.mount)
	var opts []vaultapi.KVOption
	if ifVersion >= 0 {
		opts = append(opts, vaultapi.WithCheckAndSet(ifVersion))
	}
	if _, err := kv.Put(ctx, path, data, opts...); err != nil {
		if isCASMismatch(err) {
			return fmt.Errorf("vault write %s (check-and-set version %d): %w", v.Location(path), ifVersion, ErrConflict)
		}
		return v.wrap("write", path, err)
	}
	// custom_metadata is a separate request; PatchMetadata keeps the fields it does not name.
	meta := vaultapi.KVMetadataPatchInput{CustomMetadata: map[string]interface{}{
		FieldDestinationID: rec.DestinationID,
		FieldKeyID:         rec.KeyID,
		FieldRotatedAt:     formatTime(rec.RotatedAt),
		FieldManagedBy:     ManagedBy,
	}}
	if err := kv.PatchMetadata(ctx, path, meta); err != nil {
		return fmt.Errorf("vault %s: secret written, custom_metadata not: %w", v.mount+"/metadata/"+path, err)
	}
	return nil
}

// isCASMismatch recognises KV v2's answer to a check-and-set that did not match: HTTP 400.
func isCASMismatch(err error) bool {
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "check-and-set") {
			return true
		}
	}
	return false
}

// wrap names the path and maps "not found" to ErrNotFound.
func (v *Vault) wrap(op, path string, err error) error {
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return fmt.Errorf("vault %s %s: %w", op, v.Location(path), ErrNotFound)
	}
	return fmt.Errorf("vault %s %s: %w", op, v.Location(path), err)
}

// recordFromMap parses the stored fields; errors name the field, never the secret.
func recordFromMap(data map[string]any) (Record, error) {
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
	rec.Secret = secret.New(sec)
	return rec, nil
}

// NewVaultClient builds a Vault API client from the config, with Vault's usual environment
// variables (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_TOKEN) as fallback for empty
// fields. The token is read from vault.token_file when set.
func NewVaultClient(c config.Vault, getenv func(string) string) (*vaultapi.Client, error) {
	conf := vaultapi.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY, …
	if conf.Error != nil {
		return nil, fmt.Errorf("vault config from environment: %w", conf.Error)
	}
	if c.Address != "" {
		conf.Address = c.Address
	} else if getenv("VAULT_ADDR") == "" {
		return nil, errors.New("vault: no address: set vault.address or VAULT_ADDR")
	}
	if c.CACert != "" {
		if err := conf.ConfigureTLS(&vaultapi.TLSConfig{CACert: c.CACert}); err != nil {
			return nil, fmt.Errorf("vault.ca_cert %s: %w", c.CACert, err)
		}
	}
	client, err := vaultapi.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	switch {
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read vault.token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("vault.token_file %s is empty", c.TokenFile)
		}
		client.SetToken(tok)
	case getenv("VAULT_TOKEN") != "":
		client.SetToken(strings.TrimSpace(getenv("VAULT_TOKEN")))
	default:
		return nil, errors.New("vault: no token: set vault.token_file or VAULT_TOKEN")
	}
	return client, nil
}

// ProbeWrite asks Vault which capabilities the client's token lacks to store a secret at
// path: create, update and read on the data path, and for KV v2 patch on the metadata path
// (custom_metadata is written with PATCH). It is the preflight of `rotatord check --online`.
func (v *Vault) ProbeWrite(ctx context.Context, path string) ([]string, error) {
	missing, err := v.missingCaps(ctx, v.Location(path), "create", "update", "read")
	if err != nil || v.version == 1 {
		return missing, err
	}
	metaPath := v.mount + "/metadata/" + path
	metaMissing, err := v.missingCaps(ctx, metaPath, "patch")
	for _, c := range metaMissing {
		missing = append(missing, c+" on "+metaPath)
	}
	return missing, err
}

func (v *Vault) missingCaps(ctx context.Context, apiPath string, want ...string) ([]string, error) {
	caps, err := v.client.Sys().CapabilitiesSelfWithContext(ctx, apiPath)
	if err != nil {
		return nil, fmt.Errorf("vault capabilities of %s: %w", apiPath, err)
	}
	have := map[string]bool{}
	for _, c := range caps {
		have[c] = true
	}
	if have["root"] {
		return nil, nil
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	return missing, nil
}
