// Command rotatord rotates the signing secrets of webhook.co replay destinations on cron
// schedules and stores every new secret in HashiCorp Vault. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rotatord/rotatord/internal/app"
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
	os.Exit(Main(ctx, os.Args[1:], Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Reload: hup}))
}

// Env is what a command may touch of its process, so tests can run commands in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Reload delivers SIGHUP; nil in tests that do not send it.
	Reload <-chan os.Signal
}

// daemonEnv is the part of env the daemon uses.
func (e Env) daemonEnv() app.Env {
	return app.Env{Stderr: e.Stderr, Getenv: e.Getenv, Reload: e.Reload}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errUsage marks a command line that could not be parsed (exit 2).
var errUsage = errors.New("usage")

const usage = `rotatord rotates webhook.co replay-destination signing secrets into HashiCorp Vault.

Usage:
  rotatord run     [--config PATH] [--dry-run] [--allow-degraded]  run the scheduler (the daemon; SIGHUP reloads)
  rotatord rotate  [--config PATH] [--wait D] [--dry-run] [--force] NAME...  rotate the named destinations now, once
  rotatord check   [--config PATH] [--online] [--credentials-dir DIR]   validate the config (online: ask webhook.co and Vault)
  rotatord plan    [--config PATH] [--count N] [--from TIME] [--output table|json] [--online] [--listing FILE]   next fire times (online: read the sink, list the account)
  rotatord status  [--config PATH] [--at TIME] [--online] [--output table|json]  stored secrets: age, next due, overdue, drift
  rotatord spool list [--config PATH]           show secrets waiting for the sink (never the secret)
  rotatord reload  [--config PATH] [--timeout D] PID   make the daemon reload (SIGHUP) and wait for the outcome
  rotatord report  --from DATE --to DATE [--output text|json|csv|html] [--out FILE] [--sign KEY] [--fail-on error|warning] [--concurrency N] [NAME...]
                   evidence for an audit period: every key, who minted it, where it was stored, findings
  rotatord report verify [--key KEY] FILE       check a report's digest (and with --key its transit signature)
  rotatord verify  [--config PATH] --delivery FILE [--tolerance D] [--at TIME] NAME   which stored key verifies a captured delivery
  rotatord demo    [--metrics-listen ADDR] [--duration D] [--kv-mount MOUNT] [--rate-limit-share F]   run against a built-in webhook.co emulator
  rotatord version                              print the version

Each command's --help lists its flags.

The default config path is /etc/rotatord/config.yaml.
`

// Main runs one command and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	limitCoreDumps()
	// Nothing a command prints can drive the terminal (provider strings among it).
	if env.Stdout != nil && env.Stderr != nil {
		env.Stdout, env.Stderr = plainText{env.Stdout}, plainText{env.Stderr}
	}
	err := dispatch(ctx, args, env)
	if err == nil {
		return 0
	}
	var ee *exitError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.Stderr, "rotatord: %v\n\n%s", err, usage)
		return 2
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(env.Stderr, "rotatord: %v\n", ee.err)
		}
		return ee.code
	default:
		fmt.Fprintf(env.Stderr, "rotatord: %v\n", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command given", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCommand(ctx, rest, env)
	case "rotate":
		return rotateCommand(ctx, rest, env)
	case "check":
		return checkCommand(ctx, rest, env)
	case "demo":
		return demoCommand(ctx, rest, env)
	case "spool":
		return spoolCommand(ctx, rest, env)
	case "plan":
		return planCommand(ctx, rest, env)
	case "status":
		return statusCommand(ctx, rest, env)
	case "reload":
		return reloadCommand(ctx, rest, env)
	case "report":
		return reportCommand(ctx, rest, env)
	case "verify":
		return verifyCommand(ctx, rest, env)
	case "version", "--version", "-version":
		fmt.Fprintf(env.Stdout, "rotatord %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, env Env) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet("rotatord "+name, flag.ContinueOnError), name: name, stdout: env.Stdout}
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fs.usage(fs.Output()) }
	return fs
}

// flagSet is a command's flags, with what it says for --help: on stdout, naming its
// arguments (commandArgs), then every flag.
type flagSet struct {
	*flag.FlagSet
	name   string
	stdout io.Writer
}

// commandArgs names each command's arguments for its --help.
var commandArgs = map[string]string{"rotate": " NAME...", "reload": " PID", "report": " [NAME...]", "report verify": " FILE", "verify": " NAME"}

func (fs *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: rotatord %s [flags]%s\n", fs.name, commandArgs[fs.name])
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// helpAsked reports whether args ask for help (before "--", which ends the flags).
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// parseFlags parses args and turns a parse error into a usage error.
// Flags may come before or after the names (`rotate billing-prod --config x`); "--" ends
// the flags.
func parseFlags(fs *flagSet, args []string) error {
	if helpAsked(args) {
		fs.usage(fs.stdout) // asked for: stdout, and exit 0
		return flag.ErrHelp
	}
	if err := fs.Parse(interspersed(fs.FlagSet, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// interspersed moves the flags of args before its other arguments, keeping each flag's
// value with it, so that the flag package (which stops at the first non-flag) sees them all.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			return append(append(flags, "--"), rest...)
		case len(a) < 2 || a[0] != '-':
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value takes the next argument, as the flag package would.
		if f := fs.Lookup(name); f != nil && i+1 < len(args) {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return append(append(flags, "--"), rest...)
}

// plural writes "1 problem", "2 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// timeFlag reads a flag's RFC 3339 time, or now when it is empty.
func timeFlag(name, value string) (time.Time, error) {
	if value == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q: want RFC 3339, e.g. 2026-11-26T12:00:00Z", errUsage, name, value)
	}
	return t, nil
}
