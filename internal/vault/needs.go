package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	vaultapi "github.com/hashicorp/vault/api"
)

// Need is one capability that one of rotatord's requests needs on one Vault API path. The
// components that make requests (sink, lease, login) list their needs from the same path
// functions their requests use, so a preflight asks about exactly what will be used.
type Need struct {
	Path       string
	Capability string
}

// String reads "update on secret/data/webhookco/billing".
func (n Need) String() string { return n.Capability + " on " + n.Path }

// CapabilitiesPath is the endpoint that answers which capabilities the token has; asking
// needs update on it.
const CapabilitiesPath = "sys/capabilities-self"

// pathsPerRequest bounds the paths of one capabilities request: a fleet of thousands of
// destinations is asked in a few requests of bounded size, not one per path.
const pathsPerRequest = 500

// Missing asks Vault which of needs the client's token lacks, in one request per
// pathsPerRequest paths. recover, when set, gets one chance to replace a token that is no
// longer valid.
func Missing(ctx context.Context, client *vaultapi.Client, recover func(context.Context) error, needs []Need) ([]Need, error) {
	seen := map[string]bool{}
	var paths []string
	for _, n := range needs {
		if !seen[n.Path] {
			seen[n.Path] = true
			paths = append(paths, n.Path)
		}
	}
	// The batches go four at a time: a fleet of 10,000 destinations asks about 20,000 paths.
	have := map[string]any{}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	slots := make(chan struct{}, 4)
	for batch := range slices.Chunk(paths, pathsPerRequest) {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			var s *vaultapi.Secret
			err := RetryAfterRecover(ctx, recover, func() (err error) {
				s, err = client.Logical().WriteWithContext(ctx, CapabilitiesPath, map[string]any{"paths": batch})
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = fmt.Errorf("vault: ask which rights the token has (needs update on %s): %w", CapabilitiesPath, Explain(err))
			case err == nil && s == nil && firstErr == nil:
				firstErr = fmt.Errorf("vault: %s answered nothing", CapabilitiesPath)
			case err == nil && s != nil:
				for _, p := range batch {
					have[p] = s.Data[p]
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	var missing []Need
	for _, n := range needs {
		caps := capabilities(have[n.Path])
		if !slices.Contains(caps, "root") && !slices.Contains(caps, n.Capability) {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// capabilities reads one path's entry of a capabilities-self answer.
func capabilities(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, c := range list {
		switch c := c.(type) {
		case string:
			out = append(out, c)
		case json.Number:
			out = append(out, c.String())
		}
	}
	return out
}

// TokenNeeds are what keeping a token valid uses: looking it up (token method, and the 403
// recovery of every method) and renewing it.
func TokenNeeds() []Need {
	return []Need{{Path: "auth/token/lookup-self", Capability: "read"}, {Path: "auth/token/renew-self", Capability: "update"}}
}
