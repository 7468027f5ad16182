package sink

// A stored record's history: the keys rotatord handled for the destination before the one
// stored, without their secrets. It travels in the data rotatord already writes (one field,
// no extra request), so it survives restarts, replicas and KV v2's max_versions, and the
// file sink and KV v1 keep it too. `rotatord report` reads it to tell a key rotatord minted
// from one minted elsewhere.

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// FieldHistory is the data field that holds a record's History.
const FieldHistory = "history"

// HistoryLength is how many earlier keys a stored record names at most: a year and more of
// weekly rotations, about 4.5 KB. Older entries are dropped, and History.Since says from
// when the record is complete.
const HistoryLength = 64

// HistoryEntry is one earlier key: stored (with the sink version that held it, when the
// sink has versions), or minted by rotatord and lost before it could be stored.
type HistoryEntry struct {
	KeyID string
	// At is the key's rotated_at (stored), or when rotatord found it lost.
	At      time.Time
	Version Version
	Lost    bool
}

// History is what a record says of the keys before its own, oldest first.
type History struct {
	Entries []HistoryEntry
	// Since is set when older entries were dropped: the history is complete from Since on.
	Since time.Time
	// Unreadable says why a stored history could not be read ("" when it could): the record
	// still serves, and the next write starts its history again from its own key.
	Unreadable string
}

// With returns h with the entries added (those whose key it already names are left out),
// ordered by time and trimmed to the newest HistoryLength.
func (h History) With(add ...HistoryEntry) History {
	out := History{Since: h.Since, Entries: append(make([]HistoryEntry, 0, len(h.Entries)+len(add)), h.Entries...)}
	for _, e := range add {
		if e.KeyID == "" || slices.ContainsFunc(out.Entries, func(o HistoryEntry) bool { return o.KeyID == e.KeyID }) {
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	slices.SortStableFunc(out.Entries, func(a, b HistoryEntry) int { return a.At.Compare(b.At) })
	if drop := len(out.Entries) - HistoryLength; drop > 0 {
		out.Entries = out.Entries[drop:]
		out.Since = out.Entries[0].At
	}
	return out
}

// String encodes h as the history field: space-separated entries, oldest first, each
// KEY_ID@RFC3339[#VERSION], a lost key with a leading "!", and "since=RFC3339" first when
// older entries were dropped.
func (h History) String() string {
	// One buffer of about the right size (a full history is about 4.5 KB), the entries'
	// pieces written into it directly.
	const perEntry = len(" !@2006-01-02T15:04:05.999999999Z#") + 36 + 4
	var b strings.Builder
	b.Grow(len("since=2006-01-02T15:04:05.999999999Z") + len(h.Entries)*perEntry)
	var at [len(time.RFC3339Nano) + 8]byte
	if !h.Since.IsZero() {
		b.WriteString("since=")
		b.Write(appendTime(at[:0], h.Since))
	}
	for _, e := range h.Entries {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if e.Lost {
			b.WriteByte('!')
		}
		b.WriteString(e.KeyID)
		b.WriteByte('@')
		b.Write(appendTime(at[:0], e.At))
		if e.Version != "" {
			b.WriteByte('#')
			b.WriteString(string(e.Version))
		}
	}
	return b.String()
}

// ParseHistory reads what History.String wrote.
func ParseHistory(s string) (History, error) {
	var h History
	for i, tok := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(tok, "since="); ok && i == 0 {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return History{}, fmt.Errorf("history: since %q is not RFC 3339", v)
			}
			h.Since = t
			continue
		}
		var e HistoryEntry
		tok, e.Lost = strings.CutPrefix(tok, "!")
		tok, version, _ := strings.Cut(tok, "#")
		id, at, ok := strings.Cut(tok, "@")
		if !ok || id == "" || len(id) > 64 || strings.ContainsAny(id, "@#!=") {
			return History{}, fmt.Errorf("history: entry %d is not KEY_ID@TIME", i+1)
		}
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return History{}, fmt.Errorf("history: entry %d: time %q is not RFC 3339", i+1, at)
		}
		// Copies: an entry kept (a report's, a cached record's) must not pin the whole field.
		e.KeyID, e.At, e.Version = strings.Clone(id), t, Version(strings.Clone(version))
		h.Entries = append(h.Entries, e)
	}
	if len(h.Entries) > 4*HistoryLength {
		return History{}, fmt.Errorf("history: %d entries, more than rotatord writes", len(h.Entries))
	}
	return h, nil
}

// AckPath is where a consumer acknowledges the keys it holds, beside the secret at path:
// <path>/consumers/<consumer> (a KV secret; a JSON file under the file sink's directory).
func AckPath(path, consumer string) string { return path + "/consumers/" + consumer }

// DecodeAck reads an acknowledgement's key ids: {"key_ids": ["…"]} or {"key_ids": "… …"}
// or {"key_id": "…"}.
func DecodeAck(data map[string]any) ([]string, error) {
	switch v := data["key_ids"].(type) {
	case string:
		return strings.Fields(v), nil
	case []any:
		var out []string
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("key_ids: want strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	if s, ok := data["key_id"].(string); ok && s != "" {
		return []string{s}, nil
	}
	return nil, fmt.Errorf("want key_ids (a list, or ids separated by spaces) or key_id")
}
