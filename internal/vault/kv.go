package vault

import (
	"context"
	"fmt"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
)

// DetectKVVersion reads the KV version of mount from Vault (sys/internal/ui/mounts, which
// every token may read for the mounts it can use). It returns 1 or 2.
func DetectKVVersion(ctx context.Context, client *vaultapi.Client, mount string) (int, error) {
	mount = strings.Trim(mount, "/")
	s, err := client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+mount)
	if err != nil {
		return 0, fmt.Errorf("vault: detect the KV version of %s/: %w", mount, Explain(err))
	}
	if s == nil || s.Data == nil {
		return 0, fmt.Errorf("vault: no mount at %s/ (or the token may not use it)", mount)
	}
	if t, _ := s.Data["type"].(string); t != "kv" && t != "generic" {
		return 0, fmt.Errorf("vault: %s/ is a %q mount, not kv", mount, t)
	}
	opts, _ := s.Data["options"].(map[string]any)
	if v, _ := opts["version"].(string); v == "2" {
		return 2, nil
	}
	return 1, nil
}
