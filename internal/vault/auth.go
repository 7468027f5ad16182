package vault

import (
	"context"
	"io/fs"

	"github.com/rotatord/rotatord/internal/backoff"

	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/rotatord/rotatord/internal/secret"
	"go.uber.org/zap"
)

// Login results: the "result" label of rotatord_vault_logins_total.
const (
	LoginSuccess = "success"
	LoginFailure = "failure"
)

// Login methods.
const (
	MethodToken      = "token"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
)

// LoginOptions say how to log in (config: vault.auth.*).
type LoginOptions struct {
	// Method is MethodToken (the default), MethodAppRole or MethodKubernetes.
	Method string
	// Mount is the auth method's mount path; empty means the method's name.
	Mount string
	// RoleID (or RoleIDFile) and SecretIDFile are for AppRole; with SecretIDWrapped the file
	// holds a response-wrapping token for the secret_id.
	RoleID, RoleIDFile, SecretIDFile string
	SecretIDWrapped                  bool
	// Role and ServiceAccountTokenFile are for Kubernetes.
	Role, ServiceAccountTokenFile string
}

// Observer receives the token's lifecycle, for metrics. Nil fields are skipped.
type Observer struct {
	// Login is told each login's result.
	Login func(result string)
	// Expiry is told the token's expiry time (zero: it does not expire).
	Expiry func(t time.Time)
}

// AuthOptions configure an Auth.
type AuthOptions struct {
	Client *vaultapi.Client
	Config LoginOptions
	// TokenFile is vault.token_file (the token method's file).
	TokenFile string
	Getenv    func(string) string
	Logger    *zap.Logger
	Observer  Observer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Timeout bounds one Login as a whole, retries included (0: only ctx bounds it): a Vault
	// that accepts connections and never answers must not hold a start.
	Timeout time.Duration
}

// Auth logs in to Vault and keeps the client's token valid.
type Auth struct {
	opts   AuthOptions
	client *vaultapi.Client
	log    *zap.Logger
	method string

	mu      sync.Mutex // serialises logins
	current *vaultapi.Secret
	// unwrapped is the AppRole secret_id a response-wrapping token gave at the first login:
	// the token works once, and later logins of this process (after the max TTL) need it.
	unwrapped secret.Value
	renewed   chan struct{} // signalled when a new token replaced the watched one
}

// NewAuth validates opts. It neither logs in nor starts goroutines.
func NewAuth(opts AuthOptions) (*Auth, error) {
	if opts.Client == nil || opts.Logger == nil {
		return nil, errors.New("vault auth: Client and Logger are required")
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	method := opts.Config.Method
	if method == "" {
		method = MethodToken
	}
	switch method {
	case MethodToken, MethodAppRole, MethodKubernetes:
	default:
		return nil, fmt.Errorf("vault auth: unknown method %q", method)
	}
	return &Auth{opts: opts, client: opts.Client, log: opts.Logger.Named("vault"), method: method, renewed: make(chan struct{}, 1)}, nil
}

// Client is the Vault client whose token this login keeps valid: the one client the sink,
// the leases and the preflight share.
func (a *Auth) Client() *vaultapi.Client { return a.client }

// Method names the auth method in use.
func (a *Auth) Method() string { return a.method }

// Login obtains a token and installs it in the client, within AuthOptions.Timeout.
func (a *Auth) Login(ctx context.Context) error {
	if a.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.opts.Timeout)
		defer cancel()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loginLocked(ctx, false)
}

// loginLocked logs in; with replaced set it tells Run that the token it watches was
// replaced from outside (by Recover), so Run watches the new one.
func (a *Auth) loginLocked(ctx context.Context, replaced bool) error {
	secret, err := a.obtain(ctx)
	if err != nil {
		a.observeLogin(LoginFailure)
		return fmt.Errorf("vault login (%s): %w", a.method, Explain(err))
	}
	a.observeLogin(LoginSuccess)
	a.current = secret
	a.observeExpiry(secret)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	a.log.Info("vault login", zap.String("method", a.method), zap.Duration("ttl", ttl), zap.Bool("renewable", secret.Auth.Renewable))
	if replaced {
		select {
		case a.renewed <- struct{}{}:
		default:
		}
	}
	return nil
}

// obtain performs the method's login and returns the token's auth info.
func (a *Auth) obtain(ctx context.Context) (*vaultapi.Secret, error) {
	c := a.opts.Config
	switch a.method {
	case MethodAppRole:
		roleID, err := readSecretValue(c.RoleID, c.RoleIDFile, "vault.auth.role_id")
		if err != nil {
			return nil, err
		}
		secretID, err := a.appRoleSecretID(ctx)
		if err != nil {
			return nil, err
		}
		opts := []approle.LoginOption{}
		if c.Mount != "" {
			opts = append(opts, approle.WithMountPath(c.Mount))
		}
		m, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID.Reveal()}, opts...)
		if err != nil {
			return nil, err
		}
		return a.client.Auth().Login(ctx, m)
	case MethodKubernetes:
		opts := []kubernetes.LoginOption{kubernetes.WithServiceAccountTokenPath(c.ServiceAccountTokenFile)}
		if c.Mount != "" {
			opts = append(opts, kubernetes.WithMountPath(c.Mount))
		}
		m, err := kubernetes.NewKubernetesAuth(c.Role, opts...)
		if err != nil {
			return nil, err
		}
		return a.client.Auth().Login(ctx, m)
	}
	// The token method: from vault.token_file (re-read at every login) or VAULT_TOKEN.
	token := strings.TrimSpace(a.opts.Getenv("VAULT_TOKEN"))
	if a.opts.TokenFile != "" {
		var err error
		if token, err = readCredentialFile(a.opts.TokenFile, "vault.token_file"); err != nil {
			return nil, err
		}
	}
	if token == "" {
		return nil, errors.New("no token: set vault.token_file or VAULT_TOKEN")
	}
	a.client.SetToken(token)
	self, err := a.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up the token (needs read on auth/token/lookup-self): %w", err)
	}
	return tokenSecret(token, self)
}

// tokenSecret turns a lookup-self answer into the auth info a lifetime watcher needs.
func tokenSecret(token string, self *vaultapi.Secret) (*vaultapi.Secret, error) {
	ttl, err := self.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("token ttl: %w", err)
	}
	renewable, err := self.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("token renewable: %w", err)
	}
	return &vaultapi.Secret{Auth: &vaultapi.SecretAuth{ClientToken: token, LeaseDuration: int(ttl.Seconds()), Renewable: renewable}}, nil
}

// Run keeps the token valid until ctx is done: a renewable token is renewed by Vault's
// lifetime watcher until it can be renewed no more; then, and ahead of the expiry of a
// token that cannot be renewed, Run logs in again. Failed logins are retried with backoff.
func (a *Auth) Run(ctx context.Context) error {
	// Failed logins: 1 s, 2 s, 4 s … at most a minute apart.
	retry, step := backoff.Policy{Initial: time.Second, Max: time.Minute}, 0
	for {
		a.mu.Lock()
		secret := a.current
		a.mu.Unlock()
		if secret == nil {
			if err := a.Login(ctx); err != nil {
				wait := retry.Next(&step, nil)
				a.log.Error("vault login failed; retrying", zap.Duration("retrying_in", wait), zap.Error(err))
				if !sleepCtx(ctx, wait) {
					return nil
				}
				continue
			}
			step = 0
			continue
		}
		if !a.keepAlive(ctx, secret) {
			return nil
		}
		// The token can be kept no longer: log in again.
		a.mu.Lock()
		if a.current == secret {
			a.current = nil
		}
		a.mu.Unlock()
	}
}

// keepAlive watches secret until it must be replaced (true) or ctx is done (false).
func (a *Auth) keepAlive(ctx context.Context, secret *vaultapi.Secret) bool {
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	if ttl == 0 {
		// A token that does not expire (a root token in tests): nothing to do but wait for
		// a replacement made by Recover.
		select {
		case <-ctx.Done():
			return false
		case <-a.renewed:
			return true
		}
	}
	if !secret.Auth.Renewable {
		// Replace it when two thirds of its life have passed.
		t := time.NewTimer(ttl * 2 / 3)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-a.renewed:
			return true
		case <-t.C:
			a.log.Info("vault token is not renewable; logging in again before it expires")
			return true
		}
	}
	w, err := a.client.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		a.log.Warn("vault token watcher", zap.Error(err))
		return true
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-a.renewed:
			return true
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				a.observeExpiry(r.Secret)
			}
		case err := <-w.DoneCh():
			if err != nil {
				a.log.Warn("vault token renewal failed; logging in again", zap.Error(err))
			} else {
				a.log.Info("vault token reached its maximum lifetime; logging in again")
			}
			return true
		}
	}
}

// Recover is called when Vault answered 403: if the token is no longer valid (expired,
// revoked, or a token file that a Vault Agent rewrote), it logs in again and returns nil,
// so the caller may retry once. A valid token that simply lacks the right is left alone.
func (a *Auth) Recover(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.client.Auth().Token().LookupSelfWithContext(ctx); err == nil {
		if a.method != MethodToken || a.opts.TokenFile == "" {
			return errors.New("the token is valid; it lacks the permission")
		}
		// A token file may hold a newer token than the one in use.
		b, rerr := os.ReadFile(a.opts.TokenFile)
		if rerr != nil || strings.TrimSpace(string(b)) == a.client.Token() {
			return errors.New("the token is valid; it lacks the permission")
		}
	}
	a.log.Warn("vault token no longer valid; logging in again", zap.String("method", a.method))
	return a.loginLocked(ctx, true)
}

func (a *Auth) observeLogin(result string) {
	if a.opts.Observer.Login != nil {
		a.opts.Observer.Login(result)
	}
}

func (a *Auth) observeExpiry(s *vaultapi.Secret) {
	if a.opts.Observer.Expiry == nil || s == nil || s.Auth == nil {
		return
	}
	if s.Auth.LeaseDuration == 0 {
		a.opts.Observer.Expiry(time.Time{})
		return
	}
	a.opts.Observer.Expiry(a.opts.Now().Add(time.Duration(s.Auth.LeaseDuration) * time.Second))
}

// appRoleSecretID reads vault.auth.secret_id_file at every login (a rotated credential is
// picked up). A response-wrapping token there is unwrapped at the first login only, and its
// secret_id kept in memory: the token works once.
func (a *Auth) appRoleSecretID(ctx context.Context) (secret.Value, error) {
	c := a.opts.Config
	if c.SecretIDWrapped && !a.unwrapped.IsZero() {
		return a.unwrapped, nil
	}
	v, err := readCredentialFile(c.SecretIDFile, "vault.auth.secret_id_file")
	if err != nil {
		return secret.Value{}, err
	}
	if !c.SecretIDWrapped {
		return secret.New(v), nil
	}
	// Only a wrapping token that AppRole's secret-id endpoint made is unwrapped: one that
	// wraps anything else (a planted token) is refused before it is used up.
	lookup, err := a.client.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": v})
	if err == nil {
		path, _ := lookupData(lookup)["creation_path"].(string)
		if !strings.HasPrefix(path, "auth/") || !strings.Contains(path, "/role/") || !strings.HasSuffix(path, "/secret-id") {
			return secret.Value{}, fmt.Errorf("the response-wrapping token in %s (vault.auth.secret_id_file) was not made by AppRole's secret-id endpoint "+
				"(it wraps the answer of %.80q): not unwrapped", c.SecretIDFile, path)
		}
	}
	unwrapped, err := a.client.Logical().UnwrapWithContext(ctx, v)
	if err != nil {
		if IsUnreachable(err) {
			return secret.Value{}, fmt.Errorf("unwrap the secret_id: %w", err)
		}
		return secret.Value{}, fmt.Errorf("the response-wrapping token in %s (vault.auth.secret_id_file) was already used or has expired: "+
			"a wrapping token works once, so it cannot survive a restart. Put a new one there, or deliver a plain secret_id "+
			"as a systemd credential with secret_id_wrapped: false (README, AppRole under systemd): %w", c.SecretIDFile, Explain(err))
	}
	id, _ := lookupData(unwrapped)["secret_id"].(string)
	if id == "" {
		return secret.Value{}, fmt.Errorf("the response-wrapping token in %s (vault.auth.secret_id_file) did not unwrap to a secret_id", c.SecretIDFile)
	}
	a.unwrapped = secret.New(id)
	return a.unwrapped, nil
}

// lookupData is s's data, nil for an empty answer (Vault's client returns a nil secret for
// a 200 without a body).
func lookupData(s *vaultapi.Secret) map[string]any {
	if s == nil {
		return nil
	}
	return s.Data
}

// readCredentialFile reads a file holding one credential: an error names the file, the
// setting and the reason ("cannot read FILE (SETTING): permission denied"), never the content.
func readCredentialFile(file, field string) (string, error) {
	if file == "" {
		return "", fmt.Errorf("%s is required", field)
	}
	read := os.ReadFile
	if field != "vault.auth.role_id_file" { // a role_id is an identifier, not a secret
		read = secret.ReadPrivateFile
	}
	b, err := read(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		// %v: the reason is text here, not an error a caller could mistake for a network one.
		return "", fmt.Errorf("cannot read %s (%s): %v", file, field, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s (%s) is empty", file, field)
	}
	return v, nil
}

// readSecretValue takes a value from the config or from a file; errors never quote it.
func readSecretValue(value, file, field string) (string, error) {
	if value != "" {
		return value, nil
	}
	if file == "" {
		return "", fmt.Errorf("%s or %s_file is required", field, field)
	}
	return readCredentialFile(file, field+"_file")
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
