package spool

// The write-ahead record of each destination, spool/intents/<destination-id>.rec: the
// intent before a rotate request, then the secret it received, until the sink holds it.
//
// Once the sink holds a received secret, the clear that follows overwrites both slots, so
// no copy of a stored secret stays in the file (see writeRecord).
//
// A record file has two slots of equal size. Each slot is a header (magic "RTDR", kind,
// sequence number, payload length, CRC-32C of all of it) and a payload. A write goes to the
// slot of its sequence number's parity, which is never the slot of the newest valid record:
// a write that a crash tears damages a slot that held an older record, and the reader takes
// the valid slot with the higher number. After a destination's first rotation the file is
// only ever rewritten in place, at the same size, so each durable write is one pwrite and
// one fdatasync of data alone: no file is created, renamed or resized, and no directory is
// fsynced. That is what makes a rotation cost two flushes of a few KiB instead of a new
// file, a rename and three flushes.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/rotatord/rotatord/internal/durable"
)

const (
	recordMagic   = "RTDR"
	slotHeaderLen = 24 // magic 4, kind 1, reserved 3, sequence 8, length 4, CRC 4
	minSlotSize   = 2048
)

type recordKind byte

const (
	recordClear    recordKind = iota // the outcome of the last request is known, nothing waits
	recordIntent                     // a rotate request may be in flight: its outcome is unknown
	recordReceived                   // the request's secret arrived; the sink may not hold it yet
)

// record is what a destination's record file holds.
type record struct {
	exists   bool // a file is there (this format or a legacy one)
	valid    bool // one of its slots could be read
	legacy   bool // intents/<id>.json, written by an earlier version
	kind     recordKind
	seq      uint64
	payload  []byte
	slotSize int // of the file, when it can be written in place
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *Spool) recordName(id string) string { return filepath.Join(s.intents, id+".rec") }
func (s *Spool) legacyName(id string) string { return filepath.Join(s.intents, id+".json") }

// readRecord reads the record of id; one that no slot of can be read is returned with
// exists and not valid.
func (s *Spool) readRecord(id string) (record, error) {
	b, err := readRegular(s.recordName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return s.readLegacy(id)
	}
	if errors.Is(err, errTooLarge) {
		return record{exists: true}, nil // unreadable: the next write replaces it whole
	}
	if err != nil {
		return record{}, err
	}
	return parseRecord(b), nil
}

// readLegacy reads intents/<id>.json, the in-place JSON intent of earlier versions: empty
// once settled, else an open intent.
func (s *Spool) readLegacy(id string) (record, error) {
	b, err := readRegular(s.legacyName(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return record{}, nil
	case errors.Is(err, errTooLarge):
		return record{exists: true, legacy: true}, nil
	case err != nil:
		return record{}, err
	case len(b) == 0:
		return record{exists: true, valid: true, legacy: true, kind: recordClear}, nil
	}
	return record{exists: true, valid: true, legacy: true, kind: recordIntent, payload: b}, nil
}

func parseRecord(b []byte) record {
	r := record{exists: true}
	if len(b) < 2*slotHeaderLen || len(b)%2 != 0 {
		return r
	}
	size := len(b) / 2
	for i := 0; i < 2; i++ {
		kind, seq, payload, ok := parseSlot(b[i*size : (i+1)*size])
		if !ok || seq%2 != uint64(i) || (r.valid && seq < r.seq) {
			continue
		}
		r.valid, r.kind, r.seq, r.payload, r.slotSize = true, kind, seq, payload, size
	}
	return r
}

func parseSlot(slot []byte) (recordKind, uint64, []byte, bool) {
	if len(slot) < slotHeaderLen || string(slot[:4]) != recordMagic {
		return 0, 0, nil, false
	}
	kind := recordKind(slot[4])
	seq := binary.LittleEndian.Uint64(slot[8:16])
	n := binary.LittleEndian.Uint32(slot[16:20])
	if kind > recordReceived || int64(n) > int64(len(slot)-slotHeaderLen) {
		return 0, 0, nil, false
	}
	payload := slot[slotHeaderLen : slotHeaderLen+int(n)]
	if slotSum(slot[4:20], payload) != binary.LittleEndian.Uint32(slot[20:24]) {
		return 0, 0, nil, false
	}
	return kind, seq, payload, true
}

func slotSum(head, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, head), castagnoli, payload)
}

// encodeSlot fills slot (all of it: what follows the payload is zeroed).
func encodeSlot(slot []byte, kind recordKind, seq uint64, payload []byte) {
	copy(slot, recordMagic)
	slot[4], slot[5], slot[6], slot[7] = byte(kind), 0, 0, 0
	binary.LittleEndian.PutUint64(slot[8:16], seq)
	binary.LittleEndian.PutUint32(slot[16:20], uint32(len(payload)))
	clear(slot[slotHeaderLen+copy(slot[slotHeaderLen:], payload):])
	binary.LittleEndian.PutUint32(slot[20:24], slotSum(slot[4:20], payload))
}

// errNotInPlace: the file is not the one read (another size), so it is written whole.
var errNotInPlace = errors.New("record changed size")

// writeRecord writes the record that follows cur. In place when cur is a record file of
// this format with room for payload (fdatasync-ed when sync); otherwise a new file is
// written whole, durably (a destination's first record, a payload that outgrew its slot,
// a file none of whose slots can be read, or a legacy intent, which is then removed).
func (s *Spool) writeRecord(id string, cur record, kind recordKind, payload []byte, sync bool) (record, error) {
	return s.writeRecordTo(nil, id, cur, kind, payload, sync)
}

// writeRecordTo is writeRecord through *f, the record file an attempt holds open (nil: the
// file is opened for the write). A write that replaces the file whole closes *f and sets it
// to nil: it no longer names the record.
func (s *Spool) writeRecordTo(f **os.File, id string, cur record, kind recordKind, payload []byte, sync bool) (record, error) {
	next := record{exists: true, valid: true, kind: kind, seq: cur.seq + 1, payload: payload, slotSize: cur.slotSize}
	need := slotHeaderLen + len(payload)
	if cur.valid && !cur.legacy && kind == recordClear && cur.kind == recordReceived {
		// The secret's slot must not outlive its storing: both slots are written clear in
		// one write, the one after the secret's at seq+1 and the secret's own at seq+2.
		// Torn anywhere, the newest valid slot is a clear one.
		buf := getBuffer(2 * cur.slotSize)
		defer putBuffer(buf)
		file := *buf
		for _, seq := range []uint64{cur.seq + 1, cur.seq + 2} {
			off := int(seq%2) * cur.slotSize
			encodeSlot(file[off:off+cur.slotSize], kind, seq, nil)
		}
		next.seq = cur.seq + 2
		err := s.writeSlot(f, id, 0, int64(len(file)), file, sync)
		if !errors.Is(err, errNotInPlace) {
			return next, err
		}
		next.seq = cur.seq + 1
	} else if cur.valid && !cur.legacy && cur.slotSize >= need {
		buf := getBuffer(cur.slotSize)
		defer putBuffer(buf)
		slot := *buf
		encodeSlot(slot, kind, next.seq, payload)
		err := s.writeSlot(f, id, int64(next.seq%2)*int64(cur.slotSize), 2*int64(cur.slotSize), slot, sync)
		if !errors.Is(err, errNotInPlace) {
			return next, err
		}
	}
	next.slotSize = minSlotSize
	for next.slotSize < need {
		next.slotSize *= 2
	}
	file := make([]byte, 2*next.slotSize)
	off := int(next.seq%2) * next.slotSize
	encodeSlot(file[off:off+next.slotSize], kind, next.seq, payload)
	if f != nil && *f != nil {
		(*f).Close()
		*f = nil
	}
	write := func(path string, body []byte) error { s.ownFlushes.Add(2); return durable.WriteFile(path, body) }
	if s.group != nil {
		write = func(path string, body []byte) error { return durable.WriteFileGroup(path, body, s.group) }
	}
	if err := write(s.recordName(id), file); err != nil {
		return cur, fmt.Errorf("spool: %w", err)
	}
	if cur.legacy {
		if err := os.Remove(s.legacyName(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return next, fmt.Errorf("spool: %w", err)
		}
	}
	return next, nil
}

// slotBuffers keeps the buffers of in-place writes (a slot, or both slots of a clear) for
// the next: each write fills the whole buffer it takes, and putBuffer zeroes it, so no
// secret waits in the pool.
var slotBuffers sync.Pool

// getBuffer returns a buffer of n bytes, from the pool when one there is large enough.
func getBuffer(n int) *[]byte {
	if p, ok := slotBuffers.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, max(n, 2*minSlotSize+1))
	return &b
}

// putBuffer zeroes p and keeps it for the next getBuffer.
func putBuffer(p *[]byte) {
	clear((*p)[:cap(*p)])
	slotBuffers.Put(p)
}

// writeSlot writes slot (one slot, or the whole file) at off in id's record file, which
// must be a regular file of size: through *held when the attempt holds it open (read whole
// by this process, under the destination's lease: its size is known), else opened for the
// write and checked.
func (s *Spool) writeSlot(held **os.File, id string, off, size int64, slot []byte, sync bool) error {
	name := s.recordName(id)
	var f *os.File
	if held != nil && *held != nil {
		f = *held
	} else {
		var err error
		f, err = os.OpenFile(name, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return errNotInPlace
		}
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("spool: %s is not a regular file", name)
		}
		if fi.Size() != size {
			return errNotInPlace
		}
	}
	if _, err := f.WriteAt(slot, off); err != nil {
		return fmt.Errorf("spool: write %s: %w", name, err)
	}
	if !sync {
		return nil
	}
	if s.group != nil {
		// Group commit: one flush for every writer waiting now (see UseGroupCommit).
		if err := s.group.SyncFile(int(f.Fd())); err != nil {
			return fmt.Errorf("spool: flush %s: %w", name, err)
		}
		return nil
	}
	s.ownFlushes.Add(1)
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("spool: fsync %s: %w", name, err)
	}
	return nil
}

// Attempt is the write-ahead record of one rotate request, the protocol that keeps every
// minted secret. Begin records durably that the request is about to be sent, with the key
// that was active before it. Then one of these ends it:
//   - Received: the secret arrived. It is written durably over the intent, so the record
//     now holds the secret; Stored then clears it once the sink holds it, or Keep moves it
//     to pending/ for the replayer when the sink did not take it;
//   - Settle: the outcome is known without a secret to keep (refused, never sent, or the
//     secret already stored from memory).
//
// An attempt that is neither (an unknown outcome, a crash) stays recorded, and Intent tells
// the next rotation of the destination to list keys before it sends anything. A secret a
// crash left in a record is found by the next process's first List and by the
// destination's next Pending.
type Attempt struct {
	s   *Spool
	id  string
	cur record // as this attempt last wrote it
	// f is the record file, open from Begin to the attempt's end, so its writes are one
	// pwrite each (nil: opened per write, as for a file Begin created).
	f *os.File
}

// Close lets go of the record file; the record stays as the attempt last wrote it (an
// attempt whose outcome is not known leaves its intent). Stored, Settle and Keep close it.
func (a *Attempt) Close() {
	if a != nil && a.f != nil {
		a.f.Close()
		a.f = nil
	}
}

// Begin records, durably, that a rotate of i.DestinationID is about to be sent.
func (s *Spool) Begin(i Intent) (*Attempt, error) {
	read := getBuffer(2*minSlotSize + 1)
	defer putBuffer(read) // what was read (cur) is not used once the intent is written
	f, cur, err := s.openRecord(i.DestinationID, *read)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	a := &Attempt{s: s, id: i.DestinationID, f: f}
	if cur.valid && cur.kind == recordReceived {
		// A secret is waiting in the record (the rotation's first step moves it; this is
		// the belt to that brace): it goes to pending/ before anything is written over it.
		a.Close() // moveReceived writes the record by its name
		if cur, _, err = s.moveReceived(i.DestinationID, cur); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(i)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("spool: encode intent: %w", err)
	}
	next, err := s.writeRecordTo(&a.f, i.DestinationID, cur, recordIntent, body, true)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.cur = next
	return a, nil
}

// openRecord opens id's record file to read it and write it in place (f nil when there is
// none of this format that can be: a legacy intent, an unreadable or oversized file), and
// reads it, into buf when it has room.
func (s *Spool) openRecord(id string, buf []byte) (*os.File, record, error) {
	f, err := os.OpenFile(s.recordName(id), os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		cur, err := s.readLegacy(id)
		return nil, cur, err
	}
	if err != nil {
		return nil, record{}, err
	}
	b, err := readOpenedInto(f, s.recordName(id), buf)
	switch {
	case errors.Is(err, errTooLarge):
		f.Close()
		return nil, record{exists: true}, nil // unreadable: the next write replaces it whole
	case err != nil:
		f.Close()
		return nil, record{}, err
	}
	cur := parseRecord(b)
	if !cur.valid || int64(len(b)) != 2*int64(cur.slotSize) {
		f.Close() // written whole by the next write
		return nil, cur, nil
	}
	return f, cur, nil
}

// Received writes e durably over the intent: the key is known now, and the secret is kept
// until Stored or Keep. An error means e is not spooled (and the intent stays recorded).
func (a *Attempt) Received(e Entry) error {
	body, err := a.s.encode(e)
	if err != nil {
		return err
	}
	next, err := a.s.writeRecordTo(&a.f, a.id, a.cur, recordReceived, body, true)
	if err != nil {
		return err
	}
	a.cur = next
	return nil
}

// Settle ends the attempt: its outcome is known and nothing waits. It is not fsynced: a
// record a crash brings back only makes the next rotation list keys before it rotates.
func (a *Attempt) Settle() error { return a.clear() }

// Stored ends the attempt once the sink holds the secret Received kept. The clear is not
// fsynced: a received secret a crash brings back is found already stored by the replayer,
// and removed then.
func (a *Attempt) Stored() error { return a.clear() }

// Keep hands e, which the sink did not take, to the replayer: it is written to pending/
// durably, then the record is cleared. If that fails, e stays in the record, and the
// replayer reads it there.
func (a *Attempt) Keep(e Entry) error {
	if a.cur.kind != recordReceived {
		return nil
	}
	if err := a.s.Put(e); err != nil {
		a.s.hold(a.id)
		a.Close()
		return err
	}
	return a.clear()
}

func (a *Attempt) clear() error {
	defer a.Close()
	next, err := a.s.writeRecordTo(&a.f, a.id, a.cur, recordClear, nil, false)
	if err != nil {
		return err
	}
	a.cur = next
	return nil
}

// hold notes that id's record holds a secret that is not in pending/: the next List reads it.
func (s *Spool) hold(id string) {
	s.mu.Lock()
	s.held[id] = true
	s.mu.Unlock()
}

// moveReceived copies the secret in id's record cur to pending/ (durably; the same name
// as any earlier copy) and clears the record. A record whose secret cannot be read is moved
// aside to corrupt/ instead.
func (s *Spool) moveReceived(id string, cur record) (record, []Corrupt, error) {
	e, reason := s.decode(filepath.Base(s.recordName(id)), cur.payload)
	if reason != "" {
		c, err := s.moveAside(s.recordName(id), reason)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return record{}, nil, nil // another process moved it aside first
		case err != nil:
			return cur, nil, err
		}
		return record{}, []Corrupt{c}, nil
	}
	if err := s.Put(e); err != nil {
		return cur, nil, err
	}
	next, err := s.writeRecord(id, cur, recordClear, nil, false)
	return next, nil, err
}

// receivedKeyID is the key id of the secret a received record holds, read without
// unsealing it.
func receivedKeyID(payload []byte) string {
	var fe struct {
		KeyID string `json:"key_id"`
	}
	_ = json.Unmarshal(payload, &fe)
	return fe.KeyID
}

// Intent returns the recorded intent of destinationID, if any: a rotate request whose
// outcome is not known. A record that cannot be read counts as one with no baseline, so
// the next rotation lists keys first.
func (s *Spool) Intent(destinationID string) (Intent, bool, error) {
	rec, err := s.readRecord(destinationID)
	switch {
	case err != nil:
		return Intent{}, false, fmt.Errorf("spool: %w", err)
	case !rec.exists:
		return Intent{}, false, nil
	case !rec.valid:
		return Intent{DestinationID: destinationID}, true, nil
	case rec.kind != recordIntent:
		return Intent{}, false, nil
	}
	var i Intent
	if err := json.Unmarshal(rec.payload, &i); err != nil || i.DestinationID != destinationID {
		return Intent{DestinationID: destinationID}, true, nil
	}
	return i, true, nil
}

// Intents lists the rotate requests whose outcome is not yet known (for `rotatord spool
// list`); it changes nothing. An unreadable record is listed with its destination id only.
func (s *Spool) Intents() ([]Intent, error) {
	ids, err := s.recordIDs()
	if err != nil {
		return nil, err
	}
	var out []Intent
	for _, id := range ids {
		if i, found, err := s.Intent(id); err == nil && found {
			out = append(out, i)
		}
	}
	return out, nil
}

// recordIDs lists the destinations that have a record (of this format or a legacy one).
func (s *Spool) recordIDs() ([]string, error) {
	des, err := os.ReadDir(s.intents)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, de := range des {
		name := de.Name()
		id, ok := strings.CutSuffix(name, ".rec")
		if !ok {
			id, ok = strings.CutSuffix(name, ".json")
		}
		if !ok || strings.HasPrefix(name, ".") || !de.Type().IsRegular() || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// received reads the secrets waiting in records: every record's on the first call with
// recover (a crash may have left one anywhere), then only those that hold notes. With
// recover each is also copied to pending/ (durably, never cleared here: the record is its
// destination's, cleared by its rotation or by Remove under the destination's lock).
func (s *Spool) received(recover bool) ([]Entry, []Corrupt, error) {
	var ids []string
	s.mu.Lock()
	all := !recover || !s.recovered
	if recover {
		s.recovered = true
		for id := range s.held {
			ids = append(ids, id)
		}
		clear(s.held)
	}
	s.mu.Unlock()
	if all {
		var err error
		if ids, err = s.recordIDs(); err != nil {
			return nil, nil, err
		}
	}
	var entries []Entry
	var corrupt []Corrupt
	for _, w := range s.waiting(ids) {
		id, rec := w.id, w.rec
		e, reason := s.decode(filepath.Base(s.recordName(id)), rec.payload)
		switch {
		case reason != "" && recover:
			c, err := s.moveAside(s.recordName(id), reason)
			if err != nil {
				return nil, nil, err
			}
			corrupt = append(corrupt, c)
		case reason != "":
			corrupt = append(corrupt, Corrupt{File: s.recordName(id), Reason: reason})
		case recover:
			if err := s.Put(e); err != nil {
				s.hold(id)
				return nil, nil, err
			}
		default:
			e.File = s.recordName(id)
			entries = append(entries, e)
		}
	}
	return entries, corrupt, nil
}

type waitingRecord struct {
	id  string
	rec record
}

// scanReaders is how many records are read at once when all are scanned: a start with
// 10,000 destinations reads 10,000 small files, and the reads wait on the kernel more
// than on the CPU.
const scanReaders = 8

// waiting reads the records of ids, scanReaders at a time, and returns those that hold a
// received secret.
func (s *Spool) waiting(ids []string) []waitingRecord {
	var (
		mu   sync.Mutex
		out  []waitingRecord
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range min(scanReaders, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if rec, err := s.readRecord(id); err == nil && rec.valid && rec.kind == recordReceived {
					mu.Lock()
					out = append(out, waitingRecord{id: id, rec: rec})
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
