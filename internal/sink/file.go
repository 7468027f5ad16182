package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File stores each secret as JSON in <dir>/<path>.json, mode 0600 in 0700 directories,
// written to a temporary file, fsynced, renamed over the old one, and the directory fsynced:
// a reader sees the old secret or the new one, never half of either.
type File struct {
	dir string
}

// NewFile returns a file sink rooted at dir. It creates nothing until the first Put.
func NewFile(dir string) (*File, error) {
	if dir == "" {
		return nil, errors.New("file sink: no directory")
	}
	return &File{dir: filepath.Clean(dir)}, nil
}

// Name implements rotate.Sink.
func (f *File) Name() string { return "file" }

// Location implements rotate.Sink.
func (f *File) Location(path string) string { return f.file(path) }

func (f *File) file(path string) string {
	return filepath.Join(f.dir, filepath.FromSlash(path)+".json")
}

// Get implements rotate.Sink.
func (f *File) Get(ctx context.Context, path string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	name := f.file(path)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("file %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("file sink read: %w", err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return Record{}, fmt.Errorf("file %s: not the JSON rotatord writes", name)
	}
	rec, err := recordFromMap(m)
	if err != nil {
		return Record{}, fmt.Errorf("file %s: %w", name, err)
	}
	return rec, nil
}

// Put implements rotate.Sink.
func (f *File) Put(ctx context.Context, path string, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := f.file(path)
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	body, err := json.MarshalIndent(map[string]string{
		FieldSigningSecret: rec.Secret.Reveal(),
		FieldKeyID:         rec.KeyID,
		FieldDestinationID: rec.DestinationID,
		FieldRotatedAt:     formatTime(rec.RotatedAt),
		FieldManagedBy:     ManagedBy,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("file sink: encode: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+strings.TrimSuffix(filepath.Base(name), ".json")+".*.tmp")
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("file sink: %w", err)
	}
	if _, err := tmp.Write(append(body, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("file sink: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("file sink: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("file sink: fsync %s: %w", dir, err)
	}
	return nil
}
