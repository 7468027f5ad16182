package spool

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/secret"
)

const plain = "whsec_c2VjcmV0LWJ5dGVzLXRoYXQtbXVzdC1ub3QtYmUtb24tZGlzaw=="

func entry(key string, at time.Time) Entry {
	return Entry{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", Destination: "billing", Path: "webhookco/billing",
		KeyID: key, Secret: secret.New(plain), RotatedAt: at, SpooledAt: at}
}

func TestPutListRemove(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := s.Put(entry("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", now)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(entry("5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", now.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	got, corrupt, err := s.List(true)
	if err != nil || len(corrupt) != 0 || len(got) != 2 {
		t.Fatalf("List = %+v %+v %v", got, corrupt, err)
	}
	if got[0].KeyID != "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d" || !got[0].Secret.Equal(secret.New(plain)) || !got[1].RotatedAt.Equal(now) {
		t.Errorf("List order or content wrong: %+v", got)
	}
	// Files 0600 in 0700 directories.
	for _, d := range []string{dir, filepath.Join(dir, "spool"), s.pending, s.corrupt, s.intents} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", d, fi.Mode().Perm(), err)
		}
	}
	for _, e := range got {
		if fi, err := os.Stat(e.File); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v; want 0600", e.File, fi.Mode().Perm())
		}
	}
	if err := s.Remove(got[0].DestinationID, got[0].KeyID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Len(); n != 1 {
		t.Errorf("Len after Remove = %d, want 1", n)
	}
}

// TestSealedSpoolHoldsNoPlaintext: with a key, no file holds the secret or its base64 body.
func TestSealedSpoolHoldsNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	s, err := Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	e := entry("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", time.Now())
	if err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(s.pending, entryName(e.DestinationID, e.KeyID)))
	if err != nil {
		t.Fatal(err)
	}
	decoded, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(plain, "whsec_"))
	for _, needle := range [][]byte{[]byte(plain), []byte(strings.TrimPrefix(plain, "whsec_")), decoded, []byte("whsec_")} {
		if bytes.Contains(raw, needle) {
			t.Errorf("sealed file contains %q", needle)
		}
	}
	got, _, err := s.List(true)
	if err != nil || len(got) != 1 || !got[0].Secret.Equal(e.Secret) {
		t.Fatalf("sealed round trip: %+v %v", got, err)
	}

	// Opened with another key, the entry cannot be decrypted and is moved aside, not deleted.
	other, err := Open(dir, bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	got, corrupt, err := other.List(false)
	if err != nil || len(got) != 0 || len(corrupt) != 1 || !strings.Contains(corrupt[0].Reason, "cannot be decrypted") {
		t.Fatalf("read-only List with the wrong key: %+v %+v %v", got, corrupt, err)
	}
	if n, _ := other.Len(); n != 1 {
		t.Error("a read-only List moved an entry")
	}
	_, corrupt, err = other.List(true)
	if err != nil || len(corrupt) != 1 {
		t.Fatalf("List(true): %+v %v", corrupt, err)
	}
	files, _ := other.CorruptFiles()
	if n, _ := other.Len(); n != 0 || len(files) != 1 {
		t.Errorf("after moving aside: %d pending, %d corrupt files", n, len(files))
	}
	if b, err := os.ReadFile(files[0]); err != nil || !bytes.Equal(b, raw) {
		t.Error("the moved entry is not the original bytes")
	}
}

func TestCorruptEntriesAreMovedAside(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"a.b.json": "{not json",
		"c.d.json": `{"version":1,"destination_id":"x"}`,
		"e.f.json": `{"version":1,"destination_id":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","key_id":"9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b","path":"p","rotated_at":"2026-01-01T00:00:00Z"}`,
	} {
		if err := os.WriteFile(filepath.Join(s.pending, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, corrupt, err := s.List(true)
	if err != nil || len(got) != 0 || len(corrupt) != 3 {
		t.Fatalf("List = %+v %+v %v", got, corrupt, err)
	}
	reasons := map[string]bool{}
	for _, c := range corrupt {
		reasons[c.Reason] = true
	}
	for _, want := range []string{"not valid JSON", "missing fields (version, destination_id, key_id, path, rotated_at)", "holds no secret"} {
		if !reasons[want] {
			t.Errorf("no corrupt entry with reason %q: %v", want, reasons)
		}
	}
	if files, _ := s.CorruptFiles(); len(files) != 3 {
		t.Errorf("%d files in corrupt/, want 3", len(files))
	}
}

func TestIntents(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const dest = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
	if _, ok, err := s.Intent(dest); ok || err != nil {
		t.Fatalf("Intent before Put: %v %v", ok, err)
	}
	want := Intent{DestinationID: dest, Destination: "billing", BaselineKeyID: "k1", StartedAt: time.Now().UTC().Truncate(time.Second)}
	attempt, err := s.Begin(want)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Intent(dest)
	if !ok || err != nil || got != want {
		t.Fatalf("Intent = %+v %v %v", got, ok, err)
	}
	if err := attempt.Settle(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Intent(dest); ok {
		t.Error("intent still present after Settle")
	}
	// Received spools the secret and settles the attempt.
	attempt, err = s.Begin(want)
	if err != nil {
		t.Fatal(err)
	}
	e := entry("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", time.Now())
	e.DestinationID = dest
	if err := attempt.Received(e); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Intent(dest); ok {
		t.Error("intent still present after Received")
	}
	if ids, _ := s.PendingKeyIDs(dest); len(ids) != 1 {
		t.Errorf("pending after Received: %v", ids)
	}
	if err := attempt.Stored(); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.PendingKeyIDs(dest); len(ids) != 0 {
		t.Errorf("pending after Stored: %v", ids)
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0xab}, 32)
	for name, body := range map[string][]byte{
		"raw": key, "hex": []byte(strings.Repeat("ab", 32) + "\n"), "b64": []byte(base64.StdEncoding.EncodeToString(key)),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadKeyFile(p)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: %x %v", name, got, err)
		}
	}
	p := filepath.Join(dir, "short")
	_ = os.WriteFile(p, []byte("hunter2"), 0o600)
	if _, err := ReadKeyFile(p); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("short key: %v", err)
	}
}

// TestListLeavesWritesInProgressAlone: a temporary file may be a write in progress of
// another rotation; List must not touch it. Open removes only old ones.
func TestListLeavesWritesInProgressAlone(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(s.pending, ".x.y.json.123.tmp")
	old := filepath.Join(s.pending, ".a.b.json.456.tmp")
	for _, p := range []string{fresh, old} {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	if got, corrupt, err := s.List(true); err != nil || len(got) != 0 || len(corrupt) != 0 {
		t.Fatalf("List = %v %v %v", got, corrupt, err)
	}
	for _, p := range []string{fresh, old} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("List removed %s", filepath.Base(p))
		}
	}
	if n, _ := s.Len(); n != 0 {
		t.Errorf("Len counts temporaries: %d", n)
	}
	if _, err := Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("Open removed a fresh temporary file")
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("Open kept an hour-old temporary file")
	}
}

// TestConcurrentUseNeverReportsCorrupt: entries written and removed by concurrent rotations
// while other goroutines list the spool are never taken for corrupt (an entry that vanished
// during a listing was stored, not damaged), and no listing fails. Sealed and unsealed.
func TestConcurrentUseNeverReportsCorrupt(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		t.Run(map[bool]string{true: "plain", false: "sealed"}[key == nil], func(t *testing.T) {
			s, err := Open(t.TempDir(), key)
			if err != nil {
				t.Fatal(err)
			}
			const writers, rounds = 8, 150
			stop := make(chan struct{})
			errs := make(chan error, 64)
			var listers sync.WaitGroup
			for range 2 {
				listers.Add(1)
				go func() {
					defer listers.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, corrupt, err := s.List(true); err != nil || len(corrupt) > 0 {
							errs <- fmt.Errorf("List: %v, corrupt %+v", err, corrupt)
							return
						}
					}
				}()
			}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dest := fmt.Sprintf("3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e%02d", w)
					for i := range rounds {
						e := entry(fmt.Sprintf("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f%04d", i), time.Now())
						e.DestinationID = dest
						if err := s.Put(e); err != nil {
							errs <- err
							return
						}
						// A rotation reads its own destination's entries, then removes the stored one.
						mine, corrupt, err := s.Pending(dest)
						if ids, _ := s.PendingKeyIDs(dest); len(ids) != 1 || ids[0] != e.KeyID {
							errs <- fmt.Errorf("PendingKeyIDs(%s) = %v; want [%s]", dest, ids, e.KeyID)
							return
						}
						if err != nil || len(corrupt) > 0 || len(mine) != 1 || mine[0].KeyID != e.KeyID {
							errs <- fmt.Errorf("Pending(%s) = %+v, %v; want the one entry just put", dest, mine, err)
							return
						}
						if err := s.Remove(dest, e.KeyID); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			listers.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if files, _ := s.CorruptFiles(); len(files) > 0 {
				t.Errorf("entries moved aside as corrupt: %v", files)
			}
		})
	}
}

// TestReadKeyFileRefusesLooseOrAmbiguous: a key file others may read is refused, and so is a
// 32-byte file of printable characters (32 hex digits are a 16-byte key, not a raw 32-byte one).
func TestReadKeyFileRefusesLooseOrAmbiguous(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, []byte(strings.Repeat("ab", 32)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(loose); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("mode 0644: %v, want a refusal saying chmod 600", err)
	}
	ambiguous := filepath.Join(dir, "ambiguous")
	if err := os.WriteFile(ambiguous, []byte(strings.Repeat("ab", 16)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(ambiguous); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("32 hex characters: %v, want a refusal as ambiguous", err)
	}
}

// TestSealedEntryAuthenticatesEveryField: rewriting any field of a sealed entry on disk (the
// path replay writes to, the fence, the times) makes it fail to open; an entry written in
// the version 1 format, which bound only the ids, still reads.
func TestSealedEntryAuthenticatesEveryField(t *testing.T) {
	s, err := Open(t.TempDir(), bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	e := entry("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b", at)
	e.Fence, e.Slot = 7, at.Truncate(time.Hour)
	if err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(s.pending, entryName(e.DestinationID, e.KeyID))
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for field, value := range map[string]any{
		"path": "../../../etc/cron.d/x", "lease_fence": 9, "rotated_at": at.Add(time.Hour), "slot": at.Add(24 * time.Hour), "destination": "other",
	} {
		var m map[string]any
		if err := json.Unmarshal(orig, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = value
		b, _ := json.Marshal(m)
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, corrupt, err := s.List(false)
		if err != nil || len(got) != 0 || len(corrupt) != 1 || !strings.Contains(corrupt[0].Reason, "tampered") {
			t.Errorf("%s rewritten: entries %+v, corrupt %+v, %v; want it refused as tampered", field, got, corrupt, err)
		}
	}

	// Version 1: the secret bound to the two ids only.
	v1 := fileEntry{Version: 1, DestinationID: e.DestinationID, Destination: e.Destination, Path: e.Path, KeyID: e.KeyID, RotatedAt: at, SpooledAt: at}
	nonce := bytes.Repeat([]byte{1}, s.aead.NonceSize())
	v1.Sealed = base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), v1.additionalData()))
	b, _ := json.Marshal(v1)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, corrupt, err := s.List(false)
	if err != nil || len(corrupt) != 0 || len(got) != 1 || got[0].Secret.Reveal() != plain {
		t.Errorf("version 1 entry: %+v, corrupt %+v, %v", got, corrupt, err)
	}
}

// TestStateDirMayBeALink: systemd's DynamicUser=yes makes StateDirectory= a symbolic link
// (/var/lib/rotatord -> private/rotatord). state_dir is the operator's setting, so a link
// there is followed; the spool's own directories below it still may not be links.
func TestStateDirMayBeALink(t *testing.T) {
	base := t.TempDir()
	private := filepath.Join(base, "private", "rotatord")
	if err := os.MkdirAll(private, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "rotatord")
	if err := os.Symlink("private/rotatord", link); err != nil {
		t.Fatal(err)
	}
	s, err := Open(link, nil)
	if err != nil {
		t.Fatalf("Open on a linked state_dir: %v", err)
	}
	if _, err := s.Len(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(private, "spool", "pending")); err != nil {
		t.Errorf("the spool is not in the link's target: %v", err)
	}
}

// TestSpoolRefusesLinksAndSpecialFiles: a symbolic link where a spool directory goes is
// refused (never chmod-ed through); a link or a FIFO in pending/ is moved aside without
// being opened, so the replay never blocks; OpenReadOnly changes nothing.
func TestSpoolRefusesLinksAndSpecialFiles(t *testing.T) {
	elsewhere := t.TempDir()
	if err := os.Chmod(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	linked := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(linked, "spool")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(linked, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open with spool/ a symbolic link: %v", err)
	}
	if fi, _ := os.Stat(elsewhere); fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target was chmod-ed to %v", fi.Mode().Perm())
	}

	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target.json")
	if err := os.WriteFile(target, []byte(`{"version":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(s.pending, "a.b.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(s.pending, "c.d.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if entries, corrupt, err := ro.List(false); err != nil || len(entries) != 0 || len(corrupt) != 2 {
			t.Errorf("List(false) = %+v, %+v, %v; want both refused", entries, corrupt, err)
		}
		if _, corrupt, err := s.List(true); err != nil || len(corrupt) != 2 {
			t.Errorf("List(true) = %+v, %v; want both moved aside", corrupt, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("listing blocked on a FIFO")
	}
	if n, _ := s.Len(); n != 0 {
		t.Errorf("%d entries left in pending/", n)
	}

	// Read-only: a spool that does not exist is not created.
	empty := t.TempDir()
	if _, err := OpenReadOnly(empty, nil); err == nil {
		t.Error("OpenReadOnly of a missing spool succeeded")
	}
	if _, err := os.Stat(filepath.Join(empty, "spool")); !os.IsNotExist(err) {
		t.Errorf("OpenReadOnly created the spool: %v", err)
	}
}

// TestCorruptIsPruned: entries moved aside are kept for inspection for 400 days from the
// move, then removed at the next Open; younger ones stay.
func TestCorruptIsPruned(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, young := filepath.Join(s.corrupt, "old.json.x"), filepath.Join(s.corrupt, "young.json.x")
	for _, f := range []string{old, young} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-401 * 24 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("a 401-day-old corrupt entry is still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a fresh corrupt entry was removed: %v", err)
	}
}

// TestPlantedEntriesAreRefused: entries someone else put in the state directory. With a
// spool key, a plain entry is refused (its secret never reaches the sink); an id that is
// not a UUID (a key_id of "../…") is refused before it names any file, in pending/ and in a
// destination's record alike, and nothing is created or removed outside the spool.
func TestPlantedEntriesAreRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	const dest, key = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b"
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	plainEntry := `{"version":2,"destination_id":"` + dest + `","key_id":"` + key + `","path":"webhookco/x","rotated_at":"2026-01-01T00:00:00Z","signing_secret":"whsec_attacker"}`
	escaping := `{"version":2,"destination_id":"` + dest + `","key_id":"../../victim","path":"webhookco/x","rotated_at":"2026-01-01T00:00:00Z","signing_secret":"whsec_attacker"}`
	if err := os.WriteFile(filepath.Join(s.pending, dest+"."+key+".json"), []byte(plainEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.pending, dest+".x.json"), []byte(escaping), 0o600); err != nil {
		t.Fatal(err)
	}
	// The same escaping entry as the received secret of a destination's record.
	other := "0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e"
	if _, err := s.writeRecord(other, record{}, recordReceived, []byte(strings.Replace(escaping, dest, other, 1)), true); err != nil {
		t.Fatal(err)
	}
	got, corrupt, err := s.List(true)
	if err != nil || len(got) != 0 || len(corrupt) != 3 {
		t.Fatalf("List = %+v, corrupt %+v, %v; want all three refused", got, corrupt, err)
	}
	reasons := map[string]int{}
	for _, c := range corrupt {
		reasons[c.Reason]++
	}
	if reasons["not sealed, but spool.key_file is configured (rotatord seals every entry it writes)"] != 1 || reasons["destination_id or key_id is not a UUID"] != 2 {
		t.Errorf("reasons = %v", reasons)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
		t.Errorf("the file outside the spool was touched: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "victim" && e.Name() != "spool" {
			t.Errorf("%s appeared beside the spool", e.Name())
		}
	}
	if err := s.Put(Entry{DestinationID: dest, KeyID: "../x", Path: "p", Secret: secret.New(plain), RotatedAt: time.Now()}); err == nil {
		t.Error("Put took a key id that is not a UUID")
	}
}
