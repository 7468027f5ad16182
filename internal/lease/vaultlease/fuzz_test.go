package vaultlease

import (
	"encoding/json"
	"testing"
)

// FuzzParseRecord: no lease entry read from Vault makes parseRecord panic, and an accepted
// one survives a round trip through the fields rotatord writes.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"holder_host":"h","holder_pid":"1","holder_command":"rotatord run","holder_instance_id":"ab","fence":"3","acquired_at":"2026-12-01T03:00:00Z","expires_at":"2026-12-01T03:01:00Z","released":"false","unsettled":"false"}`))
	f.Add([]byte(`{"holder_pid":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var data map[string]any
		if json.Unmarshal(b, &data) != nil {
			return
		}
		r, err := parseRecord(data)
		if err != nil {
			return
		}
		again, err := parseRecord(r.data())
		if err != nil || again != r {
			t.Errorf("round trip: %+v -> %+v, %v", r, again, err)
		}
	})
}
