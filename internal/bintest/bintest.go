// Package bintest builds the rotatord binary once per test process, for tests that run the
// real binary (signals, SIGKILL at failpoints, the systemd notify protocol).
package bintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Version is stamped into the binary, so tests can find it in rotatord_build_info.
const Version = "bintest"

var (
	once sync.Once
	path string
	err  error
)

// Rotatord returns the path of a rotatord binary built as the Makefile builds it: static
// (CGO_ENABLED=0), -trimpath, with main.version set to Version.
func Rotatord(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			err = fmt.Errorf("bintest: cannot locate the source tree")
			return
		}
		dir, derr := os.MkdirTemp("", "rotatord-bin-")
		if derr != nil {
			err = derr
			return
		}
		path = filepath.Join(dir, "rotatord")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+Version, "-o", path, "./cmd/rotatord")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("bintest: go build: %v\n%s", berr, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}
