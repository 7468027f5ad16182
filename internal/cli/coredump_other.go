//go:build !linux

package cli

// limitCoreDumps is a no-op where rotatord has no tested way to turn core dumps off;
// use the service manager's limit (systemd: LimitCORE=0).
func limitCoreDumps() {}
