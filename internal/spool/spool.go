// Package spool keeps every signing secret rotatord received, durably, until the sink has
// it. The provider shows a new secret exactly once and has already retired the previous key
// when the response arrives, so the secret is written here, fsynced, before any sink write
// is tried, and removed only after the sink write was proven.
//
// Layout under the state directory (0700, files 0600):
//
//	spool/pending/<destination-id>.<key-id>.json   a secret not yet stored
//	spool/corrupt/<name>                            entries that could not be read, moved aside
//	spool/intents/<destination-id>.rec              the write-ahead record of each destination's
//	                                                rotate request, and its secret until stored
//	                                                (record.go; <id>.json: an earlier version's)
//
// Entries can be sealed at rest with AES-256-GCM (a key from a file), so a copied disk does
// not reveal secrets; ids, names and times stay readable for `rotatord spool list`.
package spool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Entry is one spooled secret.
type Entry struct {
	DestinationID string
	Destination   string // the destination's name, for logs
	Path          string // the sink path
	KeyID         string
	Secret        secret.Value
	RotatedAt     time.Time
	SpooledAt     time.Time
	// Slot and Fence are stored with the secret (see sink.Record).
	Slot  time.Time
	Fence int64
	// File is the entry's file name, set by List.
	File string
}

// Corrupt is an entry that could not be read; it has been moved to the corrupt directory.
type Corrupt struct {
	File   string // where it is now
	Reason string
}

// Intent records a rotate request whose outcome is not yet known.
type Intent struct {
	DestinationID string    `json:"destination_id"`
	Destination   string    `json:"destination"`
	BaselineKeyID string    `json:"baseline_key_id"`
	StartedAt     time.Time `json:"started_at"`
}

// Spool is a directory of pending secrets. It is safe for concurrent use on different
// destinations; the rotator serialises each destination.
type Spool struct {
	pending, corrupt, intents string
	aead                      cipher.AEAD // nil: unsealed

	// ownFlushes counts the records' own fdatasyncs (without group commit).
	ownFlushes atomic.Uint64
	// group, when set, makes the records' durable writes share flushes (group commit:
	// UseGroupCommit); nil: each write is flushed alone (fdatasync).
	group *durable.Group

	mu        sync.Mutex
	recovered bool            // the records were read once for secrets a crash left in them
	held      map[string]bool // records holding a secret that is not in pending/
}

// UseGroupCommit makes the write-ahead records' durable writes share flushes: the intent
// of one rotation and the received secret of another, written at the same moment, are
// made durable by one syncfs(2) of the spool's filesystem instead of one fdatasync each.
// Every promise stays: a write returns only once a flush that began after it has ended.
// It fails (and each write keeps its own flush) on a kernel whose syncfs does not report
// failed writebacks (before Linux 5.8).
func (s *Spool) UseGroupCommit() error {
	g, err := durable.NewGroup(s.intents)
	if err != nil {
		return fmt.Errorf("spool: group commit: %w", err)
	}
	s.group = g
	return nil
}

// Flushes says how the spool's durable record writes were flushed: writes is how many
// waited for a flush, flushes how many flushes served them (equal without group commit).
func (s *Spool) Flushes() (writes, flushes uint64) {
	if s.group != nil {
		return s.group.Waits(), s.group.Flushes()
	}
	n := s.ownFlushes.Load()
	return n, n
}

// Open creates the spool directories under stateDir (0700) and returns the spool. key, when
// not nil, must be 32 bytes: entries are then sealed with AES-256-GCM.
//
// state_dir itself may belong to another user as long as rotatord can write it (a container
// volume, a Kubernetes emptyDir with fsGroup), and may be a symbolic link (systemd's
// DynamicUser=yes): it is chmod-ed only when rotatord owns it. The
// spool directories below it must be real directories owned by rotatord's user: a symbolic
// link or another user's directory there is refused, never followed or chmod-ed.
func Open(stateDir string, key []byte) (*Spool, error) {
	s, err := newSpool(stateDir, key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := checkDir(stateDir, false); err != nil {
		return nil, err
	}
	if err := checkWritable(stateDir); err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(stateDir, "spool"), s.pending, s.corrupt, s.intents} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("spool: %w", err)
		}
		if err := checkDir(d, true); err != nil {
			return nil, err
		}
	}
	if err := removeStaleTemporaries(s.pending, s.intents); err != nil {
		return nil, err
	}
	pruneCorrupt(s.corrupt, time.Now())
	return s, nil
}

// keepCorrupt is how long an entry moved aside is kept for inspection (counted from the
// move): longer than a year, the longest schedule anyone keeps a signing secret for, after
// which the key it held is no longer honoured by webhook.co (only the active and the
// retiring key are).
const keepCorrupt = 400 * 24 * time.Hour

// pruneCorrupt removes what was moved aside more than keepCorrupt ago, so corrupt/ does not
// grow for ever; what it cannot remove it leaves.
func pruneCorrupt(dir string, now time.Time) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if fi, err := de.Info(); err == nil && now.Sub(fi.ModTime()) > keepCorrupt {
			_ = os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// OpenReadOnly opens an existing spool to read it (`rotatord spool list`): it creates,
// chmods and removes nothing, and refuses what Open refuses.
func OpenReadOnly(stateDir string, key []byte) (*Spool, error) {
	s, err := newSpool(stateDir, key)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(stateDir, "spool"), s.pending, s.intents} {
		fi, err := os.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("spool: %s is not a directory (a symbolic link or another file); refusing it", d)
		}
	}
	return s, nil
}

func newSpool(stateDir string, key []byte) (*Spool, error) {
	if stateDir == "" {
		return nil, errors.New("spool: no state directory")
	}
	s := &Spool{
		pending: filepath.Join(stateDir, "spool", "pending"),
		corrupt: filepath.Join(stateDir, "spool", "corrupt"),
		intents: filepath.Join(stateDir, "spool", "intents"),
		held:    map[string]bool{},
	}
	if key != nil {
		if len(key) != 32 {
			return nil, fmt.Errorf("spool: the sealing key has %d bytes, want 32 (AES-256)", len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		if s.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	return s, nil
}

// checkDir makes sure dir is a directory; one rotatord owns is made 0700. With mustOwn (the
// spool's own directories), a symbolic link or a directory of another user is refused.
// state_dir itself is the operator's setting and may be a link: systemd's DynamicUser=yes
// makes StateDirectory= one (/var/lib/rotatord -> private/rotatord).
func checkDir(dir string, mustOwn bool) error {
	stat := os.Stat
	if mustOwn {
		stat = os.Lstat
	}
	fi, err := stat(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory (a symbolic link or another file); refusing to use it", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		if mustOwn {
			return fmt.Errorf("spool: %s belongs to uid %d, not to rotatord's uid %d; refusing to keep secrets in it", dir, st.Uid, os.Geteuid())
		}
		return nil // a shared state_dir (volume, fsGroup): left as it is
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// checkWritable says plainly when rotatord's user cannot create entries in dir (a new Docker
// volume is root's, mode 0755), naming the owner, the mode and the fix.
func checkWritable(dir string) error {
	const wx = 0x2 | 0x1 // W_OK | X_OK
	if err := syscall.Access(dir, wx); err == nil {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	owner := ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = fmt.Sprintf(" (owner uid %d, group gid %d, mode %#o)", st.Uid, st.Gid, fi.Mode().Perm())
	}
	return fmt.Errorf("spool: %s is not writable by rotatord's uid %d%s: give it to that user (chown), or to a group it is in with mode 0770 (Kubernetes: fsGroup)",
		dir, os.Geteuid(), owner)
}

// ReadKeyFile reads a sealing key: 32 raw bytes, or 64 hex digits, or base64 of 32 bytes.
// A file that group or others may read is refused, and so are 32 printable characters (32
// hex digits would be a 16-byte key taken for 32 raw bytes). Errors never quote the content.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("spool key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("spool key %s: mode %#o lets others read it; chmod 600 it (or deliver it as a systemd credential)", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spool key: %w", err)
	}
	if len(b) == 32 {
		if printable(b) {
			return nil, fmt.Errorf("spool key %s: 32 printable characters are ambiguous (32 hex digits are only 16 bytes); write 64 hex digits (`openssl rand -hex 32`) or base64 of 32 bytes", path)
		}
		return b, nil
	}
	text := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(text); err == nil && len(k) == 32 {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(text); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, fmt.Errorf("spool key %s: want 32 raw bytes, 64 hex digits or base64 of 32 bytes (e.g. `openssl rand -hex 32`)", path)
}

// printable reports whether b is all printable ASCII: text, not a raw random key.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// staleTemporary is how old a temporary file must be before Open removes it: far longer
// than any write takes, so a write in progress in another process is never disturbed.
const staleTemporary = time.Hour

// removeStaleTemporaries removes temporary files that interrupted writes left behind.
// Such a file never held a complete entry: the entry appears only by the final rename.
func removeStaleTemporaries(dirs ...string) error {
	for _, dir := range dirs {
		des, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		for _, de := range des {
			if !strings.HasPrefix(de.Name(), ".") {
				continue
			}
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemporary {
				_ = os.Remove(filepath.Join(dir, de.Name()))
			}
		}
	}
	return nil
}

// Sealed reports whether entries are encrypted at rest.
func (s *Spool) Sealed() bool { return s.aead != nil }

// fileEntry is an entry on disk.
type fileEntry struct {
	Version       int       `json:"version"`
	DestinationID string    `json:"destination_id"`
	Destination   string    `json:"destination"`
	Path          string    `json:"path"`
	KeyID         string    `json:"key_id"`
	RotatedAt     time.Time `json:"rotated_at"`
	SpooledAt     time.Time `json:"spooled_at"`
	Slot          time.Time `json:"slot,omitzero"`
	Fence         int64     `json:"lease_fence,omitempty"`
	SigningSecret string    `json:"signing_secret,omitempty"` // unsealed
	Sealed        string    `json:"sealed,omitempty"`         // base64(nonce || AES-GCM ciphertext)
}

func entryName(destinationID, keyID string) string {
	return destinationID + "." + keyID + ".json"
}

// Put writes e durably: temporary file 0600, fsync, rename, directory fsync.
func (s *Spool) Put(e Entry) error {
	if !webhookco.IsUUID(e.DestinationID) || !webhookco.IsUUID(e.KeyID) {
		return fmt.Errorf("spool: entry for destination %.40q, key %.40q: ids must be UUIDs", e.DestinationID, e.KeyID)
	}
	body, err := s.encode(e)
	if err != nil {
		return err
	}
	return writeDurably(s.pending, entryName(e.DestinationID, e.KeyID), body)
}

// encode is e as a file's content, its secret sealed when the spool has a key.
func (s *Spool) encode(e Entry) ([]byte, error) {
	fe := fileEntry{Version: entryVersion, DestinationID: e.DestinationID, Destination: e.Destination, Path: e.Path,
		KeyID: e.KeyID, RotatedAt: e.RotatedAt.UTC(), SpooledAt: e.SpooledAt.UTC(), Slot: e.Slot.UTC(), Fence: e.Fence}
	if s.aead != nil {
		nonce := make([]byte, s.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		sealed := s.aead.Seal(nonce, nonce, []byte(e.Secret.Reveal()), fe.additionalData())
		fe.Sealed = base64.StdEncoding.EncodeToString(sealed)
	} else {
		fe.SigningSecret = e.Secret.Reveal()
	}
	body, err := json.Marshal(fe)
	if err != nil {
		return nil, fmt.Errorf("spool: encode: %w", err)
	}
	return body, nil
}

// Remove deletes the entry of destinationID and keyID once the sink holds it. The removal
// is not fsynced: an entry a crash brings back is found already stored by the replayer
// (or older than what is stored, and kept from overwriting it), and removed then.
// The destination's record is cleared too when it holds the same secret.
func (s *Spool) Remove(destinationID, keyID string) error {
	err := os.Remove(filepath.Join(s.pending, entryName(destinationID, keyID)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	if rec, err := s.readRecord(destinationID); err == nil && rec.valid && rec.kind == recordReceived && receivedKeyID(rec.payload) == keyID {
		if _, err := s.writeRecord(destinationID, rec, recordClear, nil, false); err != nil {
			return err
		}
	}
	return nil
}

// List returns the pending entries, oldest first, and those that cannot be read. With
// moveCorrupt, unreadable entries are moved to the corrupt directory (never deleted);
// without it List changes nothing (for `rotatord spool list`).
//
// List is safe beside concurrent Put and Remove, in this process or another: an entry that
// disappears while it is listed was stored and removed by its rotation, and is left out,
// never taken for corrupt.
//
// The secrets that wait in records (see Attempt) are listed too: with moveCorrupt, the first
// List of a process reads every record, copies what a crash left there to pending/ and
// lists it from there; without it, they are listed from their records.
func (s *Spool) List(moveCorrupt bool) ([]Entry, []Corrupt, error) {
	fromRecords, corrupt, err := s.received(moveCorrupt)
	if err != nil {
		return nil, nil, err
	}
	entries, more, err := s.list("", moveCorrupt)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range fromRecords {
		if !slices.ContainsFunc(entries, func(p Entry) bool { return p.DestinationID == e.DestinationID && p.KeyID == e.KeyID }) {
			entries = append(entries, e)
		}
	}
	sortByRotation(entries)
	return entries, append(corrupt, more...), nil
}

// Pending returns destinationID's pending entries, oldest first, reading no other
// destination's files; unreadable ones are moved aside. A rotation calls it for its own
// destination, whose entries only it writes and removes while it holds the destination:
// a secret its record still holds (a crash left it there) is moved to pending/ first.
func (s *Spool) Pending(destinationID string) ([]Entry, []Corrupt, error) {
	var corrupt []Corrupt
	rec, err := s.readRecord(destinationID)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	if rec.valid && rec.kind == recordReceived {
		if _, corrupt, err = s.moveReceived(destinationID, rec); err != nil {
			return nil, nil, err
		}
	}
	entries, more, err := s.list(destinationID+".", true)
	return entries, append(corrupt, more...), err
}

// PendingKeyIDs names the keys of destinationID that wait in the spool, from the file
// names and the destination's record: it unseals nothing and changes nothing.
func (s *Spool) PendingKeyIDs(destinationID string) ([]string, error) {
	des, err := os.ReadDir(s.pending)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var ids []string
	if rec, err := s.readRecord(destinationID); err == nil && rec.valid && rec.kind == recordReceived {
		if id := receivedKeyID(rec.payload); id != "" {
			ids = append(ids, id)
		}
	}
	for _, de := range des {
		if rest, ok := strings.CutPrefix(de.Name(), destinationID+"."); ok {
			if id, ok := strings.CutSuffix(rest, ".json"); ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// list lists the entries whose file names start with prefix ("" for all).
func (s *Spool) list(prefix string, moveCorrupt bool) ([]Entry, []Corrupt, error) {
	des, err := os.ReadDir(s.pending)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	var entries []Entry
	var corrupt []Corrupt
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasPrefix(name, prefix) {
			// A temporary file: a write in progress (another rotation, another process), or
			// one that a crash interrupted; Open removes the stale ones.
			continue
		}
		var e Entry
		var reason string
		var err error
		if !de.Type().IsRegular() {
			// A link or a FIFO is never opened (a FIFO would block the replay for ever).
			reason = "not a regular file (a symbolic link, a FIFO, a directory)"
		} else {
			e, reason, err = s.read(name)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // stored and removed since ReadDir: not corrupt
		case reason == "":
			entries = append(entries, e)
			continue
		case !moveCorrupt:
			corrupt = append(corrupt, Corrupt{File: filepath.Join(s.pending, name), Reason: reason})
			continue
		}
		c, err := s.moveAside(filepath.Join(s.pending, name), reason)
		if errors.Is(err, fs.ErrNotExist) {
			continue // another lister moved it aside, or its rotation removed it
		}
		if err != nil {
			return nil, nil, err
		}
		corrupt = append(corrupt, c)
	}
	if len(corrupt) > 0 && moveCorrupt {
		if err := syncDir(s.pending); err != nil {
			return nil, nil, err
		}
	}
	sortByRotation(entries)
	return entries, corrupt, nil
}

func sortByRotation(entries []Entry) {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].RotatedAt.Before(entries[j].RotatedAt) })
}

// moveAside moves an unreadable file to corrupt/ (never deletes it). An error wrapping
// fs.ErrNotExist means it is gone already.
func (s *Spool) moveAside(file, reason string) (Corrupt, error) {
	moved := filepath.Join(s.corrupt, filepath.Base(file)+"."+time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(file, moved); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Corrupt{}, err
		}
		return Corrupt{}, fmt.Errorf("spool: move aside %s: %w", filepath.Base(file), err)
	}
	now := time.Now()
	_ = os.Chtimes(moved, now, now) // keepCorrupt counts from the move
	return Corrupt{File: moved, Reason: reason}, nil
}

// Len counts the pending entries without reading them.
func (s *Spool) Len() (int, error) {
	des, err := os.ReadDir(s.pending)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	n := 0
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			n++
		}
	}
	return n, nil
}

// CorruptFiles lists the files moved aside so far.
func (s *Spool) CorruptFiles() ([]string, error) {
	des, err := os.ReadDir(s.corrupt)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []string
	for _, de := range des {
		out = append(out, filepath.Join(s.corrupt, de.Name()))
	}
	return out, nil
}

// read parses one entry; a non-empty reason says why it is corrupt (never its secret).
// An entry removed before it could be read returns an error wrapping fs.ErrNotExist.
func (s *Spool) read(name string) (Entry, string, error) {
	b, err := readRegular(filepath.Join(s.pending, name))
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, "", err
	}
	if err != nil {
		return Entry{}, "unreadable: " + err.Error(), nil
	}
	e, reason := s.decode(name, b)
	return e, reason, nil
}

// decode parses the file name's content b; a non-empty reason says why it is corrupt.
func (s *Spool) decode(name string, b []byte) (Entry, string) {
	var fe fileEntry
	if err := json.Unmarshal(b, &fe); err != nil {
		return Entry{}, "not valid JSON"
	}
	if (fe.Version != 1 && fe.Version != entryVersion) || fe.DestinationID == "" || fe.KeyID == "" || fe.Path == "" || fe.RotatedAt.IsZero() {
		return Entry{}, "missing fields (version, destination_id, key_id, path, rotated_at)"
	}
	// Ids name files (pending/<destination>.<key>.json): read from disk, they are checked as
	// strictly as from the API, so none can reach outside the spool.
	if !webhookco.IsUUID(fe.DestinationID) || !webhookco.IsUUID(fe.KeyID) {
		return Entry{}, "destination_id or key_id is not a UUID"
	}
	e := Entry{DestinationID: fe.DestinationID, Destination: fe.Destination, Path: fe.Path, KeyID: fe.KeyID,
		RotatedAt: fe.RotatedAt, SpooledAt: fe.SpooledAt, Slot: fe.Slot, Fence: fe.Fence, File: filepath.Join(s.pending, name)}
	switch {
	case fe.Sealed != "":
		if s.aead == nil {
			return Entry{}, "sealed, but no spool.key_file is configured"
		}
		raw, err := base64.StdEncoding.DecodeString(fe.Sealed)
		if err != nil || len(raw) < s.aead.NonceSize() {
			return Entry{}, "sealed data is not base64 of nonce and ciphertext"
		}
		plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], fe.additionalData())
		if err != nil {
			return Entry{}, "cannot be decrypted (a different spool key, or tampered)"
		}
		e.Secret = secret.New(string(plain))
	case fe.SigningSecret != "" && s.aead != nil:
		// With a spool key every entry rotatord writes is sealed: a plain one was put there
		// by someone else, and its secret must never reach the sink.
		return Entry{}, "not sealed, but spool.key_file is configured (rotatord seals every entry it writes)"
	case fe.SigningSecret != "":
		e.Secret = secret.New(fe.SigningSecret)
	default:
		return Entry{}, "holds no secret"
	}
	return e, ""
}

// entryVersion is the format Put writes. Version 1 (still read) bound a sealed secret to
// its destination and key id only; version 2 authenticates every field of the entry.
const entryVersion = 2

// additionalData is what a sealed secret is bound to: with version 2 every field of the
// entry (path, times, slot, fence included), so none can be rewritten on disk without the
// entry failing to open; with version 1 the destination and key ids.
func (fe fileEntry) additionalData() []byte {
	if fe.Version == 1 {
		return []byte("rotatord-spool-v1\x00" + fe.DestinationID + "\x00" + fe.KeyID)
	}
	fields := []string{"rotatord-spool-v2", fe.DestinationID, fe.Destination, fe.Path, fe.KeyID,
		fe.RotatedAt.UTC().Format(time.RFC3339Nano), fe.SpooledAt.UTC().Format(time.RFC3339Nano),
		fe.Slot.UTC().Format(time.RFC3339Nano), strconv.FormatInt(fe.Fence, 10)}
	// Each field is length-prefixed, so no two entries share the same bytes.
	var b []byte
	for _, f := range fields {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return b
}

// readRegular reads a regular file, never through a symbolic link nor from a FIFO.
func readRegular(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpened(f, name)
}

// readOpened is readRegular of a file already open (it is not closed).
func readOpened(f *os.File, name string) ([]byte, error) { return readOpenedInto(f, name, nil) }

// readOpenedInto is readOpened into buf when it has room for the file (else into a new
// slice).
func readOpenedInto(f *os.File, name string, buf []byte) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	// One read of the size the file has and a byte more (a record, an entry: a few KiB): a
	// short read is the end of a regular file. More only if it grew meanwhile.
	n := int(min(fi.Size(), maxFile) + 1)
	b := buf[:0]
	if cap(b) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	for off := 0; ; {
		n, err := syscall.Pread(int(f.Fd()), b[off:], int64(off))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if off += n; off < len(b) {
			return b[:off], nil
		}
		if off > maxFile {
			return nil, fmt.Errorf("%s: %w", name, errTooLarge)
		}
		b = slices.Grow(b, 4096)[:off+4096]
	}
}

// maxFile is the most readRegular reads: far more than any entry or record.
const maxFile = 1 << 20

var errTooLarge = fmt.Errorf("larger than %d bytes: not a file rotatord wrote", maxFile)

// writeDurably writes name in dir, durably.
func writeDurably(dir, name string, body []byte) error {
	if err := durable.WriteFile(filepath.Join(dir, name), body); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
