package spool

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecode: no file content makes the spool panic; an entry it accepts has the fields a
// replay needs and a secret.
func FuzzDecode(f *testing.F) {
	s, err := Open(f.TempDir(), bytes.Repeat([]byte{5}, 32))
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	e := entry("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", at)
	e.Fence, e.Slot = 3, at
	if err := s.Put(e); err != nil {
		f.Fatal(err)
	}
	if b, err := readRegular(s.pending + "/" + entryName(e.DestinationID, e.KeyID)); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"destination_id":"d","key_id":"k","path":"p","rotated_at":"2026-12-01T03:00:00Z","signing_secret":"whsec_x"}`))
	f.Add([]byte(`{"version":2,"sealed":"AAAA"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, reason := s.decode("fuzz.json", b)
		if reason != "" {
			return
		}
		if got.DestinationID == "" || got.KeyID == "" || got.Path == "" || got.RotatedAt.IsZero() || got.Secret.IsZero() {
			t.Errorf("accepted an entry without what a replay needs: %+v", got)
		}
	})
}
