package durable

// Group commit: writers that need their writes durable at the same moment share one flush.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Group makes the writes of many writers durable with one flush per batch, as a database's
// group commit does: each writer writes (without a flush of its own), then calls Sync,
// which returns once a flush that began after the call has ended. One writer at a time
// flushes; the writers that call Sync meanwhile wait for the next flush, which covers
// them all. The flush is syncfs(2) of the filesystem that holds the group's directory:
// every file written there, their names, and their directories at once; a batch of one
// writer of one file is an fdatasync(2) of that file.
//
// syncfs reports a failed writeback only from Linux 5.8 on (earlier it returns 0
// regardless); NewGroup refuses an older kernel, and the caller flushes each file itself.
type Group struct {
	dir  *os.File
	sync func(fd int) error
	// one flushes a batch of one writer: fdatasync of its file (syncfs walks the whole
	// filesystem, which costs more than one file's flush when nobody shares it).
	one func(fd int) error

	mu      sync.Mutex
	cond    *sync.Cond
	started uint64 // flushes begun
	done    uint64 // flushes ended (one at a time, in order)
	running bool
	// next are the files of the writers waiting for the next flush (-1: a writer that needs
	// the whole filesystem flushed, after a rename).
	next []int
	errs [64]groupErr // the outcome of the last flushes, by number

	flushes, waits atomic.Uint64
}

type groupErr struct {
	gen uint64
	err error
}

// NewGroup opens the group of the filesystem that holds dir.
func NewGroup(dir string) (*Group, error) {
	if err := syncfsReportsErrors(); err != nil {
		return nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	// One flush now: a system call filter (seccomp) that refuses syncfs is found here,
	// before a rotation depends on it.
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		d.Close()
		return nil, fmt.Errorf("syncfs %s: %w", dir, err)
	}
	g := &Group{dir: d, sync: unix.Syncfs, one: unix.Fdatasync}
	g.cond = sync.NewCond(&g.mu)
	return g, nil
}

// Close releases the directory; Sync must not be called after.
func (g *Group) Close() error { return g.dir.Close() }

// Sync returns once everything the caller wrote before calling it is durable: it waits
// for the next flush to begin and end (beginning it when none runs). A flush that failed
// fails every writer it covered.
func (g *Group) Sync() error { return g.SyncFile(-1) }

// SyncFile is Sync for a caller that wrote only to the open file fd: when it turns out to
// be the only writer of its batch, the flush is an fdatasync of that file alone.
func (g *Group) SyncFile(fd int) error {
	g.waits.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	target := g.started + 1 // the first flush that begins from now on covers the caller
	g.next = append(g.next, fd)
	for g.done < target {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		batch := g.next
		g.next = nil
		g.mu.Unlock()
		var err error
		if len(batch) == 1 && batch[0] >= 0 {
			err = g.one(batch[0])
		} else {
			err = g.sync(int(g.dir.Fd()))
		}
		g.flushes.Add(1)
		g.mu.Lock()
		if err != nil {
			err = fmt.Errorf("syncfs %s: %w", g.dir.Name(), err)
		}
		g.errs[gen%uint64(len(g.errs))] = groupErr{gen: gen, err: err}
		g.running, g.done = false, gen
		g.cond.Broadcast()
	}
	if e := g.errs[target%uint64(len(g.errs))]; e.gen == target {
		return e.err
	}
	// Its outcome was overwritten by 64 later flushes while this writer slept: not known,
	// so not durable as far as it can tell.
	return errors.New("syncfs: the outcome of the flush was not kept")
}

// Flushes is how many flushes the group made; Waits how many Sync calls it served.
func (g *Group) Flushes() uint64 { return g.flushes.Load() }

// Waits is how many Sync calls the group served.
func (g *Group) Waits() uint64 { return g.waits.Load() }

// syncfsReportsErrors refuses a kernel older than 5.8, whose syncfs(2) does not report a
// failed writeback.
func syncfsReportsErrors() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	release := unix.ByteSliceToString(u.Release[:])
	major, minor, ok := kernelVersion(release)
	if !ok || major < 5 || (major == 5 && minor < 8) {
		return fmt.Errorf("kernel %s: syncfs reports failed writebacks only from Linux 5.8", release)
	}
	return nil
}

// kernelVersion reads "6.1.0-18-amd64" as 6, 1.
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}
