package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/preflight"
)

var (
	_ lease.Lease       = (*Lease)(nil)
	_ preflight.Checker = (*Lease)(nil)
)

// Lease locks destinations with flock(2) on files under <stateDir>/locks.
type Lease struct {
	dir    string
	holder string // who we are, written into the lock file
	// released is releasedBy(holder), made once: what each Release writes and each Acquire
	// compares.
	released string
	now      func() time.Time
	pollGap  time.Duration
	// dirChecked: locks/ was made and checked (ownDir) by this process; again only when a
	// lock file cannot be created in it (it was removed meanwhile).
	dirChecked atomic.Bool
}

// euid is rotatord's effective uid, asked once (each lock file's owner is compared to it).
var euid = os.Geteuid()

// New returns the locks under <stateDir>/locks; holder describes this process, e.g.
// "rotatord run". It touches nothing: the directory (0700) is made by the first Acquire,
// so commands that only ask who holds a lock (status, check) leave the state dir alone.
func New(stateDir, holder string) (*Lease, error) {
	dir := filepath.Join(stateDir, "locks")
	host, _ := os.Hostname()
	l := &Lease{dir: dir, holder: fmt.Sprintf("pid %d on %s (%s)", os.Getpid(), host, holder), now: time.Now, pollGap: 100 * time.Millisecond}
	l.released = releasedBy(l.holder)
	return l, nil
}

// Acquire locks destinationID. With wait > 0 it retries until the lock is free, wait has
// passed, or ctx is done; otherwise it fails at once with a *lease.HeldError.
// Options (lease.GiveWay) do not apply to a lock on one host.
func (l *Lease) Acquire(ctx context.Context, destinationID string, wait time.Duration, _ ...lease.AcquireOption) (lease.Claim, error) {
	name := filepath.Join(l.dir, destinationID+".lock")
	f, size, err := l.openLock(name)
	if err != nil {
		return nil, err
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
			return nil, &lease.HeldError{DestinationID: destinationID, Holder: holder}
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
	// Was this process the last holder? (Release leaves its name behind; a file of another
	// length is not its release, and is not read.)
	released := l.released
	continues := false
	if size == int64(len(released)) {
		last := make([]byte, len(released))
		n, _ := f.ReadAt(last, 0)
		continues = string(last[:n]) == released
	}
	// Say who holds it, for the one that waits.
	text := l.holder + ", since " + l.now().UTC().Format(time.RFC3339) + "\n"
	rewrite(f, text, size)
	return localClaim{f: f, released: released, continues: continues, written: int64(len(text))}, nil
}

// openLock opens (creating) the lock file name, never through a planted link (it would
// make rotatord write the holder into its target), and returns its size. locks/ is made
// and checked on the first call, and again if it went away since.
func (l *Lease) openLock(name string) (*os.File, int64, error) {
	for {
		checked := l.dirChecked.Load()
		if !checked {
			if err := ownDir(l.dir); err != nil {
				return nil, 0, err
			}
			l.dirChecked.Store(true)
		}
		f, fi, err := openRegular(name, os.O_RDWR|os.O_CREATE)
		switch {
		case errors.Is(err, fs.ErrNotExist) && checked:
			l.dirChecked.Store(false) // locks/ was removed: make it again
		case err != nil:
			return nil, 0, fmt.Errorf("lease: %w", err)
		default:
			return f, fi.Size(), nil
		}
	}
}

// rewrite replaces f's content (size bytes, or more) with text in place: it writes first and
// then cuts what is left of a longer text, never emptying the file first (ext4 flushes a
// file emptied and written again when it is closed: a disk write for every rotation).
func rewrite(f *os.File, text string, size int64) {
	if _, err := f.WriteAt([]byte(text), 0); err != nil {
		return
	}
	if size != int64(len(text)) {
		_ = f.Truncate(int64(len(text)))
	}
}

// Holder says who holds destinationID's lock ("" when nobody does).
func (l *Lease) Holder(_ context.Context, destinationID string) (string, error) {
	name := filepath.Join(l.dir, destinationID+".lock")
	f, _, err := openRegular(name, os.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return "", nil
	}
	return readHolder(name), nil
}

// localClaim is a held flock. A flock cannot be lost while the process lives, and dies
// with it, so there is nothing to renew, no fencing number and nothing left unsettled.
type localClaim struct {
	f         *os.File
	released  string // releasedBy its holder
	continues bool
	written   int64 // the length of the text Acquire wrote
}

func (localClaim) Fence() int64                              { return 0 }
func (localClaim) Unsettled() bool                           { return false }
func (localClaim) TookOver() bool                            { return false }
func (localClaim) Keep(context.Context, time.Duration) error { return nil }
func (c localClaim) Continues() bool                         { return c.continues }

// releasedBy is what a released lock file says: its last holder, for Continues. A waiter's
// readHolder sees no holder while the lock is free (it checks the lock, not the text). It
// is padded to the length of what the holder writes when it takes the lock (", since " and
// a UTC time), so the file keeps one size and is never cut.
func releasedBy(holder string) string {
	const heldSuffix = len(", since 2006-01-02T15:04:05Z")
	return "released by " + holder + strings.Repeat(" ", heldSuffix-len("released by ")) + "\n"
}

// Release writes releasedBy and closes the file, which lets go of the lock.
func (c localClaim) Release(context.Context, bool) error {
	rewrite(c.f, c.released, c.written)
	return c.f.Close()
}

func readHolder(name string) string {
	f, _, err := openRegular(name, os.O_RDONLY)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// openRegular opens name without following a symbolic link and without blocking on a FIFO,
// and refuses anything but a regular file.
func openRegular(name string, flag int) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("%s is a symbolic link; remove it", name)
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file; remove it", name)
	}
	// The spool's rules: rotatord's own file, and no second name for it (a hard link's
	// target would be overwritten with the holder).
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		switch {
		case int(st.Uid) != euid:
			f.Close()
			return nil, nil, fmt.Errorf("%s belongs to uid %d, not to rotatord's uid %d; remove it", name, st.Uid, euid)
		case st.Nlink > 1:
			f.Close()
			return nil, nil, fmt.Errorf("%s is a hard link (%d names); remove it", name, st.Nlink)
		}
	}
	return f, fi, nil
}

// ownDir makes sure dir is a directory (not a link) that rotatord's uid owns, mode 0700, as
// the spool's directories are: no other user can plant or hold lock files in it.
func ownDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("lease: %s must be a directory, not a symbolic link or another file", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != euid {
		return fmt.Errorf("lease: %s belongs to uid %d, not to rotatord's uid %d; refusing to keep locks in it (remove it; rotatord creates it)", dir, st.Uid, euid)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("lease: %w", err)
		}
	}
	return nil
}

// Preflight implements preflight.Checker: New already made the locks directory, rotatord's
// own and not a link; a lock needs nothing more before the first rotation.
func (l *Lease) Preflight(context.Context, []preflight.Target) preflight.Readiness {
	return preflight.Readiness{}
}
