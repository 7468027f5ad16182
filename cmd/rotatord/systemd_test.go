package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
)

// TestReloadCommandWaits: `rotatord reload PID` (the unit's ExecReload) returns only once the
// daemon has applied the new config, and says so; a config the daemon rejects fails the
// command; an invalid file is refused before the daemon is signalled at all.
func TestReloadCommandWaits(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", fmt.Sprintf("metrics:\n  listen: %s\ndefaults:\n  schedule: \"@daily\"\n", freeAddr(t)), "billing")
	daemon, logs := startDaemon(t, fs)
	pid := fmt.Sprint(daemon.Process.Pid)

	// A second destination: reload returns after "config reloaded", with the new count.
	orders := fs.em.AddDestination("orders")
	body, err := os.ReadFile(fs.cfg)
	if err != nil {
		t.Fatal(err)
	}
	grown := string(body) + fmt.Sprintf("  - id: %s\n    name: orders\n    vault_path: webhookco/orders\n", orders)
	if err := os.WriteFile(fs.cfg, []byte(grown), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(context.Background(), fs.env, "reload", "--config", fs.cfg, pid)
	if code != 0 || !strings.Contains(stdout, "reloaded: 2 destinations, 2 scheduled") {
		t.Fatalf("reload: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(logs.String(), `"msg":"config reloaded"`) {
		t.Errorf("reload returned before the daemon logged \"config reloaded\":\n%s", logs.String())
	}

	// Valid YAML the daemon cannot apply the same way is still checked first: an invalid
	// file never reaches the daemon.
	if err := os.WriteFile(fs.cfg, []byte(grown+"  - name: BROKEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hups := strings.Count(logs.String(), "SIGHUP received")
	code, _, stderr = runMain(context.Background(), fs.env, "reload", "--config", fs.cfg, pid)
	if code != 1 || !strings.Contains(stderr, "reload refused, the daemon keeps its config") {
		t.Errorf("reload of an invalid file: exit %d\n%s", code, stderr)
	}
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(logs.String(), "SIGHUP received"); n != hups {
		t.Errorf("the daemon was signalled for an invalid file")
	}

	// The file changes between the command's check and the daemon's read (here: the
	// command checks a good copy): the daemon's rejection is the command's failure.
	good := fs.cfg + ".good"
	if err := os.WriteFile(good, []byte(grown), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runMain(context.Background(), fs.env, "reload", "--config", good, pid)
	if code != 1 || !strings.Contains(stderr, "reload rejected by the daemon, which keeps the config in force") || !strings.Contains(stderr, "BROKEN") {
		t.Errorf("reload the daemon rejects: exit %d\n%s", code, stderr)
	}
}

// TestCheckOnlineBeforeTheUnit: a config that takes the API key from the unit's credentials
// (/run/credentials/rotatord.service/…) is checked offline without it; online it names the
// settings and the way out, and --credentials-dir DIR reads them from the files the unit loads.
func TestCheckOnlineBeforeTheUnit(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", "defaults:\n  schedule: \"@daily\"\n", "billing")
	unit := fmt.Sprintf("/run/credentials/rotatord-test-%d.service/", time.Now().UnixNano())
	editConfig(t, fs.cfg, "  token_env: K\n", "  token_file: "+unit+"webhookco-api-key\n")
	etc := t.TempDir()
	if err := os.WriteFile(etc+"/webhookco-api-key", []byte(fs.key+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}

	if code, stdout, stderr := runMain(context.Background(), nil, "check", "--config", fs.cfg); code != 0 || !strings.Contains(stdout, ": ok, 1 destination, sink file") {
		t.Errorf("offline check: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr := runMain(context.Background(), nil, "check", "--online", "--config", fs.cfg)
	if code != 1 || !strings.Contains(stderr, "api.token_file is a systemd credential (/run/credentials/…), present only while the unit runs; add --credentials-dir DIR") {
		t.Errorf("online check without the unit: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runMain(context.Background(), nil, "check", "--online", "--credentials-dir", etc, "--config", fs.cfg)
	if code != 0 || !strings.Contains(stdout, "credentials: api.token_file read from "+etc) || !strings.Contains(stdout, ": ok, org ") {
		t.Errorf("online check with --credentials-dir: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestReloadSignalsOnlyTheDaemon: `rotatord reload --config C PID` signals PID only when it
// is the `rotatord run` that holds C's state_dir (its daemon.pid, locked while it runs); an
// unrelated process is not signalled (SIGHUP used to kill a `sleep`), nor is anything when
// no daemon runs.
func TestReloadSignalsOnlyTheDaemon(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", fmt.Sprintf("metrics:\n  listen: %s\ndefaults:\n  schedule: \"@daily\"\n", freeAddr(t)), "billing")
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })
	pid := fmt.Sprint(bystander.Process.Pid)
	code, _, stderr := runMain(context.Background(), fs.env, "reload", "--config", fs.cfg, pid)
	if code != 1 || !strings.Contains(stderr, "no rotatord run holds") {
		t.Errorf("reload with no daemon running: exit %d\n%s", code, stderr)
	}

	daemon, _ := startDaemon(t, fs)
	code, _, stderr = runMain(context.Background(), fs.env, "reload", "--config", fs.cfg, pid)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("PID %s is not the rotatord run that holds", pid)) {
		t.Errorf("reload aimed at another process: exit %d\n%s", code, stderr)
	}
	time.Sleep(200 * time.Millisecond)
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the bystander is gone: %v", err)
	}
	code, stdout, stderr := runMain(context.Background(), fs.env, "reload", "--config", fs.cfg, fmt.Sprint(daemon.Process.Pid))
	if code != 0 || !strings.Contains(stdout, "reloaded: ") {
		t.Errorf("reload of the daemon: exit %d\n%s%s", code, stdout, stderr)
	}
}

// startDaemon runs `rotatord run` (the real binary) on fs's config until the test ends, and
// returns once its scheduler has started.
func startDaemon(t *testing.T, fs *fileStack) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	daemon := exec.Command(buildBinary(t), "run", "--config", fs.cfg)
	daemon.Env = append(os.Environ(), "K="+fs.key)
	daemon.Stderr = logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	waitFor(t, 20*time.Second, "the daemon to start", func() bool { return strings.Contains(logs.String(), `"msg":"scheduler started"`) })
	return daemon, logs
}
