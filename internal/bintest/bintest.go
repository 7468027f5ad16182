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

// FailpointTag is the build tag that compiles in the test failpoints (ROTATORD_TEST_FAILPOINT).
const FailpointTag = "rotatord_failpoints"

// build is one binary, built at most once per test process.
type build struct {
	once sync.Once
	path string
	err  error
}

var release, withFailpoints build

// Rotatord returns the path of a rotatord binary built as the Makefile builds it: static
// (CGO_ENABLED=0), -trimpath, with main.version set to Version. It has no failpoints.
func Rotatord(t testing.TB) string {
	t.Helper()
	return release.get(t)
}

// RotatordWithFailpoints is Rotatord built with FailpointTag: ROTATORD_TEST_FAILPOINT=step
// stops it forever at that step of a rotation, so a test can SIGKILL it there.
func RotatordWithFailpoints(t testing.TB) string {
	t.Helper()
	return withFailpoints.get(t, "-tags", FailpointTag)
}

func (b *build) get(t testing.TB, flags ...string) string {
	t.Helper()
	b.once.Do(func() {
		var path string
		var err error
		defer func() { b.path, b.err = path, err }()
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
		args := append([]string{"build", "-trimpath", "-ldflags", "-X main.version=" + Version}, flags...)
		cmd := exec.Command("go", append(args, "-o", path, "./cmd/rotatord")...)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("bintest: go build: %v\n%s", berr, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}
