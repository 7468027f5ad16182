package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/lease"
)

func TestExclusive(t *testing.T) {
	dir := t.TempDir()
	run, err := New(dir, "rotatord run")
	if err != nil {
		t.Fatal(err)
	}
	// Asking who holds a lock creates nothing in the state dir.
	if h, err := run.Holder(context.Background(), "d1"); err != nil || h != "" {
		t.Fatalf("Holder before any lock = %q, %v", h, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "locks")); !os.IsNotExist(err) {
		t.Fatalf("NewLocal or Holder created the lock directory: %v", err)
	}
	manual, err := New(dir, "rotatord rotate")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	release, err := run.Acquire(ctx, "d1", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = manual.Acquire(ctx, "d1", 0)
	var held *lease.HeldError
	if !errors.As(err, &held) || !errors.Is(err, lease.ErrHeld) || !strings.Contains(held.Holder, "(rotatord run), since ") {
		t.Fatalf("second Acquire: %v", err)
	}
	// Another destination is free.
	r2, err := manual.Acquire(ctx, "d2", 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = r2.Release(ctx, false)
	// A waiter gets the lock once it is released.
	go func() { time.Sleep(200 * time.Millisecond); _ = release.Release(ctx, false) }()
	r3, err := manual.Acquire(ctx, "d1", 5*time.Second)
	if err != nil {
		t.Fatalf("waiting Acquire: %v", err)
	}
	_ = r3.Release(ctx, false)
	// A bounded wait gives up.
	r4, err := run.Acquire(ctx, "d1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := manual.Holder(ctx, "d1"); err != nil || !strings.Contains(h, "(rotatord run)") {
		t.Errorf("Holder of a held lock = %q, %v; want the run process", h, err)
	}
	defer func() {
		_ = r4.Release(ctx, false)
		if h, err := manual.Holder(ctx, "d1"); err != nil || h != "" {
			t.Errorf("Holder after release = %q, %v; want none", h, err)
		}
	}()
	start := time.Now()
	if _, err := manual.Acquire(ctx, "d1", 300*time.Millisecond); !errors.Is(err, lease.ErrHeld) || time.Since(start) < 300*time.Millisecond {
		t.Errorf("bounded wait: %v after %s", err, time.Since(start))
	}
}

// TestOneHolderAtATime: many contenders, one holder each time. Each holds the lock for a
// while (a sleep), so two holders at once, were the lock not exclusive, would overlap.
func TestOneHolderAtATime(t *testing.T) {
	dir := t.TempDir()
	var holders, overlaps, total atomic.Int32
	var wg sync.WaitGroup
	for i := range 3 {
		l, err := New(dir, "contender")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				release, err := l.Acquire(context.Background(), "d", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if holders.Add(1) > 1 {
					overlaps.Add(1)
				}
				total.Add(1)
				time.Sleep(200 * time.Microsecond) // the critical section: long enough to be met
				holders.Add(-1)
				_ = release.Release(context.Background(), false)
			}
			_ = i
		}()
	}
	wg.Wait()
	if overlaps.Load() != 0 || total.Load() != 300 {
		t.Errorf("%d times two held the lock at once, %d acquisitions; want 0 and 300", overlaps.Load(), total.Load())
	}
}

// TestLockFollowsNoPlantedLink: a symbolic link (or a FIFO) planted where a lock file goes
// is refused; its target is left untouched.
func TestLockFollowsNoPlantedLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "locks", "d1.lock")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "locks", "d2.lock"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := New(dir, "rotatord run")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"d1", "d2"} {
		done := make(chan error, 1)
		go func() { _, err := l.Acquire(context.Background(), id, 0); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: Acquire through a planted file succeeded", id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Acquire blocked on a planted FIFO", id)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me\n" {
		t.Errorf("the link's target was changed: %q", b)
	}
}

// TestLockFileSaysExactlyItsHolder: the lock file is rewritten in place, never emptied
// first (emptying a file and writing it again makes ext4 flush it at close, a disk write
// per rotation). What it says is still exactly the last holder, whatever the length of the
// text before it, and Continues still recognises this process's own release.
func TestLockFileSaysExactlyItsHolder(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	long, err := New(dir, "rotatord run --config /etc/rotatord/a-rather-long-path/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	short, err := New(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "locks", "d1.lock")
	for i, l := range []*Lease{long, short, short, long, short} {
		c, err := l.Acquire(ctx, "d1", 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(name)
		if !strings.HasPrefix(string(b), l.holder+", since ") || strings.Count(string(b), "\n") != 1 || !strings.HasSuffix(string(b), "\n") {
			t.Errorf("round %d: held lock file says %q, want only %q", i, b, l.holder)
		}
		if want := i == 2; c.Continues() != want {
			t.Errorf("round %d: Continues = %v, want %v", i, c.Continues(), want)
		}
		_ = c.Release(ctx, false)
		if b, _ := os.ReadFile(name); string(b) != releasedBy(l.holder) {
			t.Errorf("round %d: released lock file says %q, want %q", i, b, releasedBy(l.holder))
		}
	}
}

// TestLocalLocksFollowTheSpoolsRules: with a shared state directory, another user must not
// be able to hold a destination's lock forever or make rotatord write into another file.
// locks/ that another uid owns is refused, naming the owner; a lock file that is a hard
// link (its target would be overwritten with the holder) or another uid's is refused, and
// the target is left as it was.
func TestLocalLocksFollowTheSpoolsRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test gives files to another uid: run it as root (CI does)")
	}
	const id = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
	ctx := context.Background()

	state := t.TempDir()
	if err := os.Mkdir(filepath.Join(state, "locks"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(state, "locks"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	l, _ := New(state, "rotatord run")
	if _, err := l.Acquire(ctx, id, 0); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("locks/ of another uid: %v", err)
	}

	state = t.TempDir()
	victim := filepath.Join(state, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(state, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, filepath.Join(state, "locks", id+".lock")); err != nil {
		t.Fatal(err)
	}
	l, _ = New(state, "rotatord run")
	if _, err := l.Acquire(ctx, id, 0); err == nil || !strings.Contains(err.Error(), "hard link") {
		t.Errorf("a hard-linked lock file: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Errorf("the link's target now holds %q", b)
	}

	other := filepath.Join(state, "locks", "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b.lock")
	if err := os.WriteFile(other, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", 0); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("a lock file of another uid: %v", err)
	}
}

// TestLockFileKeepsItsSize: taking and releasing a lock write texts of one length, so the
// file is rewritten in place and never cut (a cut is a system call per rotation); and a
// locks/ removed while rotatord runs is made again, checked, by the next Acquire.
func TestLockFileKeepsItsSize(t *testing.T) {
	state := t.TempDir()
	ctx := context.Background()
	l, err := New(state, "rotatord run")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(state, "locks", "d1.lock")
	var sizes []int64
	for range 2 {
		c, err := l.Acquire(ctx, "d1", 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(name)
		sizes = append(sizes, fi.Size())
		_ = c.Release(ctx, false)
		fi, _ = os.Stat(name)
		sizes = append(sizes, fi.Size())
	}
	for _, s := range sizes {
		if s != sizes[0] {
			t.Errorf("lock file sizes %v: want one size held and released", sizes)
			break
		}
	}
	if err := os.RemoveAll(filepath.Join(state, "locks")); err != nil {
		t.Fatal(err)
	}
	c, err := l.Acquire(ctx, "d1", 0)
	if err != nil {
		t.Fatalf("Acquire after locks/ was removed: %v", err)
	}
	defer c.Release(ctx, false)
	if fi, err := os.Lstat(filepath.Join(state, "locks")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("locks/ made again: %v, %v", fi, err)
	}
}
