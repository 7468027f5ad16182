// Command vaultdev serves a real, unsealed, in-memory HashiCorp Vault (open-source v1.14.1,
// MPL-2.0) with the real KV secrets plugin over HTTP on loopback. It exists only for
// rotatord's tests, demo and benchmarks: it lives in its own Go module so that Vault's
// dependency graph never enters rotatord's go.mod.
//
// On start it prints one JSON line to stdout:
//
//	{"addr":"http://127.0.0.1:PORT","root_token":"hvs.…","unseal_keys":["base64…"]}
//
// and serves until its standard input is closed or it receives SIGINT or SIGTERM, so a
// test that starts it and dies never leaves it behind.
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	credAppRole "github.com/hashicorp/vault/builtin/credential/approle"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
	testinginterface "github.com/mitchellh/go-testing-interface"

	"github.com/rotatord/rotatord/tools/vaultdev/transit"
)

// announcement is the single line printed once the server listens.
type announcement struct {
	Addr       string   `json:"addr"`
	RootToken  string   `json:"root_token"`
	UnsealKeys []string `json:"unseal_keys"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vaultdev:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	certFile := flag.String("tls-cert", "", "PEM certificate: serve HTTPS when set (with -tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key for -tls-cert")
	logLevel := flag.String("log-level", "error", "Vault's own log level")
	kv2 := flag.String("kv2", "", "also mount a KV v2 secrets engine at this path (secret/ is KV v1, as in Vault's dev mode)")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: only loopback addresses are allowed", *listen)
	}

	// An unsealed in-memory core with the real KV plugin (v1 and v2) as "kv", Vault's own
	// transit engine as "transit" (report signatures; see transit/README.md) and the real
	// AppRole auth method as "approle".
	logger := hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.LevelFromString(*logLevel), Output: os.Stderr})
	core, keys, rootToken := vault.TestCoreUnsealedWithConfig(&testinginterface.RuntimeT{}, &vault.CoreConfig{
		Logger:             logger,
		LogicalBackends:    map[string]logical.Factory{"kv": kv.Factory, "transit": transit.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": credAppRole.Factory},
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           vaulthttp.Handler.Handler(&vault.HandlerProperties{Core: core}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	scheme := "http"
	serve := func() error { return srv.Serve(ln) }
	if *certFile != "" || *keyFile != "" {
		scheme = "https"
		serve = func() error { return srv.ServeTLS(ln, *certFile, *keyFile) }
	}

	a := announcement{Addr: scheme + "://" + ln.Addr().String(), RootToken: rootToken}
	for _, k := range keys {
		a.UnsealKeys = append(a.UnsealKeys, base64.StdEncoding.EncodeToString(k))
	}
	line, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode announcement: %w", err)
	}

	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	if *kv2 != "" {
		if err := mountKV2(a.Addr, rootToken, *kv2); err != nil {
			return err
		}
	}
	fmt.Println(string(line))

	// Serve until stdin closes (the parent went away) or a signal arrives.
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	case <-stdinClosed:
	case <-sigs:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return core.Shutdown()
}

// mountKV2 enables a KV v2 secrets engine at path through Vault's own API.
func mountKV2(addr, token, path string) error {
	body := strings.NewReader(`{"type":"kv","options":{"version":"2"}}`)
	req, err := http.NewRequest(http.MethodPost, addr+"/v1/sys/mounts/"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", token)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // our own loopback server
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("-kv2 %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("-kv2 %s: %s: %s", path, resp.Status, b)
	}
	return nil
}
