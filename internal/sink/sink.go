// Package sink stores rotated signing secrets where their consumers read them: Vault KV
// (v2 by default, v1 supported) or files. Each backend implements the rotate.Sink contract
// (see package rotate): Get returns ErrNotFound when nothing is stored, Put replaces the
// whole record, both honour ctx and are safe for concurrent use on different paths.
package sink

import (
	"context"
	"errors"
	"strconv"
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
	// ErrDenied marks a refusal of this identity (Vault's 403 after a fresh login, a file
	// the process may not write): retrying will not help until someone fixes the rights.
	ErrDenied = errors.New("permission denied")
	// ErrMisconfigured marks a sink that cannot be right as configured (no such mount, a KV
	// version other than the configured one, a path the backend refuses): retrying will not
	// help until the config or the backend is fixed.
	ErrMisconfigured = errors.New("misconfigured")
	// ErrPartial is returned by Put when the secret was stored but its description was not
	// (KV v2 custom_metadata refused): the secret is there; the metadata is not.
	ErrPartial = errors.New("secret stored, its custom_metadata not")
)

// Version is a sink's opaque version of what is stored at a path: what Get read, handed
// back to Put for a check-and-set. Backends give it their own meaning (Vault KV v2: the
// version number; a Kubernetes Secret: its resourceVersion); callers only compare and pass
// it on. The zero Version stands for "nothing stored"; a sink without versions (KV v1,
// files) returns it from every Get and ignores it in Put.
type Version string

// NoCAS makes Put write unconditionally.
const NoCAS Version = "*"

// ManagedBy is stored with every secret so operators can tell who wrote it.
const ManagedBy = "rotatord"

// Field names of a stored secret (KV data keys and file JSON keys).
const (
	FieldSigningSecret = "signing_secret"
	FieldKeyID         = "key_id"
	FieldDestinationID = "destination_id"
	FieldRotatedAt     = "rotated_at"
	FieldManagedBy     = "managed_by"
	// FieldSlot is the schedule time the rotation stood for (absent for manual rotations):
	// a replica that finds its slot already stored skips it.
	FieldSlot = "slot"
	// FieldLeaseFence is the fencing number of the lease under which the key was minted
	// (absent without Vault coordination): a write with a lower number is refused.
	FieldLeaseFence = "lease_fence"
)

// Record is one stored signing secret.
type Record struct {
	DestinationID string
	KeyID         string
	Secret        secret.Value
	RotatedAt     time.Time
	// Slot is the schedule time the rotation stood for; zero for manual and drift rotations.
	Slot time.Time
	// Fence is the fencing number of the lease the key was minted under; 0 without one.
	Fence int64
	// Version is what Get read, for a later check-and-set Put ("" for sinks without
	// versions, or when nothing is stored).
	Version Version
	// History names the keys stored (or lost) before this one, without their secrets.
	History History
}

// Same reports whether r and o hold the same key: the read-back check after a write. The
// history describes earlier keys and is not compared.
func (r Record) Same(o Record) bool {
	return r.DestinationID == o.DestinationID && r.KeyID == o.KeyID && r.Secret.Equal(o.Secret) &&
		r.RotatedAt.Equal(o.RotatedAt) && r.Slot.Equal(o.Slot) && r.Fence == o.Fence
}

// Fields are the stored data fields of r (without managed_by), the optional ones only when
// set: the one encoding every backend stores, and DecodeRecord reads.
func (r Record) Fields() map[string]string {
	m := map[string]string{
		FieldSigningSecret: r.Secret.Reveal(),
		FieldKeyID:         r.KeyID,
		FieldDestinationID: r.DestinationID,
		FieldRotatedAt:     FormatTime(r.RotatedAt),
	}
	r.addCoordination(m)
	if len(r.History.Entries) > 0 {
		m[FieldHistory] = r.History.String()
	}
	return m
}

// addCoordination adds the slot and the fencing number to m, when set.
func (r Record) addCoordination(m map[string]string) {
	if !r.Slot.IsZero() {
		m[FieldSlot] = FormatTime(r.Slot)
	}
	if r.Fence > 0 {
		m[FieldLeaseFence] = strconv.FormatInt(r.Fence, 10)
	}
}

// Metadata are the fields that say what the secret is without reading it (KV v2
// custom_metadata): who manages it and for which destination. They do not change from one
// rotation to the next, so they are written once, not with every rotation (the key id and
// times are in the data, written in the same request as the secret).
func (r Record) Metadata() map[string]string {
	return map[string]string{
		FieldDestinationID: r.DestinationID,
		FieldManagedBy:     ManagedBy,
	}
}

// FormatTime writes rotated_at as RFC 3339 in UTC with the precision a read-back compares.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// appendTime appends FormatTime(t) to b.
func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, time.RFC3339Nano) }

// Sink stores secrets. The contract every implementation keeps:
//   - Get returns the record at path, or an error wrapping ErrNotFound when there is none;
//   - Put replaces the record at path as a whole; a later Get returns exactly what was put;
//   - both honour ctx, never log or return the secret in an error, and are safe for
//     concurrent use on different paths (the rotator never uses one path concurrently).
//
// It lives here, beside the records it stores; internal/rotate uses it as rotate.Sink.
type Sink interface {
	Name() string
	Location(path string) string
	Get(ctx context.Context, path string) (Record, error)
	// Put with ifVersion other than NoCAS is a check-and-set where the sink has
	// versions (KV v2): it fails with an error wrapping ErrConflict unless the stored
	// version is ifVersion (the zero Version: nothing stored). A sink without versions
	// ignores it. A version is opaque: what Get read in Record.Version, handed back.
	// Put returns the version the write created when the sink's answer proves the write
	// (KV v2); "" means no proof: the rotator reads the secret back.
	Put(ctx context.Context, path string, rec Record, ifVersion Version) (Version, error)
}
