package vault

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
)

// Transit signs and verifies digests with a key of Vault's transit secrets engine (a
// signing key type: ed25519, ecdsa-p256, rsa-2048 …). The key never leaves Vault.
type Transit struct {
	Client *vaultapi.Client
	// Mount and Key name the key: <Mount>/keys/<Key>.
	Mount, Key string
	Recover    func(context.Context) error
}

// ParseTransitKey reads "[MOUNT/]NAME" (MOUNT defaults to transit).
func ParseTransitKey(s string) (mount, key string, err error) {
	s = strings.Trim(s, "/")
	i := strings.LastIndexByte(s, '/')
	mount, key = "transit", s
	if i >= 0 {
		mount, key = s[:i], s[i+1:]
	}
	if key == "" || mount == "" || strings.ContainsAny(s, " ?#") {
		return "", "", fmt.Errorf("transit key %q: want NAME or MOUNT/NAME", s)
	}
	return mount, key, nil
}

// Name is MOUNT/NAME.
func (t Transit) Name() string { return t.Mount + "/" + t.Key }

// SignNeed is the right signing uses.
func (t Transit) SignNeed() Need { return Need{Path: t.Mount + "/sign/" + t.Key, Capability: "update"} }

// Sign signs digest and returns Vault's signature ("vault:v1:…").
func (t Transit) Sign(ctx context.Context, digest []byte) (string, error) {
	var s *vaultapi.Secret
	err := RetryAfterRecover(ctx, t.Recover, func() (err error) {
		s, err = t.Client.Logical().WriteWithContext(ctx, t.Mount+"/sign/"+t.Key, map[string]any{"input": base64.StdEncoding.EncodeToString(digest)})
		return err
	})
	if err != nil {
		return "", Explain(err)
	}
	var sig string
	if s != nil {
		sig, _ = s.Data["signature"].(string)
	}
	if sig == "" {
		return "", fmt.Errorf("vault %s/sign/%s answered no signature", t.Mount, t.Key)
	}
	return sig, nil
}

// Verify reports whether signature is this key's signature of digest.
func (t Transit) Verify(ctx context.Context, digest []byte, signature string) (bool, error) {
	var s *vaultapi.Secret
	err := RetryAfterRecover(ctx, t.Recover, func() (err error) {
		s, err = t.Client.Logical().WriteWithContext(ctx, t.Mount+"/verify/"+t.Key, map[string]any{
			"input": base64.StdEncoding.EncodeToString(digest), "signature": signature})
		return err
	})
	if err != nil {
		return false, Explain(err)
	}
	var valid, ok bool
	if s != nil {
		valid, ok = s.Data["valid"].(bool)
	}
	if !ok {
		return false, fmt.Errorf("vault %s/verify/%s answered no verdict", t.Mount, t.Key)
	}
	return valid, nil
}
