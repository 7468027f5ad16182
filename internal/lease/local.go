// Package lease makes sure one process at a time rotates a destination. The provider does
// not serialise rotations: two rotate calls in flight for one destination can leave two
// active keys. Local is the lock between processes that share a state directory (a
// `rotatord rotate` next to `rotatord run`): an advisory flock per destination whose file
// names the holder, so the one that waits or gives up can say who holds it.
package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrHeld is returned when another process holds the destination.
var ErrHeld = errors.New("another process is rotating this destination")

// HeldError says who holds the lock.
type HeldError struct {
	DestinationID string
	Holder        string // "pid 1234 on host, rotatord run, since …"; empty when unknown
}

// Error implements error.
func (e *HeldError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("destination %s is being rotated by another process", e.DestinationID)
	}
	return fmt.Sprintf("destination %s is being rotated by %s", e.DestinationID, e.Holder)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Local locks destinations with flock(2) on files under <stateDir>/locks.
type Local struct {
	dir     string
	holder  string // who we are, written into the lock file
	now     func() time.Time
	pollGap time.Duration
}

// NewLocal creates the lock directory (0700). holder describes this process, e.g. "rotatord run".
func NewLocal(stateDir, holder string) (*Local, error) {
	dir := filepath.Join(stateDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	host, _ := os.Hostname()
	return &Local{dir: dir, holder: fmt.Sprintf("pid %d on %s (%s)", os.Getpid(), host, holder), now: time.Now, pollGap: 100 * time.Millisecond}, nil
}

// Acquire locks destinationID. With wait > 0 it retries until the lock is free, wait has
// passed, or ctx is done; otherwise it fails at once with a *HeldError. release unlocks.
func (l *Local) Acquire(ctx context.Context, destinationID string, wait time.Duration) (release func(), err error) {
	name := filepath.Join(l.dir, destinationID+".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	deadline := l.now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lease: lock %s: %w", name, err)
		}
		if wait <= 0 || !l.now().Before(deadline) {
			holder := readHolder(name)
			f.Close()
			return nil, &HeldError{DestinationID: destinationID, Holder: holder}
		}
		t := time.NewTimer(l.pollGap)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("lease: waiting for %s: %w", destinationID, ctx.Err())
		case <-t.C:
		}
	}
	// Say who holds it, for the one that waits.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(l.holder+", since "+l.now().UTC().Format(time.RFC3339)+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func readHolder(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
