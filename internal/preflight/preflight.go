// Package preflight is what a backend (a sink, a lease) says before anything is minted:
// whether it can do its work for the destinations to rotate, and which Vault rights it
// uses. The assembly (internal/app) asks every backend the same question and asks Vault
// once for all the rights; no code outside a backend's own package needs to know which
// backend it is.
package preflight

import (
	"context"

	"github.com/rotatord/rotatord/internal/vault"
)

// Target is one destination a backend is checked for.
type Target struct {
	Name, ID string
	// Path is the destination's path in the sink (vault_path or path).
	Path string
}

// Need is one Vault right a backend uses, for one destination (For, its name) or for
// every destination (For "": the token cannot do without it).
type Need struct {
	vault.Need
	For string
}

// Readiness is what one backend found.
type Readiness struct {
	// Fatal are problems no destination can rotate past; Unchecked what could not be asked
	// (the backend's server did not answer in time).
	Fatal, Unchecked []error
	// Blocked are the targets this backend cannot serve, by name.
	Blocked map[string]error
	// Needs are the Vault rights the backend uses, asked for with every other backend's in
	// one capabilities request.
	Needs []Need
	// Facts are lines for `rotatord check` that are true whatever else was found (the KV
	// version of the mount); Ready lines are said only when nothing was fatal or unchecked.
	Facts, Ready []string
}

// Checker is a backend that can say whether it is ready. Every sink and lease backend
// implements it.
type Checker interface {
	Preflight(ctx context.Context, targets []Target) Readiness
}
