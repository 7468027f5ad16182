// Package vault connects rotatord to HashiCorp Vault the way Vault operators expect: the
// address, namespace and TLS settings from the config with Vault's usual environment
// variables as fallback; login by token (from the environment or a file that a Vault Agent
// may rewrite), AppRole (optionally with a response-wrapped secret_id) or Kubernetes; and a
// token kept alive for months: renewed while it can be, replaced by a new login before it
// expires, and re-checked when Vault answers "permission denied".
package vault

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/loopback"
)

// ClientOptions are the Vault connection settings (config: vault.*).
type ClientOptions struct {
	Address, Namespace    string
	CACert, CAPath        string
	ClientCert, ClientKey string
	TLSServerName         string
	TLSSkipVerify         bool
	Timeout               time.Duration
	// MaxConns is how many requests may be in flight at once: that many connections are
	// kept for reuse (the library's default keeps GOMAXPROCS+1). Zero keeps the default.
	MaxConns int
}

// NewClient builds a Vault API client from c. Empty fields fall back to VAULT_ADDR,
// VAULT_NAMESPACE, VAULT_CACERT, VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY and
// VAULT_TLS_SERVER_NAME. Certificate verification stays on; turning it off is refused
// unless the address is loopback. The client has no token yet: see Auth.
func NewClient(c ClientOptions, getenv func(string) string) (*vaultapi.Client, error) {
	conf := vaultapi.DefaultConfig() // reads the VAULT_* environment of this process
	if conf.Error != nil {
		return nil, fmt.Errorf("vault config from environment: %w", conf.Error)
	}
	addr := c.Address
	if addr == "" {
		addr = getenv("VAULT_ADDR")
	}
	if addr == "" {
		return nil, errors.New("vault: no address: set vault.address or VAULT_ADDR")
	}
	conf.Address = addr
	if c.Timeout > 0 {
		conf.Timeout = c.Timeout
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("vault address %q: want a URL such as https://vault.example.com:8200", addr)
	}

	if err := configureTLS(conf, c, u, getenv); err != nil {
		return nil, err
	}
	// What the transport will really do, whatever set it (the config, VAULT_SKIP_VERIFY in
	// any spelling Vault's library accepts), decided on the configured transport itself.
	insecure := false
	if tr, ok := conf.HttpClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		insecure = tr.TLSClientConfig.InsecureSkipVerify
	}
	if tr, ok := conf.HttpClient.Transport.(*http.Transport); ok && c.MaxConns > tr.MaxIdleConnsPerHost {
		tr.MaxIdleConnsPerHost = c.MaxConns
	}
	// Bound what any answer can make rotatord read, and hold every request (a redirect's
	// too: Vault's library follows a 307 itself) to the loopback rules.
	conf.HttpClient.Transport = limitedTransport{base: conf.HttpClient.Transport, insecure: insecure}
	client, err := vaultapi.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	if err := checkTransport(client.Address(), insecure); err != nil {
		return nil, err
	}
	// A proxy from the environment (VAULT_PROXY_ADDR, VAULT_HTTP_PROXY, HTTP_PROXY) sees a
	// plain-http request whole: refused at start unless it is on loopback too.
	if req, err := http.NewRequest(http.MethodGet, client.Address(), nil); err == nil {
		if err := checkRequest(conf.HttpClient.Transport, req, insecure); err != nil {
			return nil, err
		}
	}
	client.ClearToken() // a VAULT_TOKEN in the environment is used only by the token method
	if ns := first(c.Namespace, getenv("VAULT_NAMESPACE")); ns != "" {
		client.SetNamespace(ns)
	}
	return client, nil
}

// configureTLS applies the TLS settings (the config's, else VAULT_* from getenv) to conf:
// verification is turned off only for a loopback address, and a client certificate comes
// with its key.
func configureTLS(conf *vaultapi.Config, c ClientOptions, u *url.URL, getenv func(string) string) error {
	tlsConf := &vaultapi.TLSConfig{
		CACert:        first(c.CACert, getenv("VAULT_CACERT")),
		CAPath:        first(c.CAPath, getenv("VAULT_CAPATH")),
		ClientCert:    first(c.ClientCert, getenv("VAULT_CLIENT_CERT")),
		ClientKey:     first(c.ClientKey, getenv("VAULT_CLIENT_KEY")),
		TLSServerName: first(c.TLSServerName, getenv("VAULT_TLS_SERVER_NAME")),
		Insecure:      c.TLSSkipVerify || truthy(getenv("VAULT_SKIP_VERIFY")),
	}
	if tlsConf.Insecure && !loopback.IsHost(u.Hostname()) {
		return fmt.Errorf("vault: TLS certificate verification may be turned off (vault.tls_skip_verify, VAULT_SKIP_VERIFY) only for a loopback address, not %s", u.Host)
	}
	if (tlsConf.ClientCert == "") != (tlsConf.ClientKey == "") {
		return errors.New("vault: set both vault.client_cert and vault.client_key, or neither")
	}
	if err := conf.ConfigureTLS(tlsConf); err != nil {
		return fmt.Errorf("vault TLS settings: %w", err)
	}
	return nil
}

// checkTransport applies the loopback rules to the address the client ends up with
// (VAULT_AGENT_ADDR can replace the configured one) and to its TLS verification: plain http,
// or TLS without certificate verification, only to a loopback address.
func checkTransport(address string, insecure bool) error {
	u, err := url.Parse(address)
	if err != nil || u.Host == "" {
		return fmt.Errorf("vault address %q: want a URL such as https://vault.example.com:8200", address)
	}
	loopback := loopback.IsHost(u.Hostname())
	if u.Scheme == "http" && !loopback {
		return fmt.Errorf("vault address %s: plain http would send the Vault token and every signing secret in clear; use https (plain http only for a loopback address)", u.Redacted())
	}
	if insecure && !loopback {
		return fmt.Errorf("vault: TLS certificate verification may be turned off (vault.tls_skip_verify, VAULT_SKIP_VERIFY) only for a loopback address, not %s", u.Host)
	}
	return nil
}

// Explain adds what to do to errors whose cause is easy to miss: a certificate that could
// not be verified, a connection refused.
//
// The text of the error it returns is bounded (maxErrorText): a Vault, or a proxy in front
// of it, answering with a huge body must not become a huge log line or /readyz text.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	return bounded{explain(err)}
}

func explain(err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && strings.Contains(err.Error(), "Error making API request") {
		// Vault's library prints a response error on several lines, with the whole URL: one
		// line, the method, path, status and Vault's own words.
		path := re.URL
		if u, perr := url.Parse(re.URL); perr == nil {
			path = u.Path
		}
		text := fmt.Sprintf("%s %s: HTTP %d: %s", re.HTTPMethod, path, re.StatusCode, strings.Join(re.Errors, "; "))
		if prefix, _, found := strings.Cut(err.Error(), ": Error making API request"); found {
			text = prefix + ": " + text
		}
		if re.StatusCode == 403 {
			text += " (the Vault token lacks a right: see deploy/vault/rotatord-policy.hcl)"
		}
		return oneLine{text: text, err: err}
	}
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownAuthority) || strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return fmt.Errorf("%w (TLS certificate verification failed: set vault.ca_cert or VAULT_CACERT to the CA that signed Vault's certificate)", err)
	case errors.As(err, &hostname) || errors.As(err, &invalid) || strings.Contains(err.Error(), "failed to verify certificate"):
		return fmt.Errorf("%w (TLS certificate verification failed: check vault.address and vault.tls_server_name against the certificate)", err)
	case strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("%w (is Vault running and vault.address right?)", err)
	}
	return err
}

// oneLine is an error shown as text; errors.Is and As see the cause.
type oneLine struct {
	text string
	err  error
}

func (o oneLine) Error() string { return o.text }
func (o oneLine) Unwrap() error { return o.err }

// maxErrorText bounds the text of a Vault error, wherever it is shown.
const maxErrorText = 1000

// bounded is an error whose text is cut at maxErrorText; errors.Is and As see the cause.
type bounded struct{ err error }

func (b bounded) Error() string {
	text := b.err.Error()
	if len(text) > maxErrorText {
		return text[:maxErrorText] + fmt.Sprintf("… (%d bytes more)", len(text)-maxErrorText)
	}
	return text
}

func (b bounded) Unwrap() error { return b.err }

// maxResponseBytes bounds every Vault response body rotatord reads: its largest honest
// answer (a KV read, a capabilities list) is a few kilobytes.
const maxResponseBytes = 1 << 20

// limitedTransport cuts every response body at maxResponseBytes, and sends no request
// that breaks the loopback rules (checkRequest).
type limitedTransport struct {
	base     http.RoundTripper
	insecure bool
}

func (l limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := checkRequest(l, r, l.insecure); err != nil {
		return nil, err
	}
	resp, err := l.base.RoundTrip(r)
	if err == nil && resp.Body != nil {
		resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxResponseBytes), Closer: resp.Body}
	}
	return resp, err
}

// checkRequest applies the loopback rules to where r really goes: its URL (a redirect's
// target included) may be plain http, or TLS without verification, only on loopback, and
// a proxy that would see a plain-http request whole only on loopback too. The token is in
// every request, so the error is returned before anything is dialled.
func checkRequest(rt http.RoundTripper, r *http.Request, insecure bool) error {
	if err := checkTransport(r.URL.String(), insecure); err != nil {
		return fmt.Errorf("vault request not sent to %s://%s: %w", r.URL.Scheme, r.URL.Host, err)
	}
	if lt, ok := rt.(limitedTransport); ok {
		rt = lt.base
	}
	tr, ok := rt.(*http.Transport)
	if !ok || tr.Proxy == nil || r.URL.Scheme != "http" {
		return nil
	}
	proxy, err := tr.Proxy(r)
	if err != nil {
		return fmt.Errorf("vault proxy: %w", err)
	}
	if proxy != nil && !loopback.IsHost(proxy.Hostname()) {
		return fmt.Errorf("vault address %s is plain http, and the proxy %s from the environment (VAULT_PROXY_ADDR, VAULT_HTTP_PROXY or HTTP_PROXY) would see the token in clear: use https, or a proxy on loopback", r.URL.Host, proxy.Redacted())
	}
	return nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}
