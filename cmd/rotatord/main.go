// Command rotatord rotates the signing secrets of webhook.co replay destinations on cron
// schedules and stores every new secret in HashiCorp Vault. See README.md. The commands
// are internal/cli's; this is the process: signals, the version, and the exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rotatord/rotatord/internal/cli"
)

// version is stamped at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	// The first SIGINT/SIGTERM cancels ctx (graceful stop); once it has, stop() restores the
	// default handling so that a second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	// SIGHUP (systemd's ExecReload=) must never end the daemon; run reports it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	os.Exit(cli.Main(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Reload: hup, Version: version}))
}
