package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// TestUnitUnderRealSystemd boots Debian's systemd as PID 1 with systemd-nspawn (package
// systemd-container) on a tmpfs overlay of this machine's root, installs the shipped unit
// and the AppRole drop-in exactly as the README says, and drives it with systemctl against
// the real Vault and the emulator on loopback (the container shares the host's network):
//   - the unit starts (Type=notify, dynamic user, the sandbox, credentials) and rotates;
//   - `systemctl reload` returns after the daemon reloaded, and fails for a file it refuses;
//   - `systemctl restart` logs in to Vault again with the same AppRole secret_id and
//     rotates again, which a wrapped secret_id could not;
//   - `systemctl stop` ends it cleanly.
func TestUnitUnderRealSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots systemd in a container; make test runs it")
	}
	nspawn := tool(t, "systemd-nspawn", "systemd-container")
	nsenter := tool(t, "nsenter", "util-linux")
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Fatal("/lib/systemd/systemd not found: install Debian's systemd package (make test and .ci/run do)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("booting systemd with systemd-nspawn needs root (CI runs as root)")
	}
	bin := rotatordBinary(t)

	// Vault with a KV v2 mount, the shipped policy on it, and an AppRole for rotatord.
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	policy, err := os.ReadFile("vault/rotatord-policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Client(t).Sys().PutPolicy("rotatord", strings.ReplaceAll(string(policy), `"secret/`, `"kv/`)); err != nil {
		t.Fatal(err)
	}
	v.EnableAppRole(t)
	roleID, secretID := v.AppRole(t, "rotatord", map[string]any{"token_policies": "rotatord", "token_ttl": "1h", "secret_id_num_uses": 0})

	em := emulator.New(emulator.Options{})
	apiURL, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	billing := em.AddDestination("billing")

	root := overlayRoot(t)
	unit, err := os.ReadFile("systemd/rotatord.service")
	if err != nil {
		t.Fatal(err)
	}
	dropin, err := os.ReadFile("systemd/rotatord.service.d/approle.conf")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`state_dir: /var/lib/rotatord
api:
  base_url: %s
  token_file: /run/credentials/rotatord.service/webhookco-api-key
spool:
  key_file: /run/credentials/rotatord.service/spool-key
vault:
  address: %s
  auth:
    method: approle
    role_id: %s
    secret_id_file: /run/credentials/rotatord.service/approle-secret-id
  kv: {mount: kv, version: 2}
metrics:
  listen: 127.0.0.1:0
destinations:
  - id: %s
    name: billing
    schedule: "@daily"
    vault_path: webhookco/billing
`, apiURL, v.Addr, roleID, billing)
	install := map[string]struct {
		body []byte
		mode os.FileMode
	}{
		"usr/local/bin/rotatord":                             {mustRead(t, bin), 0o755},
		"etc/systemd/system/rotatord.service":                {unit, 0o644},
		"etc/systemd/system/rotatord.service.d/approle.conf": {dropin, 0o644},
		"etc/rotatord/config.yaml":                           {[]byte(config), 0o644},
		"etc/rotatord/webhookco-api-key":                     {[]byte(em.AddKey("endpoints:read", "endpoints:write") + "\n"), 0o400},
		"etc/rotatord/approle-secret-id":                     {[]byte(secretID + "\n"), 0o400},
	}
	for p, f := range install {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), f.body, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing of the host's own services: only what the test needs starts.
	for _, wants := range []string{"etc/systemd/system/multi-user.target.wants", "etc/systemd/system/sockets.target.wants"} {
		_ = os.RemoveAll(filepath.Join(root, wants))
	}

	boot := exec.Command(nspawn, "--quiet", "--register=no", "--keep-unit", "--link-journal=no",
		"-D", root, "-M", fmt.Sprintf("rotatord-test-%d", os.Getpid()), "-b", "--console=pipe")
	var console lockedBuffer
	boot.Stdout, boot.Stderr = &console, &console
	boot.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := boot.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-boot.Process.Pid, syscall.SIGKILL)
		_ = boot.Wait()
	})
	pid1 := containerInit(t, boot.Process.Pid, &console)
	in := func(args ...string) (string, error) {
		cmd := exec.Command(nsenter, append([]string{"-t", strconv.Itoa(pid1), "-a", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := in(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	journal := func() string { out, _ := in("journalctl", "-u", "rotatord", "-o", "cat", "--no-pager"); return out }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("journalctl -u rotatord:\n%s", journal())
		}
	})
	waitFor(t, 60*time.Second, "systemd to boot", func() bool {
		out, _ := in("systemctl", "is-system-running")
		return strings.Contains(out, "running") || strings.Contains(out, "degraded")
	})

	// The README's steps inside the booted system: encrypt the spool key for this host, check
	// the config with the files the unit will load, then start the unit.
	if out, err := in("sh", "-c", "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' | systemd-creds encrypt --name=spool-key - /etc/rotatord/spool-key.cred"); err != nil {
		t.Fatalf("systemd-creds encrypt: %v\n%s", err, out)
	}
	if out := must("/usr/local/bin/rotatord", "check", "--online", "--config", "/etc/rotatord/config.yaml", "--credentials-dir", "/etc/rotatord"); !strings.Contains(out, "ok") {
		t.Fatalf("check --online --credentials-dir:\n%s", out)
	}
	must("systemctl", "daemon-reload")
	must("systemctl", "start", "rotatord")
	waitFor(t, 30*time.Second, "the first rotation", func() bool {
		return len(em.ActiveKeys(billing)) == 1 && storedKeyID(t, v, "webhookco/billing") == em.ActiveKeys(billing)[0].ID
	})
	// The unit's bounds are in force: memory and tasks.
	if out := must("systemctl", "show", "-p", "MemoryMax", "-p", "TasksMax", "rotatord"); !strings.Contains(out, "MemoryMax=1073741824") || !strings.Contains(out, "TasksMax=256") {
		t.Errorf("the unit's bounds:\n%s", out)
	}

	// Reload: returns once applied, with the new destination scheduled.
	orders := em.AddDestination("orders")
	grown := config + fmt.Sprintf("  - id: %s\n    name: orders\n    schedule: \"@daily\"\n    vault_path: webhookco/orders\n", orders)
	if err := os.WriteFile(filepath.Join(root, "etc/rotatord/config.yaml"), []byte(grown), 0o644); err != nil {
		t.Fatal(err)
	}
	must("systemctl", "reload", "rotatord")
	if j := journal(); !strings.Contains(j, `"msg":"config reloaded"`) || !strings.Contains(j, `"destinations":2`) {
		t.Errorf("systemctl reload returned before the daemon reloaded:\n%s", j)
	}
	// A file the daemon refuses fails the reload; the service keeps running.
	if err := os.WriteFile(filepath.Join(root, "etc/rotatord/config.yaml"), []byte(grown+"  - name: BROKEN\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := in("systemctl", "reload", "rotatord"); err == nil {
		t.Errorf("systemctl reload of a broken file succeeded:\n%s", out)
	}
	if out, _ := in("systemctl", "is-active", "rotatord"); strings.TrimSpace(out) != "active" {
		t.Errorf("after a refused reload the unit is %q", out)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/rotatord/config.yaml"), []byte(grown), 0o644); err != nil {
		t.Fatal(err)
	}

	// Restart: a new process logs in with the same secret_id.
	logins := strings.Count(journal(), `"msg":"vault login"`)
	must("systemctl", "restart", "rotatord")
	waitFor(t, 30*time.Second, "the login after the restart", func() bool { return strings.Count(journal(), `"msg":"vault login"`) > logins })
	waitFor(t, 30*time.Second, "orders rotated after the restart", func() bool {
		return len(em.ActiveKeys(orders)) == 1 && storedKeyID(t, v, "webhookco/orders") == em.ActiveKeys(orders)[0].ID
	})
	if out, _ := in("systemctl", "is-active", "rotatord"); strings.TrimSpace(out) != "active" {
		t.Errorf("after the restart the unit is %q", out)
	}

	began := time.Now()
	must("systemctl", "stop", "rotatord")
	if took := time.Since(began); took > 60*time.Second {
		t.Errorf("stop took %v", took)
	}
	if out, _ := in("systemctl", "show", "-p", "Result", "rotatord"); strings.TrimSpace(out) != "Result=success" {
		t.Errorf("after stop: %s", out)
	}
}

// overlayRoot makes a writable copy-on-write view of / for the container: an overlay with
// this machine's root as the lower layer and a tmpfs as the upper, removed at the end.
func overlayRoot(t *testing.T) string {
	t.Helper()
	// systemd-nspawn masks files with these; a host not booted by systemd has none.
	inaccessible := "/run/systemd/inaccessible"
	if _, err := os.Stat(filepath.Join(inaccessible, "reg")); err != nil {
		if err := os.MkdirAll(filepath.Join(inaccessible, "dir"), 0o000); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(inaccessible, "reg"), nil, 0o000); err != nil {
			t.Fatal(err)
		}
		_ = syscall.Mkfifo(filepath.Join(inaccessible, "fifo"), 0o000)
		_ = syscall.Mknod(filepath.Join(inaccessible, "chr"), syscall.S_IFCHR, 0)
		_ = syscall.Mknod(filepath.Join(inaccessible, "blk"), syscall.S_IFBLK, 0)
	}
	base, err := os.MkdirTemp("", "rotatord-nspawn-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	root := filepath.Join(base, "root")
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=/,upperdir=%s,workdir=%s", filepath.Join(base, "upper"), filepath.Join(base, "work"))
	if err := syscall.Mount("overlay", root, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(root, syscall.MNT_DETACH)
		_ = syscall.Unmount(base, syscall.MNT_DETACH)
		_ = os.Remove(base)
	})
	return root
}

// containerInit finds the container's PID 1 (systemd) among nspawn's descendants.
func containerInit(t *testing.T, nspawnPID int, console *lockedBuffer) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if strings.TrimSpace(string(comm)) != "systemd" {
				continue
			}
			for p := pid; p > 1; {
				if p == nspawnPID {
					return pid
				}
				stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
				if err != nil {
					break
				}
				fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
				if len(fields) < 2 {
					break
				}
				p, _ = strconv.Atoi(fields[1])
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no systemd started under systemd-nspawn within 30 s:\n%s", console.String())
	return 0
}

// storedKeyID is the key_id Vault holds at kv/webhookco/… ("" when none).
func storedKeyID(t *testing.T, v *vaulttest.Server, path string) string {
	sec, err := v.Client(t).KVv2("kv").Get(context.Background(), path)
	if err != nil || sec == nil {
		return ""
	}
	id, _ := sec.Data["key_id"].(string)
	return id
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls ok until it holds, or fails the test after limit.
var waitFor = bintest.WaitFor

// lockedBuffer collects a child's output safely for concurrent reads.
type lockedBuffer = bintest.Buffer
