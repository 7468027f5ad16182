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

// FuzzParseRecord: no record file makes the parser panic or read past a slot; a record it
// takes as valid came from a slot whose checksum holds, at the slot its sequence number's
// parity names, and writing the record that follows it, then reading again, gives that one.
func FuzzParseRecord(f *testing.F) {
	// Seeds built in memory as writeRecord lays them out: an intent, then a received secret.
	file := make([]byte, 2*minSlotSize)
	encodeSlot(file[minSlotSize:], recordIntent, 1, []byte(`{"destination_id":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","baseline_key_id":"k"}`))
	f.Add(append([]byte(nil), file...))
	encodeSlot(file[:minSlotSize], recordReceived, 2, []byte(`{"version":2,"destination_id":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"}`))
	f.Add(append([]byte(nil), file...))
	f.Add([]byte(recordMagic))
	f.Add(bytes.Repeat([]byte{0}, 2*minSlotSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := parseRecord(b)
		if !r.valid {
			return
		}
		size := len(b) / 2
		if r.slotSize != size || r.kind > recordReceived || len(r.payload) > size-slotHeaderLen {
			t.Fatalf("valid record out of its slot: kind %d, slot %d of %d, payload %d", r.kind, r.slotSize, size, len(r.payload))
		}
		slot := b[int(r.seq%2)*size : int(r.seq%2+1)*size]
		if kind, seq, payload, ok := parseSlot(slot); !ok || kind != r.kind || seq != r.seq || !bytes.Equal(payload, r.payload) {
			t.Fatalf("the record is not its slot's")
		}
		// The next write lands in the other slot and wins.
		next := make([]byte, len(b))
		copy(next, b)
		other := int((r.seq+1)%2) * size
		encodeSlot(next[other:other+size], recordClear, r.seq+1, nil)
		if got := parseRecord(next); !got.valid || got.seq != r.seq+1 || got.kind != recordClear {
			t.Fatalf("after the next write: %+v", got)
		}
	})
}
