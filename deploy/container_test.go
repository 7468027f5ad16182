package deploy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/emulator"
)

// TestContainerAsTheReadmeSays builds the image the way docs/operating.md does (make
// container-context, docker build) and runs it with docs/operating.md's own `docker run` line, read
// from docs/operating.md, on a real Docker engine (Debian's docker.io; the test starts dockerd when
// none answers). The state volume is a new named volume, root's unless the image says
// otherwise, as Docker makes them. Against the emulator, over TLS with api.ca_cert, the
// container rotates, serves /metrics, and `docker stop` ends it cleanly within the
// docs/operating.md's --stop-timeout. A second run puts the state on a directory rotatord does not
// own (root:65532, 2770, like a Kubernetes emptyDir with fsGroup), and a third on a
// root-owned 0755 one, which must fail with an error saying what to change.
func TestContainerAsTheReadmeSays(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a container image; make test runs it")
	}
	docker := dockerEngine(t)
	run := readmeDockerRun(t)

	make := exec.Command("make", "container-context")
	make.Dir = ".."
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make container-context: %v\n%s", err, out)
	}
	image := fmt.Sprintf("rotatord:deploytest-%d", time.Now().UnixNano())
	build := exec.Command(docker, "build", "-q", "-f", "deploy/container/Dockerfile", "-t", image, ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(docker, "rmi", "-f", image).Run() })

	// The emulator where containers reach the host: the bridge's gateway, over TLS.
	gw := bridgeAddress(t, docker)
	em := emulator.New(emulator.Options{})
	caPEM, cert := selfSigned(t, gw)
	ln, err := tls.Listen("tcp", net.JoinHostPort(gw.String(), "0"), &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatalf("listen on the bridge gateway %s: %v", gw, err)
	}
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	dest := em.AddDestination("billing-prod")

	etc := t.TempDir()
	if err := os.Chmod(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`state_dir: /var/lib/rotatord
api:
  base_url: https://%s
  ca_cert: /etc/rotatord/webhookco-ca.pem
  token_file: /etc/rotatord/webhookco-api-key
sink:
  type: file
  dir: /var/lib/rotatord/secrets
metrics:
  listen: 0.0.0.0:9464
destinations:
  - id: %s
    name: billing-prod
    schedule: "@every 3s"
    vault_path: webhookco/billing-prod
`, ln.Addr(), dest)
	for name, body := range map[string]string{
		"config.yaml":       config,
		"webhookco-ca.pem":  string(caPEM),
		"webhookco-api-key": em.AddKey("endpoints:read", "endpoints:write") + "\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The key file is the container user's alone, as it would be on a host.
	if err := os.Chmod(filepath.Join(etc, "webhookco-api-key"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(etc, "webhookco-api-key"), 65532, 65532); err != nil {
		t.Fatal(err)
	}

	start := func(t *testing.T, state string) (name, metricsURL string) {
		t.Helper()
		name = fmt.Sprintf("rotatord-deploytest-%d", time.Now().UnixNano())
		addr := freeAddr(t)
		args := run.with(t, name, state, etc, addr, image)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := exec.Command(docker, "logs", name).CombinedOutput()
				t.Logf("docker logs %s:\n%s", name, out)
			}
			_ = exec.Command(docker, "rm", "-f", name).Run()
		})
		if out, err := exec.Command(docker, args...).CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return name, "http://" + addr + "/metrics"
	}

	// rotatesAndStops waits for two rotations seen in /metrics and at the emulator, then
	// stops the container the way Docker does and checks it ended cleanly in time.
	rotatesAndStops := func(t *testing.T, name, metricsURL string, minted int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var body string
		for time.Now().Before(deadline) {
			if strings.TrimSpace(dockerOut(t, docker, "inspect", "-f", "{{.State.Running}}", name)) != "true" {
				t.Fatal("the container stopped on its own")
			}
			body = bintest.Scrape(metricsURL)
			if sumSeries(body, `rotatord_rotations_total{`, `result="success"`) >= 2 && len(em.Minted()) >= minted+2 {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if got := sumSeries(body, `rotatord_rotations_total{`, `result="success"`); got < 2 {
			t.Fatalf("after 60 s, %v successful rotations in /metrics, %d minted; want 2:\n%s", got, len(em.Minted()), body)
		}
		began := time.Now()
		if out, err := exec.Command(docker, "stop", name).CombinedOutput(); err != nil {
			t.Fatalf("docker stop: %v\n%s", err, out)
		}
		took := time.Since(began)
		state := strings.TrimSpace(dockerOut(t, docker, "inspect", "-f", "{{.State.ExitCode}} {{.Config.StopTimeout}}", name))
		var code, timeout int
		if _, err := fmt.Sscan(state, &code, &timeout); err != nil {
			t.Fatalf("docker inspect: %q: %v", state, err)
		}
		if code != 0 {
			t.Errorf("exit code %d after docker stop, want 0 (a clean stop)", code)
		}
		if timeout < 45 || took >= time.Duration(timeout)*time.Second {
			t.Errorf("stop timeout %d s (want ≥ shutdown_timeout 45 s), stopped in %v", timeout, took)
		}
		logs, _ := exec.Command(docker, "logs", name).CombinedOutput()
		if !bytes.Contains(logs, []byte(`"rotatord stopped"`)) {
			t.Errorf("no \"rotatord stopped\" in the logs:\n%s", logs)
		}
	}

	t.Run("new named volume", func(t *testing.T) {
		volume := fmt.Sprintf("rotatord-deploytest-%d", time.Now().UnixNano())
		t.Cleanup(func() { _ = exec.Command(docker, "volume", "rm", "-f", volume).Run() })
		name, url := start(t, volume)
		rotatesAndStops(t, name, url, len(em.Minted()))
		// The secret Docker's volume holds is the provider's active key.
		mount := strings.TrimSpace(dockerOut(t, docker, "volume", "inspect", "-f", "{{.Mountpoint}}", volume))
		stored, err := os.ReadFile(filepath.Join(mount, "secrets", "webhookco", "billing-prod.json"))
		if err != nil {
			t.Fatal(err)
		}
		active := em.ActiveKeys(dest)
		if len(active) != 1 || !bytes.Contains(stored, []byte(active[0].ID)) {
			t.Errorf("stored %s; the provider's active keys are %v", stored, active)
		}
		fi, err := os.Stat(mount)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o007 != 0 {
			t.Errorf("the volume is mode %#o: others may enter it", perm)
		}
	})

	t.Run("fsGroup directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o770); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 0, 65532); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o2770|os.ModeSetgid); err != nil {
			t.Fatal(err)
		}
		name, url := start(t, dir)
		rotatesAndStops(t, name, url, len(em.Minted()))
		for _, sub := range []string{"spool", "secrets"} {
			fi, err := os.Stat(filepath.Join(dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s is mode %#o, want no access for group or others", sub, perm)
			}
		}
	})

	t.Run("root-owned directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name, _ := start(t, dir)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && strings.TrimSpace(dockerOut(t, docker, "inspect", "-f", "{{.State.Running}}", name)) == "true" {
			time.Sleep(100 * time.Millisecond)
		}
		logs, _ := exec.Command(docker, "logs", name).CombinedOutput()
		want := "/var/lib/rotatord is not writable by rotatord's uid 65532 (owner uid 0, group gid 0, mode 0755)"
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	})
}

// dockerRun is docs/operating.md's `docker run` line, as arguments.
type dockerRun []string

// readmeDockerRun reads docs/operating.md's `docker run -d` command (continuation lines joined,
// the comment dropped).
func readmeDockerRun(t *testing.T) dockerRun {
	t.Helper()
	readme, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^docker run -d (?:.*\\\n)*.*$`).Find(readme)
	if m == nil {
		t.Fatal("docs/operating.md has no `docker run -d` command")
	}
	line := strings.ReplaceAll(string(m), "\\\n", " ")
	if i := strings.Index(line, "#"); i >= 0 {
		line = line[:i]
	}
	return strings.Fields(line)[1:]
}

// with substitutes the test's container name, state volume, config directory, metrics
// address and image for docs/operating.md's; each must appear exactly once.
func (r dockerRun) with(t *testing.T, name, state, etc, addr, image string) []string {
	t.Helper()
	subst := []struct{ from, to string }{
		{"rotatord-state:/var/lib/rotatord", state + ":/var/lib/rotatord"},
		{"/etc/rotatord:/etc/rotatord:ro", etc + ":/etc/rotatord:ro"},
		{"127.0.0.1:9464:9464", addr + ":9464"},
		{"rotatord:…", image},
	}
	out := append([]string(nil), r...)
	for i := range out {
		if out[i] == "--name" && i+1 < len(out) {
			out[i+1] = name
		}
	}
	for _, s := range subst {
		n := 0
		for i := range out {
			if out[i] == s.from {
				out[i] = s.to
				n++
			}
		}
		if n != 1 {
			t.Fatalf("docs/operating.md's docker run has %q %d times, want once: %v", s.from, n, r)
		}
	}
	return out
}

// dockerEngine returns the docker command once an engine answers, starting Debian's dockerd
// when none does (make test-tools and .ci/run install docker.io).
func dockerEngine(t *testing.T) string {
	t.Helper()
	docker := tool(t, "docker", "docker.io")
	if exec.Command(docker, "info").Run() == nil {
		return docker
	}
	dockerd := tool(t, "dockerd", "docker.io")
	logf, err := os.CreateTemp("", "dockerd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	// What the test started, the test stops: dockerd, and the containerd it manages, end
	// with the test (SIGTERM, then SIGKILL after 30 s), and the test checks they did.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if out, err := exec.Command("pgrep", "-f", "containerd --config /var/run/docker/containerd").Output(); err == nil && len(out) > 0 {
			t.Errorf("the containerd dockerd started is still running after dockerd stopped: pid %s", bytes.TrimSpace(out))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if exec.Command(docker, "info").Run() == nil {
			return docker
		}
		time.Sleep(250 * time.Millisecond)
	}
	out, _ := os.ReadFile(logf.Name())
	t.Fatalf("dockerd did not answer within 60 s:\n%s", out)
	return ""
}

// bridgeAddress is the host's address on Docker's default bridge, where containers reach it.
func bridgeAddress(t *testing.T, docker string) net.IP {
	t.Helper()
	name := strings.TrimSpace(dockerOut(t, docker, "network", "inspect", "bridge", "-f", `{{index .Options "com.docker.network.bridge.name"}}`))
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatalf("the bridge %q: %v", name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Fatalf("the bridge %s has no IPv4 address: %v", name, addrs)
	return nil
}

func dockerOut(t *testing.T, docker string, args ...string) string {
	t.Helper()
	out, err := exec.Command(docker, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// selfSigned makes a certificate for ip that is its own CA.
func selfSigned(t *testing.T, ip net.IP) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook.co emulator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{ip}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// sumSeries adds the values of the exposition lines that start with prefix and contain label.
func sumSeries(body, prefix, label string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, label) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
