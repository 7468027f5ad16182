//go:build !rotatord_failpoints

package rotate

// failpoint does nothing in a release build: no environment variable can stop a rotation
// (see failpoint.go, built only with -tags rotatord_failpoints for the no-loss tests).
func failpoint(string) {}
