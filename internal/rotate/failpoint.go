//go:build rotatord_failpoints

package rotate

import (
	"fmt"
	"os"
	"time"
)

// failpointEnv names a step of a rotation at which the process stops forever, so that a
// test can SIGKILL the real binary exactly there (the no-loss tests of the spool). It is
// read once at start. Only binaries built with -tags rotatord_failpoints (the tests'
// bintest.RotatordWithFailpoints) have it; a release build ignores the variable.
const failpointEnv = "ROTATORD_TEST_FAILPOINT"

var armedFailpoint = os.Getenv(failpointEnv)

// failpoint blocks forever at step when the test armed it, after saying so on stderr.
func failpoint(step string) {
	if armedFailpoint == "" || armedFailpoint != step {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s reached\n", step)
	for {
		time.Sleep(time.Hour)
	}
}
