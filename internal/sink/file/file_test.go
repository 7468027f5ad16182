package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink/file"

	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
)

var rec = sink.Record{
	DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f",
	KeyID:         "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b",
	Secret:        secret.New("whsec_dGhpcyBpcyBhIHRlc3Qgc2lnbmluZyBzZWNyZXQhIQ=="),
	RotatedAt:     time.Date(2026, 11, 26, 3, 0, 0, 123456789, time.UTC),
}

func TestFileSink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Get(ctx, "webhookco/billing"); !errors.Is(err, sink.ErrNotFound) {
		t.Fatalf("Get before Put: %v", err)
	}
	if _, err := s.Put(ctx, "webhookco/billing", rec, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "webhookco/billing")
	if err != nil || !got.Same(rec) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	name := filepath.Join(dir, "webhookco", "billing.json")
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	di, err := os.Stat(filepath.Dir(name))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v; want 0700", di.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the secret (no temp files left)", len(entries))
	}
	if err := os.WriteFile(name, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "webhookco/billing"); err == nil || !strings.Contains(err.Error(), "not the JSON rotatord writes") {
		t.Errorf("corrupt file: %v", err)
	}
}

// TestFileSinkStaysInItsDirectory: a path that would leave the sink's directory is refused,
// and nothing is written outside it.
func TestFileSinkStaysInItsDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sink")
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../escaped", "/etc/escaped", "webhookco/../../escaped"} {
		if _, err := s.Put(context.Background(), p, rec, sink.NoCAS); !errors.Is(err, sink.ErrMisconfigured) {
			t.Errorf("Put(%q) = %v, want ErrMisconfigured", p, err)
		}
		if _, err := s.Get(context.Background(), p); !errors.Is(err, sink.ErrMisconfigured) {
			t.Errorf("Get(%q) = %v, want ErrMisconfigured", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escaped.json")); !os.IsNotExist(err) {
		t.Errorf("a file was written outside the sink: %v", err)
	}
}

// TestFileSinkFollowsNoLinkOut: a symbolic link inside the sink's directory that points
// outside it is not followed by writes or reads; a temporary file a crash left behind for
// more than an hour is cleaned at the next write.
func TestFileSinkFollowsNoLinkOut(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "webhookco")); err != nil {
		t.Fatal(err)
	}
	s, _ := file.New(dir)
	if _, err := s.Put(context.Background(), "webhookco/billing", rec, sink.NoCAS); err == nil {
		t.Error("Put through a link to outside the sink succeeded")
	}
	if des, _ := os.ReadDir(outside); len(des) != 0 {
		t.Errorf("files written outside the sink: %v", des)
	}
	if err := os.WriteFile(filepath.Join(outside, "billing.json"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "webhookco/billing"); err == nil {
		t.Error("Get through a link to outside the sink succeeded")
	}

	clean := t.TempDir()
	s, _ = file.New(clean)
	if err := os.MkdirAll(filepath.Join(clean, "webhookco"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(clean, "webhookco", ".billing.json.0123456789abcdef.tmp")
	if err := os.WriteFile(old, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "webhookco/billing", rec, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there: %v", err)
	}
	if got, err := s.Get(context.Background(), "webhookco/billing"); err != nil || !got.Same(rec) {
		t.Errorf("Get = %+v, %v", got, err)
	}
}

// TestFileSinkRefusesSpecialFilesAndLinks: a FIFO planted where a secret's file goes makes
// Get fail at once (it used to block status and rotate until killed), and so does a
// symbolic link, even one that stays inside the sink's directory: links are never followed.
func TestFileSinkRefusesSpecialFilesAndLinks(t *testing.T) {
	dir := t.TempDir()
	fs, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(dir, "webhookco"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "webhookco", "fifo.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := fs.Get(ctx, "webhookco/fifo"); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Get of a FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get of a FIFO blocked")
	}
	if _, err := fs.Put(ctx, "webhookco/real", rec, sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.json", filepath.Join(dir, "webhookco", "link.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Get(ctx, "webhookco/link"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Get through a link inside the directory: %v", err)
	}
}
