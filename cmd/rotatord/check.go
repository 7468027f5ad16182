package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// requiredScopes are the API key scopes rotatord needs: rotate, and list keys to check an
// ambiguous rotation (write does not imply read).
var requiredScopes = []string{"endpoints:write", "endpoints:read"}

// checkCommand is `rotatord check`: validate the config; with --online also ask webhook.co
// whether the key has the scopes and Vault whether the token may write every path.
func checkCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("check", env)
	path := fs.String("config", config.DefaultPath, "config file")
	online := fs.Bool("online", false, "also call webhook.co (whoami) and Vault (capabilities of each path)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	key, err := cfg.API.LoadAPIKey(env.Getenv)
	if err != nil {
		return err
	}
	s, auth, err := newSink(cfg, env, zap.NewNop(), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "config %s: ok, %d destinations, sink %s, coordination %s\n", *path, len(cfg.Destinations), s.Name(), cfg.Coordination.Mode)
	if !*online {
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	problems := checkAPI(ctx, cfg, key, env)
	if auth != nil {
		if err := auth.Login(ctx); err != nil {
			fmt.Fprintf(env.Stdout, "vault: %v\n", err)
			return &exitError{code: 1, err: fmt.Errorf("check --online found %d problems", problems+1)}
		}
		fmt.Fprintf(env.Stdout, "vault: logged in (%s)\n", auth.Method())
		if v, ok := s.(*sink.Vault); ok {
			if version, err := v.KVVersion(ctx); err == nil {
				fmt.Fprintf(env.Stdout, "vault: KV v%d at %s/\n", version, cfg.Vault.KV.Mount)
			}
		}
	}
	problems += checkSink(ctx, cfg, s, env)
	problems += checkLeases(ctx, cfg, s, auth, env)
	if problems > 0 {
		return &exitError{code: 1, err: fmt.Errorf("check --online found %d problems", problems)}
	}
	fmt.Fprintln(env.Stdout, "online check: ok")
	return nil
}

// checkAPI calls whoami and reports missing scopes.
func checkAPI(ctx context.Context, cfg *config.Config, key secret.Value, env Env) int {
	client, err := webhookco.New(webhookco.Options{BaseURL: cfg.API.BaseURL, APIKey: key, Version: version, Timeout: cfg.API.Timeout})
	if err != nil {
		fmt.Fprintf(env.Stdout, "webhook.co %s: %v\n", cfg.API.BaseURL, err)
		return 1
	}
	id, err := client.Whoami(ctx)
	if err != nil {
		fmt.Fprintf(env.Stdout, "webhook.co %s: %v\n", cfg.API.BaseURL, err)
		return 1
	}
	var missing []string
	for _, s := range requiredScopes {
		if !id.HasScope(s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(env.Stdout, "webhook.co %s: the API key (org %s) lacks the scopes %s\n", cfg.API.BaseURL, id.OrgID, strings.Join(missing, ", "))
		return 1
	}
	fmt.Fprintf(env.Stdout, "webhook.co %s: ok, org %s, scopes %s\n", cfg.API.BaseURL, id.OrgID, strings.Join(id.Scopes, " "))
	return 0
}

// checkSink reports, per destination, whether the sink will accept its secret.
func checkSink(ctx context.Context, cfg *config.Config, s interface{ Location(string) string }, env Env) int {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tPATH\tSTATUS")
	problems := 0
	for _, d := range cfg.Destinations {
		status := "ok"
		var err error
		var missing []string
		switch v := s.(type) {
		case *sink.Vault:
			missing, err = v.ProbeWrite(ctx, d.VaultPath)
		case *sink.File:
			err = probeDir(filepath.Dir(v.Location(d.VaultPath)))
		}
		switch {
		case err != nil:
			status = "error: " + err.Error()
		case len(missing) > 0:
			status = "missing " + strings.Join(missing, ", ")
		}
		if status != "ok" {
			problems++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, s.Location(d.VaultPath), status)
	}
	_ = tw.Flush()
	return problems
}

// checkLeases reports whether the Vault leases (coordination.mode vault) can be taken:
// a KV v2 mount, and create, update and read on the lease entries.
func checkLeases(ctx context.Context, cfg *config.Config, s rotate.Sink, auth *vault.Auth, env Env) int {
	leases, err := newCoordinator(cfg, s, auth, "rotatord check")
	if err != nil {
		fmt.Fprintf(env.Stdout, "leases: %v\n", err)
		return 1
	}
	v, ok := leases.(*lease.Vault)
	if !ok || len(cfg.Destinations) == 0 {
		return 0
	}
	missing, err := v.Probe(ctx, cfg.Destinations[0].ID)
	switch {
	case err != nil:
		fmt.Fprintf(env.Stdout, "vault leases %s: %v\n", v.Location("*"), err)
		return 1
	case len(missing) > 0:
		fmt.Fprintf(env.Stdout, "vault leases %s: the token lacks %s (see deploy/vault/rotatord-policy.hcl)\n", v.Location("*"), strings.Join(missing, ", "))
		return 1
	}
	fmt.Fprintf(env.Stdout, "vault leases %s: ok, ttl %s\n", v.Location("*"), cfg.Coordination.LeaseTTL)
	return 0
}

// probeDir checks that the file sink can create files in dir (creating dir as Put would).
func probeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".rotatord-check-*")
	if err != nil {
		return err
	}
	return errors.Join(f.Close(), os.Remove(f.Name()))
}
