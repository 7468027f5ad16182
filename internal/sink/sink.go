// Package sink stores rotated signing secrets where their consumers read them: Vault KV
// (v2 by default, v1 supported) or files. Each backend implements the rotate.Sink contract
// (see package rotate): Get returns ErrNotFound when nothing is stored, Put replaces the
// whole record, both honour ctx and are safe for concurrent use on different paths.
package sink

import (
	"errors"
	"time"

	"github.com/rotatord/rotatord/internal/secret"
)

// Sentinel errors.
var (
	// ErrNotFound is returned by Get when no secret is stored at the path.
	ErrNotFound = errors.New("no secret stored")
	// ErrConflict is returned by Put when the stored version is no longer the expected one
	// (KV v2 check-and-set): someone wrote in between; read again and decide again.
	ErrConflict = errors.New("the stored secret changed since it was read")
)

// NoCAS makes Put write unconditionally.
const NoCAS = -1

// ManagedBy is stored with every secret so operators can tell who wrote it.
const ManagedBy = "rotatord"

// Field names of a stored secret (KV data keys and file JSON keys).
const (
	FieldSigningSecret = "signing_secret"
	FieldKeyID         = "key_id"
	FieldDestinationID = "destination_id"
	FieldRotatedAt     = "rotated_at"
	FieldManagedBy     = "managed_by"
)

// Record is one stored signing secret.
type Record struct {
	DestinationID string
	KeyID         string
	Secret        secret.Value
	RotatedAt     time.Time
	// Version is the KV v2 version Get read (0 for other sinks, or when nothing is stored).
	Version int
}

// Same reports whether r and o hold the same key: the read-back check after a write.
func (r Record) Same(o Record) bool {
	return r.DestinationID == o.DestinationID && r.KeyID == o.KeyID && r.Secret.Equal(o.Secret) && r.RotatedAt.Equal(o.RotatedAt)
}

// formatTime writes rotated_at as RFC 3339 in UTC with the precision a read-back compares.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
