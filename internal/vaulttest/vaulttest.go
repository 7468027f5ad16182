// Package vaulttest starts a real HashiCorp Vault (open-source v1.14.1, in memory, with the
// real KV plugin) on loopback for a test, from the separate tools/vaultdev module. It never
// skips: when Vault cannot be built or started the test fails, saying why.
//
// The binary is taken from $ROTATORD_VAULTDEV when set (the Makefile builds it there), and
// otherwise built once into the user cache, keyed by the vaultdev sources, under a file lock
// so that parallel test packages build it only once.
package vaulttest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Server is one running Vault.
type Server struct {
	Addr       string   `json:"addr"`
	RootToken  string   `json:"root_token"`
	UnsealKeys []string `json:"unseal_keys"`
}

// Start starts a Vault for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t)
}

// StartTLS starts a Vault that serves HTTPS with the given PEM certificate and key.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	return start(t, "-tls-cert", certFile, "-tls-key", keyFile)
}

func start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := Binary(t)
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe() // vaultdev exits when this closes, even if the test binary dies
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("vaulttest: start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatalf("vaulttest: Vault did not start within 60s; stderr:\n%s", stderr.String())
	}
	var s Server
	if err := json.Unmarshal([]byte(line), &s); err != nil || s.Addr == "" {
		t.Fatalf("vaulttest: bad announcement %q (%v); stderr:\n%s", line, err, stderr.String())
	}
	return &s
}

// Client returns a Vault API client with the root token.
func (s *Server) Client(t testing.TB) *vaultapi.Client {
	t.Helper()
	conf := vaultapi.DefaultConfig()
	conf.Address = s.Addr
	c, err := vaultapi.NewClient(conf)
	if err != nil {
		t.Fatalf("vaulttest: client: %v", err)
	}
	c.SetToken(s.RootToken)
	return c
}

// CountingClient is Client with a counter of the HTTP requests it sends (the tests and
// benchmarks of what a rotation costs Vault).
func (s *Server) CountingClient(t testing.TB) (*vaultapi.Client, *atomic.Int64) {
	t.Helper()
	conf := vaultapi.DefaultConfig()
	conf.Address = s.Addr
	counter := &countingTransport{next: conf.HttpClient.Transport}
	conf.HttpClient.Transport = counter
	c, err := vaultapi.NewClient(conf)
	if err != nil {
		t.Fatalf("vaulttest: client: %v", err)
	}
	c.SetToken(s.RootToken)
	return c, &counter.n
}

type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// EnableKV mounts a KV engine of the given version at mount and waits until it serves.
func (s *Server) EnableKV(t testing.TB, mount string, version int) {
	t.Helper()
	c := s.Client(t)
	err := c.Sys().Mount(mount, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": fmt.Sprint(version)}})
	if err != nil {
		t.Fatalf("vaulttest: mount kv v%d at %s: %v", version, mount, err)
	}
	if version == 1 {
		return
	}
	// A new KV v2 mount upgrades itself in the background; wait until it answers.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Logical().Read(mount + "/config")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: kv v2 mount %s not ready: %v", mount, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EnableAppRole mounts the AppRole auth method at approle/.
func (s *Server) EnableAppRole(t testing.TB) {
	t.Helper()
	if err := s.Client(t).Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("vaulttest: enable approle: %v", err)
	}
}

// AppRole creates an AppRole with the given settings and returns its role_id and a secret_id.
func (s *Server) AppRole(t testing.TB, name string, settings map[string]any) (roleID, secretID string) {
	t.Helper()
	c := s.Client(t)
	if _, err := c.Logical().Write("auth/approle/role/"+name, settings); err != nil {
		t.Fatalf("vaulttest: approle role: %v", err)
	}
	r, err := c.Logical().Read("auth/approle/role/" + name + "/role-id")
	if err != nil {
		t.Fatalf("vaulttest: role-id: %v", err)
	}
	sec, err := c.Logical().Write("auth/approle/role/"+name+"/secret-id", nil)
	if err != nil {
		t.Fatalf("vaulttest: secret-id: %v", err)
	}
	return r.Data["role_id"].(string), sec.Data["secret_id"].(string)
}

// WrappedSecretID returns a response-wrapping token that unwraps to a new secret_id of role.
func (s *Server) WrappedSecretID(t testing.TB, role string) string {
	t.Helper()
	c := s.Client(t)
	c.SetWrappingLookupFunc(func(string, string) string { return "120s" })
	sec, err := c.Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	if err != nil || sec.WrapInfo == nil {
		t.Fatalf("vaulttest: wrapped secret-id: %v", err)
	}
	return sec.WrapInfo.Token
}

// Token creates a child token with the given policies and returns it.
func (s *Server) Token(t testing.TB, policies ...string) string {
	t.Helper()
	sec, err := s.Client(t).Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: policies})
	if err != nil {
		t.Fatalf("vaulttest: create token: %v", err)
	}
	return sec.Auth.ClientToken
}

// Seal seals Vault: every request then fails with 503, as during an outage.
func (s *Server) Seal(t testing.TB) {
	t.Helper()
	if err := s.Client(t).Sys().Seal(); err != nil {
		t.Fatalf("vaulttest: seal: %v", err)
	}
}

// Unseal unseals Vault with its keys.
func (s *Server) Unseal(t testing.TB) {
	t.Helper()
	c := s.Client(t)
	for _, k := range s.UnsealKeys {
		st, err := c.Sys().Unseal(k)
		if err != nil {
			t.Fatalf("vaulttest: unseal: %v", err)
		}
		if !st.Sealed {
			return
		}
	}
}

// Healthy reports whether Vault answers its health endpoint as active and unsealed.
func (s *Server) Healthy() bool {
	resp, err := http.Get(s.Addr + "/v1/sys/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Binary returns the path of the vaultdev binary, building it if needed.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ROTATORD_VAULTDEV"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("vaulttest: ROTATORD_VAULTDEV=%s: %v", p, err)
		}
		return p
	}
	src := sourceDir(t)
	key, err := sourceKey(src)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "rotatord-vaultdev")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	bin := filepath.Join(dir, "vaultdev-"+key)
	lock, err := os.OpenFile(filepath.Join(dir, "build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("vaulttest: lock: %v", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("vaulttest: building Vault v1.14.1 test server into %s (a cold build takes several minutes)", bin)
	cmd := exec.Command("go", "build", "-o", bin+".tmp", ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vaulttest: build %s: %v\n%s", src, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return bin
}

// sourceDir finds tools/vaultdev from this file's location.
func sourceDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("vaulttest: cannot locate the source tree")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "tools", "vaultdev")
}

// sourceKey hashes the files that decide the binary, so a changed source rebuilds it.
func sourceKey(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
