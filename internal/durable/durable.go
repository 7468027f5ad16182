// Package durable writes files so that they survive a crash whole: a reader finds the old
// content or the new, never a part, and once WriteFile returns the new content is on disk.
package durable

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// WriteFile writes body to path (mode 0600, parent directories 0700) through a temporary
// file in the same directory: write, fsync, rename, then fsync of the directory.
func WriteFile(path string, body []byte) error { return writePath(path, body, nil) }

// writePath writes body to path through writeFileIn (g nil: its own fsyncs).
func writePath(path string, body []byte, g *Group) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeFileIn(root, filepath.Base(path), body, g)
}

// SyncDir fsyncs a directory, making a rename or removal in it durable.
func SyncDir(dir string) error { return syncOpened(os.Open(dir)) }

// syncOpened fsyncs the directory just opened (or returns the error of opening it).
func syncOpened(d *os.File, err error) error {
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", d.Name(), err)
	}
	return nil
}

// WriteFileIn is WriteFile confined to root: name is relative to it, and no symbolic link
// or ".." can take the write (or the directories it creates) outside it. Temporary files
// that an interrupted write left beside name for longer than an hour are removed.
func WriteFileIn(root *os.Root, name string, body []byte) error {
	return writeFileIn(root, name, body, nil)
}

// WriteFileGroup is WriteFile with g's flushes instead of its own: the temporary file is
// made durable by a flush of the group before the rename, and the rename by one after, each
// shared with every writer of the group that waits at the same moment.
func WriteFileGroup(path string, body []byte, g *Group) error { return writePath(path, body, g) }

// writeFileIn writes name durably in root: with g nil by its own fsyncs (the file's, then
// the directory's), else by g's shared flushes.
func writeFileIn(root *os.Root, name string, body []byte, g *Group) error {
	dir := filepath.Dir(name)
	if err := root.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	removeStale(root, dir, "."+filepath.Base(name)+".")
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	tmpName := filepath.Join(dir, "."+filepath.Base(name)+"."+hex.EncodeToString(suffix[:])+".tmp")
	tmp, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer root.Remove(tmpName) // a no-op after the rename
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	sync := tmp.Sync
	if g != nil {
		sync = g.Sync
	}
	if err := sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := root.Rename(tmpName, name); err != nil {
		return err
	}
	if g != nil {
		return g.Sync()
	}
	return syncOpened(root.Open(dir))
}

// sweepEvery is how often one directory is swept for leftovers; a leftover waits at most
// this long beyond staleTemporary.
const sweepEvery = 30 * time.Minute

// swept remembers when each directory was last swept.
var swept = struct {
	sync.Mutex
	at map[string]time.Time
}{at: map[string]time.Time{}}

// staleTemporary is how old a temporary file must be before it is taken for a leftover:
// far longer than any write takes, so a write in progress elsewhere is never disturbed.
const staleTemporary = time.Hour

// removeStale removes the temporary files in dir whose names start with prefix and that
// are older than staleTemporary (leftovers of writes a crash interrupted). It lists a
// directory at most once per sweepEvery: a directory of 10,000 secrets is not listed for
// every write.
func removeStale(root *os.Root, dir, prefix string) {
	key := filepath.Join(root.Name(), dir)
	now := time.Now()
	swept.Lock()
	last, seen := swept.at[key]
	if seen && now.Sub(last) < sweepEvery {
		swept.Unlock()
		return
	}
	swept.at[key] = now
	swept.Unlock()
	d, err := root.Open(dir)
	if err != nil {
		return
	}
	des, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), prefix) || !strings.HasSuffix(de.Name(), ".tmp") {
			continue
		}
		if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemporary {
			_ = root.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// ProbeWritable creates and removes a temporary file in dir: it proves rotatord can
// create files there, and leaves nothing behind.
func ProbeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".rotatord-check-*")
	if err != nil {
		return err
	}
	return errors.Join(f.Close(), os.Remove(f.Name()))
}
