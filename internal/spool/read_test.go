package spool

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadRegular: a spool file is read whole in one system call when it fits, at any size
// up to maxFile; a larger one is errTooLarge, not read into memory; a FIFO or a link is
// refused without blocking or following it.
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 2047, 4096, 4097, 64 << 10, maxFile} {
		name := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte{'x'}, size)
		if size > 0 {
			want[size-1] = 'y'
		}
		if err := os.WriteFile(name, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readRegular(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d: read %d bytes, %v; want all of it", size, len(got), err)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegular(big); !errors.Is(err, errTooLarge) {
		t.Errorf("a file of maxFile+1 bytes: %v, want errTooLarge", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegular(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a FIFO: %v, want refused as not a regular file", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(big, link); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegular(link); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a symbolic link: %v, want ELOOP", err)
	}
}
