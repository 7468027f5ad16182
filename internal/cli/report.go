package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/report"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// reportCommand is `rotatord report`: the evidence of an audit period (see package report),
// or with `verify` the check of a report written earlier.
func reportCommand(ctx context.Context, args []string, env Env) error {
	if len(args) > 0 && args[0] == "verify" {
		return reportVerifyCommand(ctx, args[1:], env)
	}
	fs := newFlagSet("report", env)
	path := fs.String("config", config.DefaultPath, "config file")
	from := fs.String("from", "", "start of the period, included: 2026-07-01 (UTC) or RFC 3339")
	to := fs.String("to", "", "end of the period, excluded: 2026-10-01 (UTC) or RFC 3339")
	output := fs.String("output", "text", "text, json, csv or html")
	out := fs.String("out", "", "write the report to this file instead of standard output")
	sign := fs.String("sign", "", "sign the report's digest with this Vault transit key ([MOUNT/]NAME)")
	concurrency := fs.Int("concurrency", 8, "destinations read at once")
	failOn := fs.String("fail-on", report.Error, "exit 1 when a finding is at least this severe: error or warning")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := reportPeriod(*from, *to)
	if err != nil {
		return err
	}
	if err := reportFlags(*output, *failOn, *concurrency); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	s, auth, err := app.OpenSink(ctx, cfg, env.daemonEnv())
	if err != nil {
		return err
	}
	client, err := apiClient(cfg, env)
	if err != nil {
		return err
	}
	signer, err := transitSigner(*sign, auth, s.Name())
	if err != nil {
		return err
	}
	pace := newPaced(cfg, env.Stderr)
	// Preflight: the key may read, and the sink's rights, before anything is read.
	id, err := reportKey(ctx, client)
	if err != nil {
		return err
	}
	targets, others, err := reportTargets(ctx, cfg, client, pace, p, fs.Args())
	if err != nil {
		return err
	}
	if err := reportVaultRights(ctx, s, auth, signer, targets); err != nil {
		return err
	}
	src := report.Sources{Keys: client.ListSigningSecrets, Pace: pace.do, Sink: s, Concurrency: *concurrency, Progress: env.Stderr}
	if v, ok := s.(versioned); ok {
		src.KV = v.Metadata
	}
	in := reportInputs(ctx, cfg, s, id, *path, fs.Args())
	in.AuditChain = auditChain(ctx, client, pace, id)
	b := report.NewBuilder(p, in, len(targets), time.Now())
	report.Gather(ctx, src, targets, b)
	if err := ctx.Err(); err != nil {
		return err
	}
	r := b.Report(others)
	var signWith report.Signer
	if signer != nil {
		signWith = signer
	}
	if err := writeReport(ctx, env, *out, r, *output, signWith); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "report: %d destinations in scope, %d compliant, %d errors, %d warnings\n",
		r.Summary.InScope, r.Summary.Compliant, r.Summary.Errors, r.Summary.Warnings)
	if r.Summary.Errors > 0 || (*failOn == report.Warning && r.Summary.Warnings > 0) {
		return &exitError{code: 1}
	}
	return nil
}

// reportInputs names what a report is built from.
func reportInputs(ctx context.Context, cfg *config.Config, s rotate.Sink, id webhookco.Identity, path string, names []string) report.Inputs {
	in := report.Inputs{Organization: id.OrgID, APIURL: cfg.API.BaseURL, Sink: s.Name(), Config: path, Version: version, Names: names}
	if v, ok := s.(kvServer); ok {
		kv, _ := v.KVVersion(ctx)
		in.Sink, in.VaultAddress, in.VaultMount = fmt.Sprintf("vault KV v%d", kv), v.Address(), v.Mount()
	}
	return in
}

// reportFlags checks --output, --fail-on and --concurrency.
func reportFlags(output, failOn string, concurrency int) error {
	switch {
	case !slices.Contains(report.Formats, output):
		return fmt.Errorf("%w: --output %q: want %s", errUsage, output, strings.Join(report.Formats, ", "))
	case failOn != report.Error && failOn != report.Warning:
		return fmt.Errorf("%w: --fail-on %q: want error or warning", errUsage, failOn)
	case concurrency < 1 || concurrency > 64:
		return fmt.Errorf("%w: --concurrency %d: want 1 to 64", errUsage, concurrency)
	}
	return nil
}

// transitSigner is --sign's transit key on the login's client (nil without --sign).
func transitSigner(sign string, auth *vault.Auth, sinkName string) (*vault.Transit, error) {
	if sign == "" {
		return nil, nil
	}
	if auth == nil {
		return nil, fmt.Errorf("--sign needs Vault: the config's sink is %s", sinkName)
	}
	mount, key, err := vault.ParseTransitKey(sign)
	if err != nil {
		return nil, fmt.Errorf("%w: --sign: %v", errUsage, err)
	}
	return &vault.Transit{Client: auth.Client(), Mount: mount, Key: key, Recover: auth.Recover}, nil
}

// reportPeriod reads --from and --to: a date is midnight UTC; RFC 3339 keeps its zone.
func reportPeriod(from, to string) (report.Period, error) {
	parse := func(flag, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, fmt.Errorf("%w: %s is required (2026-07-01 or RFC 3339)", errUsage, flag)
		}
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %s %q: want a date such as 2026-07-01 or an RFC 3339 time", errUsage, flag, v)
		}
		return t, nil
	}
	f, err := parse("--from", from)
	if err != nil {
		return report.Period{}, err
	}
	t, err := parse("--to", to)
	if err != nil {
		return report.Period{}, err
	}
	if !f.Before(t) {
		return report.Period{}, fmt.Errorf("%w: --from %s is not before --to %s", errUsage, from, to)
	}
	return report.Period{From: f, To: t}, nil
}

// reportKey checks that the API key may read keys and the account (endpoints:read).
func reportKey(ctx context.Context, client *webhookco.Client) (webhookco.Identity, error) {
	id, err := client.Whoami(ctx)
	if err != nil {
		return id, fmt.Errorf("preflight: webhook.co whoami: %w", err)
	}
	if !id.HasScope("endpoints:read") {
		return id, fmt.Errorf("preflight: the API key lacks the scope endpoints:read, which report needs to list destinations and their keys (it needs no write scope)")
	}
	return id, nil
}

// The capabilities a report uses when the sink has them (internal/sink/vaultkv does).
type (
	// versioned keeps each secret's versions, with metadata (KV v2).
	versioned interface {
		Metadata(ctx context.Context, path string) (*sink.KVMetadata, error)
	}
	// kvServer is a sink on a server, named in the report's inputs.
	kvServer interface {
		KVVersion(ctx context.Context) (int, error)
		Address() string
		Mount() string
	}
	// readNeeder says which Vault rights reading a secret uses.
	readNeeder interface {
		ReadNeeds(path string) []vault.Need
	}
)

// reportVaultRights names any Vault right the report would miss, before it reads.
func reportVaultRights(ctx context.Context, s interface{ Name() string }, auth *vault.Auth, signer *vault.Transit, targets []report.Target) error {
	v, ok := s.(readNeeder)
	if !ok || auth == nil {
		return nil
	}
	var needs []vault.Need
	for _, t := range targets {
		needs = append(needs, v.ReadNeeds(t.Path)...)
	}
	if signer != nil {
		needs = append(needs, signer.SignNeed())
	}
	missing, err := vault.Missing(ctx, auth.Client(), auth.Recover, needs)
	if err != nil {
		return fmt.Errorf("preflight: Vault: %w", err)
	}
	if len(missing) > 0 {
		var names []string
		for _, n := range missing[:min(len(missing), 5)] {
			names = append(names, n.String())
		}
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" and %d more", len(missing)-5)
		}
		return fmt.Errorf("preflight: the Vault token lacks %s%s (see deploy/vault/rotatord-report-policy.hcl)", strings.Join(names, ", "), more)
	}
	return nil
}

// reportTargets lists the account and decides which destinations the report covers: the
// config's and the rules' ones, and those rotatord saw deleted; others are the account's
// destinations nothing covers. names, when given, narrow it to those destinations.
func reportTargets(ctx context.Context, cfg *config.Config, client *webhookco.Client, pace *paced, p report.Period, names []string) ([]report.Target, []report.Other, error) {
	var listing webhookco.Listing
	err := pace.do(ctx, "the listing of the account's replay destinations", func(ctx context.Context) (err error) {
		listing, err = client.ListDestinations(ctx)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list the account's replay destinations at webhook.co: %w", err)
	}
	created := map[string]time.Time{}
	for _, l := range listing.Destinations {
		created[strings.ToLower(l.ID)] = l.CreatedAt
	}
	cov, _ := account.WithDeleted(resolveListing(cfg, listing), nil, app.ReadDeleted(cfg.StateDir))
	gone := map[string]*time.Time{}
	for _, it := range cov.InState(account.Revoked) {
		gone[it.ID] = it.GoneSince
	}
	var targets []report.Target
	seen := map[string]bool{}
	add := func(d config.Destination, source string) {
		id := strings.ToLower(d.ID)
		if seen[id] {
			return
		}
		seen[id] = true
		t := report.Target{Name: d.Name, ID: id, Path: d.VaultPath, Source: source, CreatedAt: created[id],
			Policy: report.Policy{Schedule: d.Schedule, TimeZone: d.TimeZone, MaxAge: d.EffectiveMaxAge(p.From)}}
		if at := gone[id]; at != nil {
			t.DeletedAt = *at
		}
		targets = append(targets, t)
	}
	sources := map[string]string{}
	for _, it := range cov.Items {
		sources[it.ID] = it.Source
	}
	for _, d := range cov.WithConfigured(cfg) {
		if d.IsEnabled() {
			add(d, sources[strings.ToLower(d.ID)])
		}
	}
	for _, it := range cov.InState(account.Revoked) {
		if it.Name != "" && it.VaultPath != "" {
			add(goneDestination(cfg, it), it.Source)
		}
	}
	var others []report.Other
	for _, it := range cov.InState(account.Uncovered) {
		others = append(others, report.Other{ID: it.ID, Label: it.Label, URL: it.URL, CreatedAt: created[it.ID]})
	}
	if len(names) == 0 {
		return targets, others, nil
	}
	var picked []report.Target
	for _, n := range names {
		i := slices.IndexFunc(targets, func(t report.Target) bool { return t.Name == n })
		if i < 0 {
			return nil, nil, fmt.Errorf("%w: no destination called %q in the config, its rules' destinations or the ones rotatord saw deleted", errUsage, n)
		}
		picked = append(picked, targets[i])
	}
	return picked, nil, nil
}

// goneDestination is a destination rotatord saw deleted, with its policy: its entry's, or
// its rule's.
func goneDestination(cfg *config.Config, it account.Item) config.Destination {
	if d, ok := cfg.Destination(it.Name); ok {
		return d
	}
	d := config.Destination{ID: it.ID, Name: it.Name, VaultPath: it.VaultPath, Timing: cfg.Defaults}
	if i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(it.Source, "discovery.rules["), "]")); err == nil && i >= 0 && i < len(cfg.Discovery.Rules) {
		d.Timing = cfg.Discovery.Rules[i].Timing
	}
	return d
}

// auditChain asks webhook.co to check its audit chain when the key may (audit:read).
func auditChain(ctx context.Context, client *webhookco.Client, pace *paced, id webhookco.Identity) *report.AuditChain {
	if !id.HasScope("audit:read") {
		return &report.AuditChain{Detail: "the API key lacks audit:read"}
	}
	var check webhookco.AuditCheck
	err := pace.do(ctx, "the audit chain check", func(ctx context.Context) (err error) {
		check, err = client.AuditVerify(ctx)
		return err
	})
	if err != nil {
		return &report.AuditChain{Checked: true, Detail: "webhook.co did not answer: " + err.Error()}
	}
	out := &report.AuditChain{Checked: true, OK: check.OK, RowsVerified: check.RowsVerified}
	if b := check.Break; b != nil {
		out.Detail = fmt.Sprintf("%s at row %d: %s", b.Kind, b.Seq, b.Detail)
	}
	return out
}

// writeReport writes the sealed report to standard output, or to file: whole or not at all.
func writeReport(ctx context.Context, env Env, file string, r report.Report, format string, signer report.Signer) error {
	if file == "" {
		_, err := report.Write(ctx, env.Stdout, r, format, signer)
		return err
	}
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := report.Write(ctx, tmp, r, format, signer); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("--out: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("--out: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	_ = durable.SyncDir(dir)
	return nil
}

// reportVerifyCommand is `rotatord report verify FILE`: the digest, and with --key the
// signature by that transit key.
func reportVerifyCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("report verify", env)
	path := fs.String("config", config.DefaultPath, "config file (its Vault connection checks the signature)")
	key := fs.String("key", "", "the transit key ([MOUNT/]NAME) the report must be signed with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: report verify takes one FILE", errUsage)
	}
	b, err := readReportFile(fs.Arg(0))
	if err != nil {
		return err
	}
	o, err := report.Open(b)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", fs.Arg(0), err)}
	}
	if !o.Intact {
		return &exitError{code: 1, err: fmt.Errorf("%s: TAMPERED: its content does not match the SHA-256 it carries", fs.Arg(0))}
	}
	fmt.Fprintf(env.Stdout, "%s: digest ok (sha256 %s)\n", fs.Arg(0), o.Seal.SHA256)
	switch {
	case *key == "" && o.Seal.Signature == "":
		fmt.Fprintln(env.Stdout, "signature: none (the report was not signed)")
		return nil
	case *key == "":
		fmt.Fprintf(env.Stdout, "signature: NOT CHECKED: the report says transit key %s; give --key with the key you trust to check it\n", o.Seal.SignedWith)
		return nil
	case o.Seal.Signature == "":
		return &exitError{code: 1, err: fmt.Errorf("%s: not signed, and --key %s asks for a signature", fs.Arg(0), *key)}
	}
	mount, name, err := vault.ParseTransitKey(*key)
	if err != nil {
		return fmt.Errorf("%w: --key: %v", errUsage, err)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	_, auth, err := app.OpenSink(ctx, cfg, env.daemonEnv())
	if err != nil {
		return err
	}
	if auth == nil {
		return fmt.Errorf("--key needs Vault, and the config's sink is not Vault")
	}
	t := vault.Transit{Client: auth.Client(), Mount: mount, Key: name, Recover: auth.Recover}
	valid, err := t.Verify(ctx, o.Digest, o.Seal.Signature)
	if err != nil {
		return fmt.Errorf("verify the signature with %s: %w", t.Name(), err)
	}
	if !valid {
		return &exitError{code: 1, err: fmt.Errorf("%s: signature INVALID for transit key %s (the report says it was signed with %s)", fs.Arg(0), t.Name(), o.Seal.SignedWith)}
	}
	fmt.Fprintf(env.Stdout, "signature: valid, transit key %s\n", t.Name())
	return nil
}

// readReportFile reads a report, at most 1 GiB.
func readReportFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<30+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<30 {
		return nil, errors.New(name + ": larger than 1 GiB, not a report rotatord wrote")
	}
	return b, nil
}
