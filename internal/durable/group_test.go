package durable

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestGroup is a group on a temporary directory whose flush is fake: it records, for each
// flush, the writes that had happened when it began, and takes a while.
func newTestGroup(t *testing.T, fail func(gen int) error) (*Group, *atomic.Int64, func() []int64) {
	t.Helper()
	g, err := NewGroup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	var written atomic.Int64
	var mu sync.Mutex
	var covered []int64 // for flush n: how many writes had happened when it began
	g.one = func(int) error {
		return errors.New("a batch of one: each writer here calls Sync, which needs the whole filesystem")
	}
	g.sync = func(int) error {
		mu.Lock()
		covered = append(covered, written.Load())
		gen := len(covered)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		if fail != nil {
			return fail(gen)
		}
		return nil
	}
	return g, &written, func() []int64 { mu.Lock(); defer mu.Unlock(); return append([]int64(nil), covered...) }
}

// TestGroupCommit: 64 writers at once are served by far fewer flushes than writes, and no
// writer returns before a flush that began after its write has ended.
func TestGroupCommit(t *testing.T) {
	g, written, covered := newTestGroup(t, nil)
	const writers, rounds = 64, 20
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				n := written.Add(1) // "the write"
				if err := g.Sync(); err != nil {
					t.Error(err)
					return
				}
				// Some flush that began by now saw at least n writes when it began (it began
				// after the write), and Sync returned only after it ended.
				ok := false
				for _, c := range covered() {
					ok = ok || c >= n
				}
				if !ok {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d writes returned before a flush that began after them", bad.Load())
	}
	if w, f := g.Waits(), g.Flushes(); w != writers*rounds || f*4 > w {
		t.Errorf("%d writes, %d flushes: want the writes to share flushes (at most a quarter as many)", w, f)
	}
}

// TestGroupCommitFailure: a flush that fails fails the writers it served, and only them.
func TestGroupCommitFailure(t *testing.T) {
	g, _, _ := newTestGroup(t, func(gen int) error {
		if gen == 2 {
			return errors.New("EIO")
		}
		return nil
	})
	if err := g.Sync(); err != nil {
		t.Fatalf("flush 1: %v", err)
	}
	if err := g.Sync(); err == nil {
		t.Fatal("flush 2 failed, and its writer was told nothing")
	}
	if err := g.Sync(); err != nil {
		t.Fatalf("flush 3: %v", err)
	}
}

// TestWriteFileGroup: a file written through a group is there, whole, and the group
// flushed for it (before the rename and after).
func TestWriteFileGroup(t *testing.T) {
	dir := t.TempDir()
	g, err := NewGroup(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	path := filepath.Join(dir, "a", "record")
	if err := WriteFileGroup(path, []byte("intent"), g); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "intent" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if g.Flushes() != 2 {
		t.Errorf("%d flushes, want 2 (the data before the rename, the rename after)", g.Flushes())
	}
}

func TestKernelVersion(t *testing.T) {
	for release, want := range map[string][2]int{"6.1.0-18-amd64": {6, 1}, "5.8.0": {5, 8}, "4.19.0-26-cloud-amd64": {4, 19}, "6.18.44-fc-v1272": {6, 18}, "5.10+": {5, 10}} {
		if maj, min, ok := kernelVersion(release); !ok || maj != want[0] || min != want[1] {
			t.Errorf("%s: %d.%d %v", release, maj, min, ok)
		}
	}
	if _, _, ok := kernelVersion("garbage"); ok {
		t.Error("garbage read as a version")
	}
}

// TestBatchOfOneFlushesItsFile: a writer alone in its batch that names its file gets an
// fdatasync of that file; two at once share a syncfs.
func TestBatchOfOneFlushesItsFile(t *testing.T) {
	g, err := NewGroup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var ones, alls atomic.Int32
	release := make(chan struct{})
	g.one = func(int) error { ones.Add(1); return nil }
	g.sync = func(int) error { alls.Add(1); <-release; return nil }
	if err := g.SyncFile(7); err != nil || ones.Load() != 1 || alls.Load() != 0 {
		t.Fatalf("alone: %v; %d fdatasyncs, %d syncfs; want 1, 0", err, ones.Load(), alls.Load())
	}
	// A writer that needs the filesystem holds a flush; two writers of files wait for the next.
	done := make(chan error, 3)
	go func() { done <- g.Sync() }()
	for alls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() { done <- g.SyncFile(8) }()
	go func() { done <- g.SyncFile(9) }()
	for g.Waits() < 4 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if ones.Load() != 1 || alls.Load() != 2 {
		t.Errorf("%d fdatasyncs, %d syncfs; want 1 (the first writer alone) and 2 (the rename's, then the two writers')", ones.Load(), alls.Load())
	}
}
