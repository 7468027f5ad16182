package report

// A year of a large account is half a million keys: a judged destination keeps its keys
// packed (about 56 bytes each instead of about 200), and Expand unpacks one destination at
// a time for rendering.

import (
	"encoding/hex"
	"slices"
	"strconv"
	"time"
)

type packedKey struct {
	uuid            [16]byte
	raw             string // the id when it is not a UUID
	created, stored int64  // Unix nanoseconds; stored 0: never
	version         uint32 // 0: none
	origin, status  uint8
	kv              uint8
}

var (
	origins  = []string{OriginRotatord, OriginLost, OriginCreated, OriginOutside, OriginUnknown}
	statuses = []string{"", "active", "retiring", "revoked"}
	kvStates = []string{"", "current", "kept", "deleted", "destroyed", "pruned"}
)

func code(list []string, s string) (uint8, bool) {
	i := slices.Index(list, s)
	return uint8(i), i >= 0
}

func pack(k Key) (packedKey, bool) {
	p := packedKey{created: k.CreatedAt.UnixNano()}
	if !k.StoredAt.IsZero() {
		p.stored = k.StoredAt.UnixNano()
	}
	var ok1, ok2, ok3 bool
	p.origin, ok1 = code(origins, k.Origin)
	p.status, ok2 = code(statuses, k.Status)
	p.kv, ok3 = code(kvStates, k.KVState)
	if k.Version != "" {
		v, err := strconv.ParseUint(k.Version, 10, 32)
		if err != nil || v == 0 || strconv.FormatUint(v, 10) != k.Version {
			return packedKey{}, false
		}
		p.version = uint32(v)
	}
	if u, ok := parseUUID(k.ID); ok {
		p.uuid = u
	} else {
		p.raw = k.ID
	}
	return p, ok1 && ok2 && ok3 && k.Location == ""
}

func (p packedKey) key(location string) Key {
	k := Key{CreatedAt: time.Unix(0, p.created).UTC(), Origin: origins[p.origin], Status: statuses[p.status], KVState: kvStates[p.kv]}
	if p.raw != "" {
		k.ID = p.raw
	} else {
		k.ID = formatUUID(p.uuid)
	}
	if p.stored != 0 {
		k.StoredAt, k.Location = time.Unix(0, p.stored).UTC(), location
	}
	if p.version > 0 {
		k.Version = strconv.FormatUint(uint64(p.version), 10)
	}
	return k
}

// parseUUID reads a lower-case canonical UUID.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil || hex.EncodeToString(u[:]) != h {
		return u, false
	}
	return u, true
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// packKeys packs d's keys when every one packs exactly; else they stay as they are.
func (d *Destination) packKeys() {
	packed := make([]packedKey, 0, len(d.Keys))
	for _, k := range d.Keys {
		k.Location = ""
		p, ok := pack(k)
		if !ok {
			return
		}
		packed = append(packed, p)
	}
	d.packed, d.Keys = packed, nil
}

// Expand returns d with its keys unpacked (a destination read from JSON has them already).
func (d Destination) Expand() Destination {
	if d.Keys == nil && d.packed != nil {
		d.Keys = make([]Key, len(d.packed))
		for i, p := range d.packed {
			d.Keys[i] = p.key(d.Location)
		}
	}
	d.packed = nil
	return d
}

// KeyCount is how many keys d has in the period.
func (d Destination) KeyCount() int { return max(len(d.Keys), len(d.packed)) }
