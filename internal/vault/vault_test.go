package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	vaultapi "github.com/hashicorp/vault/api"
	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// kvPolicy lets a token use the KV v2 mount "secret-v2".
const kvPolicy = `
path "secret-v2/data/*" { capabilities = ["create", "update", "read"] }
path "secret-v2/metadata/*" { capabilities = ["patch", "read"] }
`

type counters struct{ ok, failed atomic.Int32 }

func (c *counters) observer() vault.Observer {
	return vault.Observer{Login: func(r string) {
		if r == vault.LoginSuccess {
			c.ok.Add(1)
		} else {
			c.failed.Add(1)
		}
	}}
}

// setup starts Vault with a KV v2 mount, the kv policy and AppRole.
func setup(t *testing.T) *vaulttest.Server {
	t.Helper()
	v := vaulttest.Start(t)
	v.EnableKV(t, "secret-v2", 2)
	if err := v.Client(t).Sys().PutPolicy("kv", kvPolicy); err != nil {
		t.Fatal(err)
	}
	v.EnableAppRole(t)
	return v
}

func newAuth(t *testing.T, v *vaulttest.Server, c vault.LoginOptions, tokenFile string, env map[string]string, obs vault.Observer) (*vault.Auth, *vaultkv.KV) {
	t.Helper()
	client, err := vault.NewClient(vault.ClientOptions{Address: v.Addr}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Method == "" {
		c.Method = vault.MethodToken
	}
	auth, err := vault.NewAuth(vault.AuthOptions{Client: client, Config: c, TokenFile: tokenFile, Getenv: func(k string) string { return env[k] }, Logger: testLogger(t), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := vaultkv.New(vaultkv.Options{Client: client, Mount: "secret-v2", Version: 2, Recover: auth.Recover})
	if err != nil {
		t.Fatal(err)
	}
	return auth, s
}

func record(i int) sink.Record {
	return sink.Record{DestinationID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", KeyID: "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b",
		Secret: secret.New("whsec_test"), RotatedAt: time.Unix(int64(1e9+i), 0).UTC()}
}

// exercise writes and reads back through s every interval for d; every operation must succeed.
func exercise(t *testing.T, s *vaultkv.KV, d, interval time.Duration) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(interval) {
		n++
		if _, err := s.Put(ctx, "webhookco/billing", record(n), sink.NoCAS); err != nil {
			t.Fatalf("operation %d at %s: %v", n, time.Now().Format("15:04:05.000"), err)
		}
		if got, err := s.Get(ctx, "webhookco/billing"); err != nil || !got.RotatedAt.Equal(record(n).RotatedAt) {
			t.Fatalf("read back %d: %+v, %v", n, got, err)
		}
	}
	return n
}

// TestTokenMethod: VAULT_TOKEN, and a token file that a Vault Agent rewrites: when the old
// token is revoked, the next 403 re-reads the file and the operation succeeds.
func TestTokenMethod(t *testing.T) {
	v := setup(t)
	ctx := context.Background()

	auth, s := newAuth(t, v, vault.LoginOptions{}, "", map[string]string{"VAULT_TOKEN": v.Token(t, "kv")}, vault.Observer{})
	if err := auth.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "webhookco/billing", record(1), sink.NoCAS); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "token")
	first := v.Token(t, "kv")
	if err := os.WriteFile(file, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c counters
	auth, s = newAuth(t, v, vault.LoginOptions{}, file, nil, c.observer())
	if err := auth.Login(ctx); err != nil {
		t.Fatal(err)
	}
	// The agent renews its sink: a new token in the file, the old one revoked.
	if err := os.WriteFile(file, []byte(v.Token(t, "kv")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.Client(t).Auth().Token().RevokeTree(first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "webhookco/billing", record(2), sink.NoCAS); err != nil {
		t.Fatalf("write after the token file was rewritten: %v", err)
	}
	if c.ok.Load() != 2 {
		t.Errorf("%d logins, want 2 (start and after the rewrite)", c.ok.Load())
	}

	// A valid token that lacks the right is not "recovered" in a loop: the 403 stays.
	auth, s = newAuth(t, v, vault.LoginOptions{}, "", map[string]string{"VAULT_TOKEN": v.Token(t, "default")}, vault.Observer{})
	if err := auth.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "webhookco/billing", record(3), sink.NoCAS); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("write with a default-policy token: %v", err)
	}
}

// TestAppRole logs in with a role_id and a secret_id file, plain and response-wrapped.
func TestAppRole(t *testing.T) {
	v := setup(t)
	ctx := context.Background()
	roleID, secretID := v.AppRole(t, "rotatord", map[string]any{"token_policies": "kv", "token_ttl": "1h"})
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(secretFile, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, s := newAuth(t, v, vault.LoginOptions{Method: vault.MethodAppRole, RoleID: roleID, SecretIDFile: secretFile}, "", nil, vault.Observer{})
	if err := auth.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "webhookco/billing", record(1), sink.NoCAS); err != nil {
		t.Fatal(err)
	}

	// A response-wrapped secret_id, with the role_id from a file.
	roleFile := filepath.Join(dir, "role-id")
	if err := os.WriteFile(roleFile, []byte(roleID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(v.WrappedSecretID(t, "rotatord")), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, s = newAuth(t, v, vault.LoginOptions{Method: vault.MethodAppRole, RoleIDFile: roleFile, SecretIDFile: secretFile, SecretIDWrapped: true}, "", nil, vault.Observer{})
	if err := auth.Login(ctx); err != nil {
		t.Fatalf("wrapped secret_id: %v", err)
	}
	if _, err := s.Put(ctx, "webhookco/billing", record(2), sink.NoCAS); err != nil {
		t.Fatal(err)
	}
	// Within the process the unwrapped secret_id is kept: a login after the token's max TTL works.
	if err := auth.Login(ctx); err != nil {
		t.Errorf("second login in the same process with a wrapped secret_id: %v", err)
	}
}

// TestAppRoleAcrossRestarts follows the logins of a service restarted by systemd, each start
// a new Auth on the same files. A plain secret_id (as a systemd credential) logs in at every
// start. A wrapping token works at the first start only; the next start says why, names the
// file and what to do, and is not mistaken for an unreachable Vault. An unreadable file
// says "cannot read FILE".
func TestAppRoleAcrossRestarts(t *testing.T) {
	v := setup(t)
	ctx := context.Background()
	roleID, secretID := v.AppRole(t, "rotatord", map[string]any{"token_policies": "kv", "token_ttl": "1h"})
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "approle-secret-id")
	if err := os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := vault.LoginOptions{Method: vault.MethodAppRole, RoleID: roleID, SecretIDFile: secretFile}
	for start := 1; start <= 3; start++ {
		auth, s := newAuth(t, v, opts, "", nil, vault.Observer{})
		if err := auth.Login(ctx); err != nil {
			t.Fatalf("start %d with a plain secret_id: %v", start, err)
		}
		if _, err := s.Put(ctx, "webhookco/billing", record(start), sink.NoCAS); err != nil {
			t.Fatal(err)
		}
	}

	if err := os.WriteFile(secretFile, []byte(v.WrappedSecretID(t, "rotatord")), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.SecretIDWrapped = true
	first, _ := newAuth(t, v, opts, "", nil, vault.Observer{})
	if err := first.Login(ctx); err != nil {
		t.Fatalf("first start with a wrapped secret_id: %v", err)
	}
	restarted, _ := newAuth(t, v, opts, "", nil, vault.Observer{})
	err := restarted.Login(ctx)
	want := "the response-wrapping token in " + secretFile + " (vault.auth.secret_id_file) was already used"
	if err == nil || !strings.Contains(err.Error(), want) || vault.IsUnreachable(err) {
		t.Errorf("restart with a used wrapping token: %v (unreachable: %v); want %q", err, err != nil && vault.IsUnreachable(err), want)
	}

	opts.SecretIDWrapped = false
	opts.SecretIDFile = filepath.Join(dir, "missing")
	err = func() error { a, _ := newAuth(t, v, opts, "", nil, vault.Observer{}); return a.Login(ctx) }()
	want = "cannot read " + opts.SecretIDFile + " (vault.auth.secret_id_file): no such file or directory"
	if err == nil || !strings.Contains(err.Error(), want) || vault.IsUnreachable(err) {
		t.Errorf("missing secret_id file: %v; want %q", err, want)
	}
}

// TestRenewableTokenStaysValid: a renewable 5 s token is renewed throughout a 20 s run.
func TestRenewableTokenStaysValid(t *testing.T) {
	if testing.Short() {
		t.Skip("long test (20 s of real token lifetimes): left out by -short (make test-quick); make test runs it")
	}
	v := setup(t)
	tok, err := v.Client(t).Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"kv"}, TTL: "5s", ExplicitMaxTTL: "2m", Renewable: boolPtr(true)})
	if err != nil {
		t.Fatal(err)
	}
	var c counters
	expiries := make(chan time.Time, 100)
	obs := c.observer()
	obs.Expiry = func(at time.Time) { expiries <- at }
	auth, s := newAuth(t, v, vault.LoginOptions{}, "", map[string]string{"VAULT_TOKEN": tok.Auth.ClientToken}, obs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := auth.Login(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = auth.Run(ctx) }()
	n := exercise(t, s, 20*time.Second, 500*time.Millisecond)
	if c.ok.Load() != 1 {
		t.Errorf("%d logins, want 1 (renewal, not re-login, keeps it valid)", c.ok.Load())
	}
	if len(expiries) < 4 || len(expiries) > 40 {
		t.Errorf("expiry moved %d times in 20 s, want it renewed several times", len(expiries))
	}
	t.Logf("%d operations over 20 s with one 5 s token", n)
}

// TestNonRenewableTokenIsReplaced: AppRole batch tokens of 5 s cannot be renewed; a new
// login replaces each before it expires, and no operation fails in between.
func TestNonRenewableTokenIsReplaced(t *testing.T) {
	if testing.Short() {
		t.Skip("long test (20 s of real token lifetimes): left out by -short (make test-quick); make test runs it")
	}
	v := setup(t)
	roleID, secretID := v.AppRole(t, "short", map[string]any{"token_policies": "kv", "token_ttl": "5s", "token_max_ttl": "5s", "token_type": "batch", "secret_id_num_uses": 0})
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	var c counters
	auth, s := newAuth(t, v, vault.LoginOptions{Method: vault.MethodAppRole, RoleID: roleID, SecretIDFile: file}, "", nil, c.observer())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := auth.Login(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = auth.Run(ctx) }()
	exercise(t, s, 20*time.Second, 500*time.Millisecond)
	// Replaced at two thirds of 5 s: about 6 logins in 20 s; many more would be a loop.
	if got := c.ok.Load(); got < 5 || got > 10 || c.failed.Load() != 0 {
		t.Errorf("%d logins (%d failed) in 20 s with 5 s tokens, want 5 to 10 and no failure", got, c.failed.Load())
	}
}

// TestKubernetesLogin checks the request rotatord sends to auth/<mount>/login and the
// handling of Vault's answer, on a recording server (the in-memory Vault has no Kubernetes).
func TestKubernetesLogin(t *testing.T) {
	jwtFile := filepath.Join(t.TempDir(), "token")
	const jwt = "eyJhbGciOiJSUzI1NiJ9.service-account.signature"
	if err := os.WriteFile(jwtFile, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got map[string]string
	var path string
	reply := `{"auth":{"client_token":"hvs.k8s-token","policies":["rotatord"],"lease_duration":3600,"renewable":true}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		path = r.Method + " " + r.URL.Path
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &got)
		w.Header().Set("Content-Type", "application/json")
		if got["role"] != "rotatord" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":["invalid role name \"` + got["role"] + `\""]}`))
			return
		}
		_, _ = w.Write([]byte(reply))
	}))
	defer srv.Close()
	login := func(role string) (*vaultapi.Client, error) {
		client, err := vault.NewClient(vault.ClientOptions{Address: srv.URL}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		auth, err := vault.NewAuth(vault.AuthOptions{Client: client, Logger: zap.NewNop(),
			Config: vault.LoginOptions{Method: vault.MethodKubernetes, Mount: "k8s-prod", Role: role, ServiceAccountTokenFile: jwtFile}})
		if err != nil {
			t.Fatal(err)
		}
		return client, auth.Login(context.Background())
	}
	client, err := login("rotatord")
	if err != nil {
		t.Fatal(err)
	}
	if path != "PUT /v1/auth/k8s-prod/login" && path != "POST /v1/auth/k8s-prod/login" {
		t.Errorf("request = %s, want a write to /v1/auth/k8s-prod/login", path)
	}
	if got["role"] != "rotatord" || got["jwt"] != jwt || len(got) != 2 {
		t.Errorf("login body = %v, want exactly role and jwt", got)
	}
	if client.Token() != "hvs.k8s-token" {
		t.Errorf("client token not set from the answer")
	}
	_, err = login("nope")
	if err == nil || !strings.Contains(err.Error(), `invalid role name`) || strings.Contains(err.Error(), jwt) {
		t.Errorf("refused login: %v", err)
	}
}

// TestTLS: Vault over HTTPS with a test CA works with the CA configured and fails, naming
// certificate verification, without it.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	v := vaulttest.StartTLS(t, certFile, keyFile)
	env := map[string]string{"VAULT_TOKEN": v.RootToken}
	getenv := func(k string) string { return env[k] }
	login := func(c vault.ClientOptions) error {
		c.Address = v.Addr
		client, err := vault.NewClient(c, getenv)
		if err != nil {
			return err
		}
		auth, err := vault.NewAuth(vault.AuthOptions{Client: client, Getenv: getenv, Logger: zap.NewNop(), Config: vault.LoginOptions{Method: vault.MethodToken}})
		if err != nil {
			return err
		}
		return auth.Login(context.Background())
	}
	if err := login(vault.ClientOptions{CACert: caFile}); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	env["VAULT_CACERT"] = caFile
	if err := login(vault.ClientOptions{}); err != nil {
		t.Fatalf("with VAULT_CACERT: %v", err)
	}
	delete(env, "VAULT_CACERT")
	err := login(vault.ClientOptions{})
	if err == nil || !strings.Contains(err.Error(), "TLS certificate verification failed") || !strings.Contains(err.Error(), "vault.ca_cert") {
		t.Errorf("without the CA: %v", err)
	}
	if err := login(vault.ClientOptions{TLSSkipVerify: true}); err != nil {
		t.Errorf("skip-verify on loopback: %v", err)
	}
}

func TestInsecureRefusedOffLoopback(t *testing.T) {
	getenv := func(string) string { return "" }
	_, err := vault.NewClient(vault.ClientOptions{Address: "https://vault.example.com:8200", TLSSkipVerify: true}, getenv)
	if err == nil || !strings.Contains(err.Error(), "only for a loopback address") {
		t.Errorf("skip-verify off loopback: %v", err)
	}
	_, err = vault.NewClient(vault.ClientOptions{Address: "https://vault.example.com:8200"}, func(k string) string {
		return map[string]string{"VAULT_SKIP_VERIFY": "true"}[k]
	})
	if err == nil {
		t.Error("VAULT_SKIP_VERIFY off loopback was accepted")
	}
	if _, err := vault.NewClient(vault.ClientOptions{}, getenv); err == nil || !strings.Contains(err.Error(), "VAULT_ADDR") {
		t.Errorf("no address: %v", err)
	}
	c, err := vault.NewClient(vault.ClientOptions{Address: "http://127.0.0.1:8200", Namespace: "team-a"}, getenv)
	if err != nil || c.Namespace() != "team-a" || c.Token() != "" {
		t.Errorf("namespace %q, token set %v, %v", c.Namespace(), c.Token() != "", err)
	}
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rotatord test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vault"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)
}

func boolPtr(b bool) *bool { return &b }

func testLogger(t *testing.T) *zap.Logger {
	if os.Getenv("ROTATORD_TEST_LOG") != "" {
		l, _ := zap.NewDevelopment()
		return l
	}
	return zap.NewNop()
}

// TestClientDecidesOnWhatItWillUse: the loopback rules hold for the address and the TLS
// settings the Vault client ends up with, whatever set them: plain http to a remote Vault,
// VAULT_SKIP_VERIFY=t (strconv.ParseBool's spelling), and a VAULT_AGENT_ADDR that replaces
// the configured loopback address are refused.
func TestClientDecidesOnWhatItWillUse(t *testing.T) {
	getenv := func(string) string { return "" }
	if _, err := vault.NewClient(vault.ClientOptions{Address: "http://vault.example.com:8200"}, getenv); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Errorf("plain http to a remote Vault: %v", err)
	}
	t.Run("VAULT_SKIP_VERIFY=t", func(t *testing.T) {
		t.Setenv("VAULT_SKIP_VERIFY", "t")
		if _, err := vault.NewClient(vault.ClientOptions{Address: "https://vault.example.com:8200"}, os.Getenv); err == nil || !strings.Contains(err.Error(), "only for a loopback address") {
			t.Errorf("VAULT_SKIP_VERIFY=t off loopback: %v", err)
		}
	})
	t.Run("VAULT_AGENT_ADDR", func(t *testing.T) {
		t.Setenv("VAULT_AGENT_ADDR", "http://agent.example.com:8100")
		_, err := vault.NewClient(vault.ClientOptions{Address: "http://127.0.0.1:8200"}, os.Getenv)
		if err == nil || !strings.Contains(err.Error(), "agent.example.com") {
			t.Errorf("a remote plain-http VAULT_AGENT_ADDR replacing a loopback address: %v", err)
		}
	})
}

// TestHugeAnswerIsBounded: a Vault (or a proxy) answering 500 with a 64 MiB body gives an
// error of bounded length, read from a bounded body.
func TestHugeAnswerIsBounded(t *testing.T) {
	huge := strings.Repeat("x", 64<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, huge)
	}))
	defer srv.Close()
	c, err := vault.NewClient(vault.ClientOptions{Address: srv.URL}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c.SetMaxRetries(0)
	c.SetToken("t")
	_, err = c.Logical().Read("secret/data/x")
	if err == nil {
		t.Fatal("a 500 read succeeded")
	}
	if n := len(err.Error()); n > 2<<20 {
		t.Errorf("the raw error has %d bytes: the body was not bounded", n)
	}
	if n := len(vault.Explain(err).Error()); n > 1100 {
		t.Errorf("the explained error has %d bytes, want about 1000 at most", n)
	}
}

// TestFileErrorsAreNotUnreachable: syscall.Errno has the methods of net.Error, so an
// unreadable token or secret_id file once read as "Vault unreachable".
func TestFileErrorsAreNotUnreachable(t *testing.T) {
	_, err := os.ReadFile(filepath.Join(t.TempDir(), "missing"))
	for _, e := range []error{err, fmt.Errorf("read vault.token_file: %w", err), syscall.EACCES} {
		if vault.IsUnreachable(e) {
			t.Errorf("IsUnreachable(%v) = true", e)
		}
	}
	conn, err := net.Dial("tcp", "127.0.0.1:1")
	if err == nil {
		conn.Close()
		t.Fatal("port 1 answered")
	}
	if !vault.IsUnreachable(err) {
		t.Errorf("IsUnreachable(%v) = false", err)
	}
}

// TestClientKeepsConnectionsForTheConcurrency: with MaxConns 8, eight requests at a time
// reuse eight connections (the library's default keeps GOMAXPROCS+1, 3 on two cores, and a
// burst at scheduler.max_concurrent 8 opened and closed connections to Vault).
func TestClientKeepsConnectionsForTheConcurrency(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"k":"v"}}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := vault.NewClient(vault.ClientOptions{Address: srv.URL, MaxConns: 8}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("t")
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Logical().ReadWithContext(context.Background(), "kv/data/x"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if n := opened.Load(); n > 8 {
		t.Errorf("%d connections opened for 160 requests 8 at a time, want at most 8", n)
	}
}

// TestWrappedSecretIDIsCheckedBeforeUse: a wrapping token that AppRole's secret-id endpoint
// did not make (here one wrapping planted data) is refused, named by its creation path, and
// left unused; a Vault (or something in its place) that answers the unwrap with an empty
// 200 gets a clear error, not a crash.
func TestWrappedSecretIDIsCheckedBeforeUse(t *testing.T) {
	v := setup(t)
	ctx := context.Background()
	roleID, _ := v.AppRole(t, "rotatord", map[string]any{"token_policies": "kv", "token_ttl": "1h"})
	c := v.Client(t)
	c.SetWrappingLookupFunc(func(string, string) string { return "120s" })
	planted, err := c.Logical().Write("sys/wrapping/wrap", map[string]any{"secret_id": "chosen-by-someone-else"})
	if err != nil || planted.WrapInfo == nil {
		t.Fatalf("wrap: %v", err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(secretFile, []byte(planted.WrapInfo.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := vault.LoginOptions{Method: vault.MethodAppRole, RoleID: roleID, SecretIDFile: secretFile, SecretIDWrapped: true}
	auth, _ := newAuth(t, v, opts, "", nil, vault.Observer{})
	if err := auth.Login(ctx); err == nil || !strings.Contains(err.Error(), `was not made by AppRole's secret-id endpoint (it wraps the answer of "sys/wrapping/wrap")`) {
		t.Errorf("login with a planted wrapping token: %v", err)
	}
	if _, err := v.Client(t).Logical().Write("sys/wrapping/lookup", map[string]any{"token": planted.WrapInfo.Token}); err != nil {
		t.Errorf("the planted token was used up: %v", err)
	}

	// An empty 200 where the unwrapped secret_id should be.
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/sys/wrapping/lookup" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"data":{"creation_path":"auth/approle/role/rotatord/secret-id"}}`))
			return
		}
		w.WriteHeader(http.StatusOK) // sys/wrapping/unwrap: nothing
	}))
	defer empty.Close()
	client, err := vault.NewClient(vault.ClientOptions{Address: empty.URL}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	auth, err = vault.NewAuth(vault.AuthOptions{Client: client, Config: opts, Getenv: func(string) string { return "" }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Login(ctx); err == nil || !strings.Contains(err.Error(), "did not unwrap to a secret_id") {
		t.Errorf("an empty unwrap answer: %v", err)
	}
}

// TestCredentialFilesMustBePrivate: a token or secret_id file that others may read is
// refused, naming the file and the mode, never the content; a role_id (an identifier) is not.
func TestCredentialFilesMustBePrivate(t *testing.T) {
	v := setup(t)
	file := filepath.Join(t.TempDir(), "token")
	token := v.Token(t, "kv")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	auth, _ := newAuth(t, v, vault.LoginOptions{}, file, nil, vault.Observer{})
	err := auth.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot read "+file+" (vault.token_file): mode 0644 lets others read it") || strings.Contains(err.Error(), token) {
		t.Errorf("login with a 0644 token file: %v", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := auth.Login(context.Background()); err != nil {
		t.Errorf("login with a 0600 token file: %v", err)
	}
}

// TestTokenNeverLeavesLoopbackInClear: the rule "plain http only to loopback" holds for
// wherever a request really goes: a proxy from the environment (VAULT_PROXY_ADDR) in front
// of a plain-http loopback Vault is refused at start, and a 307 redirect to a plain-http
// address elsewhere is not followed (the token is never sent there; nothing is dialled).
func TestTokenNeverLeavesLoopbackInClear(t *testing.T) {
	t.Setenv("VAULT_PROXY_ADDR", "http://proxy.example.com:3128")
	if _, err := vault.NewClient(vault.ClientOptions{Address: "http://127.0.0.1:8200"}, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "proxy.example.com:3128") {
		t.Errorf("a plain-http loopback Vault behind a remote proxy: %v", err)
	}
	t.Setenv("VAULT_PROXY_ADDR", "")

	var hits atomic.Int32
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://vault.example.com:8200"+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	client, err := vault.NewClient(vault.ClientOptions{Address: redirecting.URL}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("hvs.not-for-anyone-else")
	_, err = client.Logical().Read("secret/data/x")
	if err == nil || !strings.Contains(err.Error(), "not sent to http://vault.example.com:8200") || strings.Contains(err.Error(), "hvs.not-for-anyone-else") {
		t.Errorf("read through a redirect to plain http elsewhere: %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the loopback server, want 1", hits.Load())
	}
}
