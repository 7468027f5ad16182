// Package cli is rotatord's commands: their flags, their output and their exit codes. What
// they do is internal/app's; cmd/rotatord makes one call, Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
)

// Env is what a command may touch of its process, so tests can run commands in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Reload delivers SIGHUP; nil in tests that do not send it.
	Reload <-chan os.Signal
	// Version is rotatord's version (main.version, stamped at build time).
	Version string
	// caught, when set, is given each flag set a command defines (usage reads the flags).
	caught func(*flagSet)
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

// version is Env.Version (main.version), for the commands that say it.
var version = "dev"

// command is one of rotatord's commands: its name (with a subcommand: "spool list"), what
// it does, and its function; commandArgs names its arguments.
type command struct {
	name, summary string
	run           func(context.Context, []string, Env) error
}

// commands is every command, in the order usage lists them. Their flags are each
// function's own, and usage reads them from there.
var commands = []command{
	{"run", "run the scheduler (the daemon; SIGHUP reloads)", runCommand},
	{"rotate", "rotate the named destinations now, once", rotateCommand},
	{"check", "validate the config (--online: ask webhook.co and Vault too)", checkCommand},
	{"plan", "next fire times (--online: read the sink, list the account)", planCommand},
	{"status", "stored secrets: age, next due, overdue, drift", statusCommand},
	{"spool list", "secrets waiting for the sink (never the secret)", spoolCommand},
	{"reload", "make the daemon reload (SIGHUP) and wait for the outcome", reloadCommand},
	{"report", "evidence for an audit period: every key, who minted it, where it was stored, findings", reportCommand},
	{"report verify", "check a report's digest (and with --key its transit signature)", reportCommand},
	{"verify", "which stored key verifies a captured delivery", verifyCommand},
	{"demo", "run against a built-in webhook.co emulator", demoCommand},
	{"version", "print the version", nil},
}

// usage is the top-level help, generated from the commands' own flags.
func usage() string {
	var b strings.Builder
	b.WriteString("rotatord rotates webhook.co replay-destination signing secrets into HashiCorp Vault.\n\nUsage:\n")
	for _, c := range commands {
		line := "  rotatord " + c.name
		for _, f := range commandFlags(c) {
			line += " [" + f + "]"
		}
		line += commandArgs[c.name]
		fmt.Fprintf(&b, "%s\n      %s\n", line, c.summary)
	}
	b.WriteString("\nEach command's --help lists its flags.\n\nThe default config path is " + config.DefaultPath + ".\n")
	return b.String()
}

// commandFlags lists c's flags as usage shows them ("--config PATH", "--dry-run"), read
// from the flag set c's function defines: it is run with --help, which stops it at the
// parse, before it does anything, and its flag set is caught.
func commandFlags(c command) []string {
	if c.run == nil {
		return nil
	}
	var caught *flagSet
	env := Env{Stdout: io.Discard, Stderr: io.Discard, caught: func(fs *flagSet) { caught = fs }}
	args := append(strings.Fields(c.name)[1:], "--help")
	_ = c.run(context.Background(), args, env)
	if caught == nil {
		return nil
	}
	var out []string
	caught.VisitAll(func(f *flag.Flag) {
		out = append(out, "--"+f.Name+placeholder(f))
	})
	return out
}

// placeholders name the values of the flags whose names do not say what they take.
var placeholders = map[string]string{"from": "TIME", "to": "TIME", "at": "TIME", "output": "FORMAT", "delivery": "FILE", "listing": "FILE",
	"out": "FILE", "credentials-dir": "DIR", "kv-mount": "MOUNT", "metrics-listen": "ADDR", "fail-on": "SEVERITY", "sign": "KEY", "rate-limit-share": "F"}

// placeholder names a flag's value in usage: " PATH" for --config, " D" for a duration,
// " N" for a number, nothing for a switch, else the flag's name in capitals.
func placeholder(f *flag.Flag) string {
	kind, _ := flag.UnquoteUsage(f)
	switch {
	case kind == "":
		return ""
	case f.Name == "config":
		return " PATH"
	case placeholders[f.Name] != "":
		return " " + placeholders[f.Name]
	case kind == "duration":
		return " D"
	case kind == "int", kind == "float", kind == "uint":
		return " N"
	}
	return " " + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
}

// Main runs one command and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Version != "" {
		version = env.Version
	}
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
		fmt.Fprintf(env.Stderr, "rotatord: %v\n\n%s", err, usage())
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
	case "version", "--version", "-version":
		fmt.Fprintf(env.Stdout, "rotatord %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage())
		return nil
	}
	for _, c := range commands {
		if c.name == cmd && c.run != nil {
			return c.run(ctx, rest, env)
		}
	}
	for _, c := range commands { // "spool", "report": their first word
		if first, _, sub := strings.Cut(c.name, " "); sub && first == cmd {
			return c.run(ctx, rest, env)
		}
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, env Env) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet("rotatord "+name, flag.ContinueOnError), name: name, stdout: env.Stdout}
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fs.usage(fs.Output()) }
	if env.caught != nil {
		env.caught(fs)
	}
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
