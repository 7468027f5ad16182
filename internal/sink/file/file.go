package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/sink"

	"github.com/rotatord/rotatord/internal/durable"
)

var (
	_ sink.Sink         = (*Sink)(nil)
	_ preflight.Checker = (*Sink)(nil)
)

// Sink stores each secret as JSON in <dir>/<path>.json, mode 0600 in 0700 directories,
// written to a temporary file, fsynced, renamed over the old one, and the directory fsynced:
// a reader sees the old secret or the new one, never half of either.
type Sink struct {
	dir string
}

// New returns a file sink rooted at dir. It creates nothing until the first Put.
func New(dir string) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("file sink: no directory")
	}
	return &Sink{dir: filepath.Clean(dir)}, nil
}

// Name implements rotate.Sink.
func (f *Sink) Name() string { return "file" }

// Location implements rotate.Sink.
func (f *Sink) Location(path string) string { return f.file(path) }

// Dir is the directory that holds path's file (created by the first Put).
func (f *Sink) Dir(path string) string { return filepath.Dir(f.file(path)) }

// rel is path's file relative to the sink's directory.
func (f *Sink) rel(path string) string { return filepath.FromSlash(path) + ".json" }

func (f *Sink) file(path string) string {
	return filepath.Join(f.dir, filepath.FromSlash(path)+".json")
}

// local refuses a path that would leave the sink's directory (absolute, or with "..").
func local(path string) error {
	if !filepath.IsLocal(filepath.FromSlash(path)) {
		return fmt.Errorf("file sink: path %q leaves the sink directory: %w", path, sink.ErrMisconfigured)
	}
	return nil
}

// Get implements rotate.Sink.
func (f *Sink) Get(ctx context.Context, path string) (sink.Record, error) {
	if err := ctx.Err(); err != nil {
		return sink.Record{}, err
	}
	if err := local(path); err != nil {
		return sink.Record{}, err
	}
	name := f.file(path)
	root, err := os.OpenRoot(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return sink.Record{}, fmt.Errorf("file %s: %w", name, sink.ErrNotFound)
	}
	if err != nil {
		return sink.Record{}, fmt.Errorf("file sink: %w", err)
	}
	defer root.Close()
	// Through the root: no link can make rotatord read a file outside the sink's directory.
	b, err := readRegularIn(root, f.rel(path))
	if errors.Is(err, fs.ErrNotExist) {
		return sink.Record{}, fmt.Errorf("file %s: %w", name, sink.ErrNotFound)
	}
	if err != nil {
		return sink.Record{}, fmt.Errorf("file sink read %s: %w", name, err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return sink.Record{}, fmt.Errorf("file %s: not the JSON rotatord writes", name)
	}
	rec, err := sink.DecodeRecord(m)
	if err != nil {
		return sink.Record{}, fmt.Errorf("file %s: %w", name, err)
	}
	return rec, nil
}

// ReadAck reads the keys a consumer acknowledged holding: <dir>/<path>/consumers/<consumer>.json.
func (f *Sink) ReadAck(ctx context.Context, path, consumer string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := sink.AckPath(path, consumer)
	if err := local(p); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	defer root.Close()
	b, err := readRegularIn(root, f.rel(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file %s: %w", f.file(p), sink.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("file sink read %s: %w", f.file(p), err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("file %s: not JSON", f.file(p))
	}
	keys, err := sink.DecodeAck(m)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", f.file(p), err)
	}
	return keys, nil
}

// maxFileBytes bounds a secret's file: rotatord writes a few hundred bytes.
const maxFileBytes = 1 << 20

// readRegularIn reads rel under root when it is a regular file: opened without following a
// final link and without blocking (a FIFO planted there would otherwise hold the reader
// forever), at most maxFileBytes.
func readRegularIn(root *os.Root, rel string) ([]byte, error) {
	// os.Root follows a link that stays inside the root; the README promises none is.
	if li, err := root.Lstat(rel); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		return nil, errors.New("not a regular file (a symbolic link)")
	}
	file, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(file, maxFileBytes+1))
	if err == nil && len(b) > maxFileBytes {
		err = fmt.Errorf("larger than %d bytes", maxFileBytes)
	}
	return b, err
}

// Put implements rotate.Sink. Files have no versions: ifVersion is ignored, the rotator
// compares rotated_at before writing, and the returned sink.Version is "" (read it back).
func (f *Sink) Put(ctx context.Context, path string, rec sink.Record, ifVersion sink.Version) (sink.Version, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := local(path); err != nil {
		return "", err
	}
	fields := rec.Fields()
	fields[sink.FieldManagedBy] = sink.ManagedBy
	body, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return "", fmt.Errorf("file sink: encode: %w", err)
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return "", fmt.Errorf("file sink: %w", err)
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return "", fmt.Errorf("file sink: %w", err)
	}
	defer root.Close()
	// Confined to the sink's directory: a symbolic link planted there cannot take the
	// secret (or the directories created for it) anywhere else.
	if err := durable.WriteFileIn(root, f.rel(path), append(body, '\n')); err != nil {
		return "", fmt.Errorf("file sink %s: %w", f.file(path), err)
	}
	return "", nil
}

// Preflight implements preflight.Checker: each target's directory can be created, and
// files created in it.
func (f *Sink) Preflight(_ context.Context, targets []preflight.Target) preflight.Readiness {
	r := preflight.Readiness{Blocked: map[string]error{}}
	for _, t := range targets {
		dir := f.Dir(t.Path)
		err := os.MkdirAll(dir, 0o700)
		if err == nil {
			err = durable.ProbeWritable(dir)
		}
		if err != nil {
			r.Blocked[t.Name] = fmt.Errorf("file sink: %w", err)
		}
	}
	return r
}
