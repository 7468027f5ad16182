package spool

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const recDest = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"

func recordPath(dir string) string {
	return filepath.Join(dir, "spool", "intents", recDest+".rec")
}

// A rotation's record is written in place: after the first write of a destination, neither
// the intent nor the received secret creates, renames or resizes a file (each is one pwrite
// and one fdatasync of data alone), and what it holds survives a new process.
func TestRecordIsWrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	intent := Intent{DestinationID: recDest, Destination: "billing", BaselineKeyID: "k1", StartedAt: time.Now().UTC().Truncate(time.Second)}
	a, err := s.Begin(intent)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(); err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(recordPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ino := first.Sys()
	for i := 0; i < 5; i++ {
		a, err := s.Begin(intent)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := s.Intent(recDest); !ok || got != intent {
			t.Fatalf("round %d: Intent = %+v %v", i, got, ok)
		}
		e := entry(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), time.Now())
		if err := a.Received(e); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Intent(recDest); ok {
			t.Fatalf("round %d: the intent is still open after Received", i)
		}
		// A new process (the old one died here) finds the secret.
		again, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ids, _ := again.PendingKeyIDs(recDest); len(ids) != 1 || ids[0] != e.KeyID {
			t.Fatalf("round %d: pending after Received, seen by a new process: %v", i, ids)
		}
		if err := a.Stored(); err != nil {
			t.Fatal(err)
		}
		if ids, _ := s.PendingKeyIDs(recDest); len(ids) != 0 {
			t.Fatalf("round %d: pending after Stored: %v", i, ids)
		}
		fi, err := os.Stat(recordPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != first.Size() || !sameInode(fi.Sys(), ino) {
			t.Fatalf("round %d: the record was replaced or resized (%d bytes, was %d)", i, fi.Size(), first.Size())
		}
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "spool", "pending")); len(des) != 0 {
		t.Errorf("a stored secret left files in pending/: %v", des)
	}
}

// A write torn by a crash damages only the slot it was writing: the record before it is
// read whole. Both slots torn read as an open intent without a baseline (list first).
func TestTornRecordKeepsThePreviousOne(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	intent := Intent{DestinationID: recDest, Destination: "billing", BaselineKeyID: "k1", StartedAt: time.Now().UTC().Truncate(time.Second)}
	a, err := s.Begin(intent)
	if err != nil {
		t.Fatal(err)
	}
	e := entry("22222222-2222-4222-8222-222222222222", time.Now())
	if err := a.Received(e); err != nil {
		t.Fatal(err)
	}
	// The next write (the clear after the store) is torn: half its slot is garbage.
	rec, err := s.readRecord(recDest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(recordPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	next := int((rec.seq + 1) % 2 * uint64(rec.slotSize))
	copy(b[next:], []byte("RTDR\x00\x00\x00\x00\xff\xff garbage of a torn write"))
	if err := os.WriteFile(recordPath(dir), b, 0o600); err != nil {
		t.Fatal(err)
	}
	entries, corrupt, err := s.List(true)
	if err != nil || len(corrupt) != 0 || len(entries) != 1 || entries[0].KeyID != "22222222-2222-4222-8222-222222222222" || entries[0].Secret.Reveal() != plain {
		t.Fatalf("after a torn write: %+v %v %v", entries, corrupt, err)
	}
	// Both slots torn: an open intent with no baseline, so the next rotation lists first.
	for i := range b {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(recordPath(dir), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Intent(recDest)
	if !ok || err != nil || got.BaselineKeyID != "" {
		t.Fatalf("unreadable record: Intent = %+v %v %v, want open without baseline", got, ok, err)
	}
	// A new Begin writes a whole new record over it.
	if a, err = s.Begin(intent); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.Intent(recDest); !ok || got != intent {
		t.Fatalf("after Begin over an unreadable record: %+v %v", got, ok)
	}
	_ = a.Settle()
}

// A received secret that the sink did not take moves to pending/ for the replayer; one a
// crash left in the record is found by the first replay of the next process, and by the
// destination's next rotation; either way once.
func TestReceivedSecretReachesTheReplayer(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testKey())
	if err != nil {
		t.Fatal(err)
	}
	intent := Intent{DestinationID: recDest, Destination: "billing", BaselineKeyID: "k1"}
	a, err := s.Begin(intent)
	if err != nil {
		t.Fatal(err)
	}
	e := entry("22222222-2222-4222-8222-222222222222", time.Now())
	if err := a.Received(e); err != nil {
		t.Fatal(err)
	}
	if err := a.Keep(e); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Len(); n != 1 {
		t.Fatalf("Len after Keep = %d, want 1", n)
	}
	got, _, err := s.List(true)
	if err != nil || len(got) != 1 || got[0].KeyID != "22222222-2222-4222-8222-222222222222" || got[0].Secret.Reveal() != plain {
		t.Fatalf("List after Keep: %+v %v", got, err)
	}
	if err := s.Remove(recDest, "22222222-2222-4222-8222-222222222222"); err != nil {
		t.Fatal(err)
	}

	// A crash after Received: the record holds the secret, sealed.
	if a, err = s.Begin(intent); err != nil {
		t.Fatal(err)
	}
	e = entry("33333333-3333-4333-8333-333333333333", time.Now())
	if err := a.Received(e); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(recordPath(dir))
	if containsSecret(raw) {
		t.Fatal("the record holds the secret in plain text with a sealing key")
	}
	next, err := Open(dir, testKey())
	if err != nil {
		t.Fatal(err)
	}
	got, corrupt, err := next.List(true)
	if err != nil || len(corrupt) != 0 || len(got) != 1 || got[0].KeyID != "33333333-3333-4333-8333-333333333333" || got[0].Secret.Reveal() != plain {
		t.Fatalf("first List of the next process: %+v %v %v", got, corrupt, err)
	}
	// The destination's rotation sees it once, whichever comes first.
	pending, _, err := next.Pending(recDest)
	if err != nil || len(pending) != 1 || pending[0].KeyID != "33333333-3333-4333-8333-333333333333" {
		t.Fatalf("Pending: %+v %v", pending, err)
	}
	if err := next.Remove(recDest, "33333333-3333-4333-8333-333333333333"); err != nil {
		t.Fatal(err)
	}
	if pending, _, _ := next.Pending(recDest); len(pending) != 0 {
		t.Fatalf("Pending after Remove: %+v", pending)
	}
	if ids, _ := next.PendingKeyIDs(recDest); len(ids) != 0 {
		t.Fatalf("PendingKeyIDs after Remove: %v", ids)
	}
	if got, _, _ := next.List(false); len(got) != 0 {
		t.Fatalf("List after Remove: %+v", got)
	}
}

// An intent a previous version left (intents/<id>.json) is still an open intent.
func TestLegacyIntentIsRead(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(dir, "spool", "intents", recDest+".json")
	if err := os.WriteFile(legacy, []byte(`{"destination_id":"`+recDest+`","destination":"billing","baseline_key_id":"k0","started_at":"2026-01-01T00:00:00Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Intent(recDest)
	if !ok || err != nil || got.BaselineKeyID != "k0" {
		t.Fatalf("legacy intent: %+v %v %v", got, ok, err)
	}
	if list, _ := s.Intents(); len(list) != 1 || list[0].BaselineKeyID != "k0" {
		t.Fatalf("Intents: %+v", list)
	}
	a, err := s.Begin(Intent{DestinationID: recDest, Destination: "billing", BaselineKeyID: "k0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Intent(recDest); ok {
		t.Error("the legacy intent is still open after a new attempt settled")
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("legacy intent file still there: %v", err)
	}
}

func testKey() []byte { return bytes.Repeat([]byte{7}, 32) }

// containsSecret reports whether raw holds the test secret in any plain form.
func containsSecret(raw []byte) bool {
	decoded, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(plain, "whsec_"))
	for _, needle := range [][]byte{[]byte(plain), []byte(strings.TrimPrefix(plain, "whsec_")), decoded, []byte("whsec_")} {
		if bytes.Contains(raw, needle) {
			return true
		}
	}
	return false
}

func sameInode(a, b any) bool {
	sa, ok1 := a.(*syscall.Stat_t)
	sb, ok2 := b.(*syscall.Stat_t)
	return ok1 && ok2 && sa.Ino == sb.Ino && sa.Dev == sb.Dev
}

// BenchmarkFirstDrainOf10kRecords: what the first List of a process (the drain at start)
// costs with 10,000 destinations that each have a record, none holding a secret.
func BenchmarkFirstDrainOf10kRecords(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		a, err := s.Begin(Intent{DestinationID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), BaselineKeyID: "k"})
		if err != nil {
			b.Fatal(err)
		}
		_ = a.Settle()
	}
	b.ResetTimer()
	for b.Loop() {
		next, err := Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		if got, _, err := next.List(true); err != nil || len(got) != 0 {
			b.Fatal(got, err)
		}
	}
}

// TestGroupCommitSharesFlushes: sixteen rotations of sixteen destinations writing their
// intents and received secrets at the same moment share flushes (group commit), and every
// record reads back as written, by this process and by a new one.
func TestGroupCommitSharesFlushes(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UseGroupCommit(); err != nil {
		t.Fatal(err)
	}
	const n = 16
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-8b7d-4c6e-9f10-2a3b4c5d6e7f", i)
	}
	round := func(stored bool) {
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := s.Begin(Intent{DestinationID: id, Destination: fmt.Sprint("d", i), BaselineKeyID: "k1", StartedAt: time.Now().UTC()})
				if err != nil {
					t.Error(err)
					return
				}
				e := entry(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), time.Now())
				e.DestinationID = id
				if err := a.Received(e); err != nil {
					t.Error(err)
					return
				}
				if stored {
					if err := a.Stored(); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	round(true) // the records are created
	w0, f0 := s.Flushes()
	round(false) // in place: each rotation waits twice, the secrets stay received
	w, f := s.Flushes()
	if w-w0 != 2*n {
		t.Errorf("%d durable writes in the second round, want %d (an intent and a secret each)", w-w0, 2*n)
	}
	if f-f0 >= w-w0 {
		t.Errorf("%d flushes for %d durable writes: group commit shared none", f-f0, w-w0)
	}
	t.Logf("second round: %d durable writes, %d flushes", w-w0, f-f0)
	again, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if got, _ := again.PendingKeyIDs(id); len(got) != 1 || got[0] != fmt.Sprintf("%08x-0000-4000-8000-000000000000", i) {
			t.Errorf("%s: pending %v after a group-committed Received", id, got)
		}
	}
}
