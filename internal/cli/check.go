package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// checkCommand is `rotatord check`: validate the config; with --online also run the
// preflight that run and rotate run before minting (API key and scopes, the KV version of
// the mount, every Vault right), list each destination's keys at webhook.co, and prove
// state_dir writable, leaving nothing behind. It says "ok" only when all of that passed.
func checkCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("check", env)
	path := fs.String("config", config.DefaultPath, "config file")
	online := fs.Bool("online", false, "also call webhook.co (whoami, each destination's keys) and Vault (KV version, rights of each path)")
	credentials := fs.String("credentials-dir", "", "read the files the config takes from a systemd unit's credentials (/run/credentials/UNIT/NAME) from DIR/NAME: the files the unit's LoadCredential= lines load")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *credentials != "" {
		if changed := cfg.ReadCredentialsFrom(*credentials); len(changed) > 0 {
			fmt.Fprintf(env.Stdout, "credentials: %s read from %s\n", strings.Join(changed, ", "), *credentials)
		}
	}
	s, auth, err := app.NewSink(cfg, env.daemonEnv(), zap.NewNop(), nil)
	if err != nil {
		return err
	}
	rules := ""
	if n := len(cfg.Discovery.Rules); n > 0 {
		rules = ", " + plural(n, "discovery rule")
	}
	fmt.Fprintf(env.Stdout, "config %s: ok, %s%s, sink %s, coordination %s\n", *path, plural(len(cfg.Destinations), "destination"), rules, s.Name(), cfg.Coordination.Mode)
	warnLeaseTTL(env.Stdout, cfg)
	warnRuleCollisions(env.Stdout, cfg)
	// Offline, no secret is read: the config can be checked before the credentials exist
	// (a systemd credential appears only while the unit runs).
	if !*online {
		return nil
	}
	if missing := cfg.MissingSystemdCredentials(); len(missing) > 0 {
		what := "are systemd credentials"
		if len(missing) == 1 {
			what = "is a systemd credential"
		}
		return fmt.Errorf("check --online: %s %s (%s…), present only while the unit runs; "+
			"add --credentials-dir DIR, the directory of the files its LoadCredential= lines load (e.g. /etc/rotatord)",
			strings.Join(missing, ", "), what, config.SystemdCredentialsDir)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ch := &onlineCheck{env: env, cfg: cfg, sink: s, auth: auth}
	return ch.run(ctx)
}

// warnLeaseTTL warns for each destination whose period is shorter than coordination.lease_ttl:
// a lease a crashed replica held stalls it for lease_ttl, several slots.
func warnLeaseTTL(w io.Writer, cfg *config.Config) {
	if cfg.Coordination.Mode != config.CoordinationVault {
		return
	}
	now := time.Now()
	for _, d := range cfg.Destinations {
		sched, err := d.ParsedSchedule()
		if err != nil {
			continue
		}
		first := sched.Next(now)
		if period := sched.Next(first).Sub(first); period > 0 && cfg.Coordination.LeaseTTL > period {
			fmt.Fprintf(w, "warning: %s: coordination.lease_ttl %s is longer than its period %s: a replica that dies holding the lease stalls it for %d slots; lower lease_ttl (at least twice api.timeout)\n",
				d.Name, cfg.Coordination.LeaseTTL, period, int(cfg.Coordination.LeaseTTL/period))
		}
	}
}

// onlineCheck is `check --online`: what it asks, and how many problems it found.
type onlineCheck struct {
	env      Env
	cfg      *config.Config
	sink     rotate.Sink
	auth     *vault.Auth
	problems int
}

func (ch *onlineCheck) report(format string, a ...any) {
	ch.problems++
	fmt.Fprintf(ch.env.Stdout, format+"\n", a...)
}

func (ch *onlineCheck) failed() error {
	return &exitError{code: 1, err: fmt.Errorf("check --online found %s", plural(ch.problems, "problem"))}
}

func (ch *onlineCheck) run(ctx context.Context) error {
	cfg, env := ch.cfg, ch.env
	key, err := cfg.API.LoadAPIKey(env.Getenv)
	if err != nil {
		return err
	}
	client, err := app.APIClient(cfg, key, version, nil)
	if err != nil {
		return err
	}
	if ch.auth != nil {
		if err := ch.auth.Login(ctx); err != nil { // bounded by vault.timeout
			ch.report("vault: %v", err)
			return ch.failed()
		}
		fmt.Fprintf(env.Stdout, "vault: logged in (%s)\n", ch.auth.Method())
	}
	leases, err := app.NewLeases(cfg, ch.auth, "rotatord check")
	if err != nil {
		ch.report("coordination: %v", err)
	}
	// The whole account: what the rules select is checked like the config's destinations.
	p := newPaced(cfg, env.Stderr)
	cov, covErr := accountCoverage(ctx, cfg, client, p)
	checked := cfg.Destinations
	if covErr != nil {
		ch.report("%v", covErr)
	} else {
		checked = cov.WithConfigured(cfg) // in force, and the config's own that are not: a config to fix
	}
	found := app.Preflight(ctx, app.ForCheck(cfg, client, ch.sink, ch.auth, leases), checked)
	ch.preflight(found)
	if err := app.ProbeStateDir(cfg.StateDir); err != nil {
		ch.report("state_dir %s: %v", cfg.StateDir, err)
	} else {
		fmt.Fprintf(env.Stdout, "state_dir %s: writable\n", cfg.StateDir)
	}
	ch.problems += checkDestinations(ctx, checked, ch.sink, client, p, blockedRows(found, checked), env)
	if covErr == nil {
		if err := writeCoverage(env.Stdout, cov); err != nil {
			return err
		}
	}
	if ch.problems > 0 {
		return ch.failed()
	}
	fmt.Fprintln(env.Stdout, "online check: ok")
	return nil
}

// preflight says what the preflight found: the key, the KV version, each problem, the leases.
func (ch *onlineCheck) preflight(found app.Findings) {
	cfg, w := ch.cfg, ch.env.Stdout
	if found.Identity.OrgID != "" {
		fmt.Fprintf(w, "webhook.co %s: ok, org %s, scopes %s\n", cfg.API.BaseURL, found.Identity.OrgID, strings.Join(found.Identity.Scopes, " "))
	}
	for _, line := range found.Facts {
		fmt.Fprintln(w, line)
	}
	for _, err := range found.Fatal {
		ch.report("%v", err)
	}
	for _, err := range found.Unchecked {
		ch.report("not checked: %v", err)
	}
	if len(found.Fatal) == 0 && len(found.Unchecked) == 0 {
		for _, line := range found.Ready {
			fmt.Fprintln(w, line)
		}
	}
}

// warnRuleCollisions warns for each include rule whose name and path have no {id}: two
// destinations with one label share them; the one created first keeps them, and anyone
// who creates a twin leaves it uncovered.
func warnRuleCollisions(w io.Writer, cfg *config.Config) {
	for i, r := range cfg.Discovery.Rules {
		if !r.Exclude && !strings.Contains(r.Name, "{id}") && !strings.Contains(r.VaultPath, "{id}") {
			fmt.Fprintf(w, "warning: discovery.rules[%d]: name %q and vault_path %q have no {id}: two destinations with the same label would share them; the one created first keeps them and the other is uncovered (put {id} in the name to tell them apart)\n", i, r.Name, r.VaultPath)
		}
	}
}

// blockedRows is why each destination's row is not ok: the preflight's blocks, and for
// every destination when nothing can rotate (a refused API key, a Vault token without its
// rights).
func blockedRows(found app.Findings, dests []config.Destination) map[string]error {
	if len(found.Fatal) == 0 {
		return found.Blocked
	}
	out := map[string]error{}
	for _, d := range dests {
		out[d.Name] = errors.New("nothing can rotate (see above)")
	}
	return out
}

// checkDestinations lists, per destination, its keys at webhook.co and whether the sink will
// accept its secret (blocked comes from the preflight).
func checkDestinations(ctx context.Context, dests []config.Destination, s interface{ Location(string) string }, client *webhookco.Client, p *paced, blocked map[string]error, env Env) int {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tPATH\tWEBHOOK.CO\tSTATUS")
	problems := 0
	for _, d := range dests {
		provider, status := "", "ok"
		keys, err := p.keys(ctx, client, d)
		var ae *webhookco.APIError
		switch {
		case errors.As(err, &ae) && ae.Status == 404:
			provider, status = "no such replay destination at webhook.co", "error"
		case err != nil:
			provider, status = "error: "+err.Error(), "error"
		default:
			provider = fmt.Sprintf("%s, active %s", plural(len(keys), "key"), webhookco.ActiveKeyID(keys))
		}
		if why := blocked[d.Name]; why != nil {
			status = "error: " + why.Error()
		}
		if status != "ok" {
			problems++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, s.Location(d.VaultPath), provider, status)
	}
	_ = tw.Flush()
	return problems
}
