package sink

// The record's own encoding, read back (every backend stores Record.Fields and reads them
// with DecodeRecord), and what a versioned backend keeps about past versions.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rotatord/rotatord/internal/secret"
)

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
