package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/loopback"
	"github.com/rotatord/rotatord/internal/scheduler"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// namePattern keeps destination names usable as metric label values and in file names.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scheduleHint says what a valid schedule looks like.
const scheduleHint = "want five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1\", or a descriptor such as @daily or @every 1h"

// Validate checks every field and returns all problems at once, each naming the field, the
// bad value and what would be right. Each section has its own check, in the order of the file.
func (c *Config) Validate() error {
	var p problems
	if c.StateDir == "" {
		p.missing("state_dir", "a directory that survives restarts, e.g. /var/lib/rotatord")
	}
	c.validateCredentialFiles(&p)
	c.validateAPI(&p)
	c.validateSink(&p)
	c.validateVault(&p)
	c.validateVaultAuth(&p)
	c.validateCoordination(&p)
	c.validateRuntime(&p)
	c.validateDestinations(&p)
	c.validateDiscovery(&p)
	return errors.Join(p.errs...)
}

// problems collects what Validate finds.
type problems struct{ errs []error }

func (p *problems) add(err error) { p.errs = append(p.errs, err) }

// bad reports a field's value and what would be right.
func (p *problems) bad(field string, value any, format string, args ...any) {
	p.add(fmt.Errorf("%s: %s: %s", field, quoteShort(fmt.Sprint(value)), fmt.Sprintf(format, args...)))
}

// missing reports a field that must be set.
func (p *problems) missing(field, want string) {
	p.add(fmt.Errorf("%s: missing; %s", field, want))
}

// positive reports a duration that must be above zero.
func (p *problems) positive(field string, d time.Duration) {
	if d <= 0 {
		p.bad(field, d, "want a positive duration such as 30s")
	}
}

// validateAPI checks api and api.retry.
func (c *Config) validateAPI(p *problems) {
	c.validateBaseURL(p)
	c.validateAPIKeySource(p)
	p.positive("api.timeout", c.API.Timeout)
	if c.API.RateLimit < 0 {
		p.bad("api.rate_limit", c.API.RateLimit, "want calls per second, e.g. 10, or 0 for no limit")
	}
	if c.API.RateBurst < 1 {
		p.bad("api.rate_burst", c.API.RateBurst, "want at least 1")
	}
	c.validateRetry(p)
}

// validateBaseURL checks api.base_url: an https origin (http only on loopback).
func (c *Config) validateBaseURL(p *problems) {
	if u, err := url.Parse(c.API.BaseURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		p.bad("api.base_url", c.API.BaseURL, "want an absolute https URL such as https://api.webhook.co")
	} else if u.Scheme == "http" && !loopback.IsHost(u.Hostname()) {
		p.bad("api.base_url", c.API.BaseURL, "plain http would send the API key in clear; use https (http is allowed only for loopback hosts)")
	} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		p.bad("api.base_url", c.API.BaseURL, "want the origin only, without a path or query (rotatord adds /v1/…)")
	}
}

// validateAPIKeySource checks api.token_file and api.token_env: one of them, and a name,
// never the key itself.
func (c *Config) validateAPIKeySource(p *problems) {
	switch {
	case c.API.TokenFile == "" && c.API.TokenEnv == "":
		p.missing("api.token_file", "set api.token_file (a file holding the API key) or api.token_env (the name of an environment variable holding it)")
	case c.API.TokenFile != "" && c.API.TokenEnv != "":
		p.bad("api.token_env", c.API.TokenEnv, "set either api.token_file or api.token_env, not both")
	case strings.HasPrefix(c.API.TokenEnv, "whk_"):
		// Looks like the key itself: say so without repeating it.
		p.add(errors.New("api.token_env: holds what looks like an API key; want the NAME of an environment variable that holds the key (the value is not repeated here)"))
	case !envNamePattern.MatchString(c.API.TokenEnv) && c.API.TokenEnv != "":
		p.add(errors.New("api.token_env: want the name of an environment variable (letters, digits, _), not its value (the value is not repeated here)"))
	}
}

// validateRetry checks api.retry.
func (c *Config) validateRetry(p *problems) {
	r := c.API.Retry
	p.positive("api.retry.initial_backoff", r.InitialBackoff)
	p.positive("api.retry.max_backoff", r.MaxBackoff)
	p.positive("api.retry.max_retry_after", r.MaxRetryAfter)
	p.positive("api.retry.max_rate_limit_wait", r.MaxRateLimitWait)
	p.positive("api.retry.max_unreachable_wait", r.MaxUnreachableWait)
	p.positive("api.retry.max_sink_wait", r.MaxSinkWait)
	if r.InitialBackoff > r.MaxBackoff {
		p.bad("api.retry.initial_backoff", r.InitialBackoff, "must not exceed api.retry.max_backoff (%s)", r.MaxBackoff)
	}
	if r.MaxAmbiguousRetries < 0 || r.MaxAmbiguousRetries > 10 {
		p.bad("api.retry.max_ambiguous_retries", r.MaxAmbiguousRetries, "want 0 to 10")
	}
	if r.SettlePeriod < 0 || r.SettlePeriod > 10*time.Minute {
		p.bad("api.retry.settle_period", r.SettlePeriod, "want 0s to 10m (the provider commits a rotate its client left up to 10 s later; 30s is the default)")
	}
}

// validateSink checks sink.
func (c *Config) validateSink(p *problems) {
	switch c.Sink.Type {
	case SinkVault:
		if c.Sink.Dir != "" {
			p.bad("sink.dir", c.Sink.Dir, "only the file sink takes a dir; remove it or set sink.type: file")
		}
	case SinkFile:
		if c.Sink.Dir == "" {
			p.missing("sink.dir", "the file sink needs a directory, e.g. /var/lib/rotatord/secrets")
		}
	default:
		p.bad("sink.type", c.Sink.Type, "want vault or file")
	}
}

// validateVault checks the vault connection and KV mount.
func (c *Config) validateVault(p *problems) {
	c.validateVaultAddress(p)
	if m := c.Vault.KV.Mount; m == "" || strings.HasPrefix(m, "/") || strings.HasSuffix(m, "/") || strings.Contains(m, "..") {
		p.bad("vault.kv.mount", m, "want the mount path without leading or trailing slashes, e.g. secret")
	}
	if k := c.API.KeyCheckInterval; k < 0 || (k > 0 && k < time.Second) {
		p.bad("api.key_check_interval", k, "want 0 (only at start) or at least 1s, e.g. 15m")
	}
	if t := c.Vault.Timeout; t < time.Second || t > 5*time.Minute {
		p.bad("vault.timeout", t, "want 1s to 5m, e.g. 15s")
	}
	if v := c.Vault.KV.Version; v != 0 && v != 1 && v != 2 {
		p.bad("vault.kv.version", v, "want 1 or 2, or leave it out to detect it from the mount")
	}
	if (c.Vault.ClientCert == "") != (c.Vault.ClientKey == "") {
		p.missing("vault.client_key", "set vault.client_cert and vault.client_key together")
	}
}

// validateVaultAddress checks vault.address and that certificate verification is off only
// for a loopback one.
func (c *Config) validateVaultAddress(p *problems) {
	if c.Vault.Address != "" {
		if u, err := url.Parse(c.Vault.Address); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			p.bad("vault.address", c.Vault.Address, "want a URL such as https://vault.example.com:8200")
		}
	}
	if c.Vault.TLSSkipVerify && c.Vault.Address != "" {
		if u, err := url.Parse(c.Vault.Address); err == nil && !loopback.IsHost(u.Hostname()) {
			p.bad("vault.tls_skip_verify", true, "certificate verification may be turned off only for a loopback vault.address; set vault.ca_cert instead")
		}
	}
}

// validateVaultAuth checks vault.auth against its method.
func (c *Config) validateVaultAuth(p *problems) {
	a := c.Vault.Auth
	switch a.Method {
	case AuthToken:
		if a.RoleID != "" || a.RoleIDFile != "" || a.SecretIDFile != "" || a.Role != "" {
			p.bad("vault.auth.method", a.Method, "the token method takes vault.token_file (or VAULT_TOKEN); role settings belong to approle or kubernetes")
		}
	case AuthAppRole:
		if a.RoleID == "" && a.RoleIDFile == "" {
			p.missing("vault.auth.role_id", "set vault.auth.role_id or vault.auth.role_id_file")
		}
		if a.SecretIDFile == "" {
			p.missing("vault.auth.secret_id_file", "the file holding the AppRole secret_id (or its wrapping token with secret_id_wrapped: true)")
		}
	case AuthKubernetes:
		if a.Role == "" {
			p.missing("vault.auth.role", "the Vault role bound to this pod's service account")
		}
	default:
		p.bad("vault.auth.method", a.Method, "want token, approle or kubernetes")
	}

}

// validateCoordination checks coordination against the sink it lives beside.
func (c *Config) validateCoordination(p *problems) {
	switch co := c.Coordination; co.Mode {
	case CoordinationNone, CoordinationLocal:
	case CoordinationVault:
		if c.Sink.Type != SinkVault {
			p.bad("coordination.mode", co.Mode, "Vault leases live next to the secrets; set sink.type: vault, or use mode local on one host")
		}
		if co.LeaseTTL < 2*c.API.Timeout || co.LeaseTTL < 10*time.Second {
			p.bad("coordination.lease_ttl", co.LeaseTTL, "want at least twice api.timeout (%s) and at least 10s: a lease must outlive a rotate request in flight", c.API.Timeout)
		}
		if m := co.Vault.Mount; strings.HasPrefix(m, "/") || strings.HasSuffix(m, "/") || strings.Contains(m, "..") {
			p.bad("coordination.vault.mount", m, "want a KV v2 mount path without leading or trailing slashes, or leave it out to use vault.kv.mount")
		}
		if co.Vault.Mount == "" && c.Vault.KV.Version == 1 {
			p.missing("coordination.vault.mount", "vault.kv.mount is KV v1, and a lease needs KV v2 check-and-set; name a KV v2 mount for the leases")
		}
		if lp := co.Vault.Path; lp == "" || strings.HasPrefix(lp, "/") || strings.HasSuffix(lp, "/") || strings.Contains(lp, "..") {
			p.bad("coordination.vault.path", lp, "want a folder path without leading or trailing slashes, e.g. rotatord/leases")
		}
	default:
		p.bad("coordination.mode", co.Mode, "want none, local or vault")
	}

}

// validateRuntime checks defaults, scheduler, metrics and log.
func (c *Config) validateRuntime(p *problems) {
	if c.Metrics.DestinationSeries != SeriesAll && c.Metrics.DestinationSeries != SeriesProblems {
		p.bad("metrics.destination_series", c.Metrics.DestinationSeries, "want all (every destination has its series) or problems (only while overdue, failing, drifting, held or late)")
	}
	if c.Metrics.Pprof {
		if host, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil || !loopback.IsHost(host) {
			p.bad("metrics.pprof", true, "profiles are served on loopback listeners only; set metrics.listen to 127.0.0.1:PORT")
		}
	}
	if _, err := time.LoadLocation(c.Defaults.TimeZone); err != nil || c.Defaults.TimeZone == "" {
		p.bad("defaults.time_zone", c.Defaults.TimeZone, "want an IANA time zone such as UTC or Europe/Berlin")
	}
	if c.Spool.Flush != FlushGroup && c.Spool.Flush != FlushEach {
		p.bad("spool.flush", c.Spool.Flush, "want group (rotations writing at the same moment share one flush) or each (one flush per write)")
	}
	if c.Scheduler.MaxConcurrent < 1 || c.Scheduler.MaxConcurrent > 256 {
		p.bad("scheduler.max_concurrent", c.Scheduler.MaxConcurrent, "want 1 to 256")
	}
	p.positive("scheduler.shutdown_timeout", c.Scheduler.ShutdownTimeout)
	if c.Scheduler.DriftCheckInterval < 0 || (c.Scheduler.DriftCheckInterval > 0 && c.Scheduler.DriftCheckInterval < time.Second) {
		p.bad("scheduler.drift_check_interval", c.Scheduler.DriftCheckInterval, "want 0 (off) or at least 1s, e.g. 1h")
	}
	if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
		p.bad("metrics.listen", c.Metrics.Listen, "want host:port, e.g. 127.0.0.1:9464")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log.level", c.Log.Level, "want debug, info, warn or error")
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		p.bad("log.format", c.Log.Format, "want json or console")
	}

}

// seenDestinations remembers ids, names and paths already used, by destination index.
type seenDestinations struct{ ids, names, paths map[string]int }

// validateDestinations checks each destination, and that no two share an id, name or path.
func (c *Config) validateDestinations(p *problems) {
	if len(c.Destinations) == 0 && !c.Discovery.Enabled() {
		p.missing("destinations", "list at least one destination (id, name, vault_path), or discovery.rules that select them")
	}
	n := len(c.Destinations)
	seen := seenDestinations{ids: make(map[string]int, n), names: make(map[string]int, n), paths: make(map[string]int, n)}
	for i, d := range c.Destinations {
		validateDestination(p, i, d, seen)
	}
}

// validateDestination checks destinations[i]: who it is, when it rotates, where it goes.
func validateDestination(p *problems, i int, d Destination, seen seenDestinations) {
	field := func(f string) string { return fmt.Sprintf("destinations[%d].%s", i, f) }
	validateIdentity(p, i, d, seen, field)
	validateTiming(p, d, field)
	validatePath(p, i, d, seen, field)
	validateOutputs(p, d, field)
}

// validateIdentity checks a destination's id and name, unique in the config.
func validateIdentity(p *problems, i int, d Destination, seen seenDestinations, field func(string) string) {
	switch {
	case d.ID == "":
		p.missing(field("id"), "the destination's UUID at webhook.co")
	case !webhookco.IsUUID(d.ID):
		p.bad(field("id"), d.ID, "not a UUID webhook.co accepts (8-4-4-4-12 hex digits, version 1-8)")
	default:
		id := strings.ToLower(d.ID)
		if j, dup := seen.ids[id]; dup {
			p.bad(field("id"), d.ID, "also destinations[%d].id; two entries would rotate one destination twice", j)
		}
		seen.ids[id] = i
	}
	switch {
	case d.Name == "":
		p.missing(field("name"), "a short unique name such as billing-prod, used in logs and metrics")
	case !namePattern.MatchString(d.Name):
		p.bad(field("name"), d.Name, "want lowercase letters, digits, '-', '_' or '.', at most 63, starting with a letter or digit")
	default:
		if j, dup := seen.names[d.Name]; dup {
			p.bad(field("name"), d.Name, "duplicate; destinations[%d] has the same name", j)
		}
		seen.names[d.Name] = i
	}
}

// validateTiming checks a destination's schedule and its policies.
func validateTiming(p *problems, d Destination, field func(string) string) {
	loc, err := loadLocation(d.TimeZone)
	if err != nil || d.TimeZone == "" {
		p.bad(field("time_zone"), d.TimeZone, "want an IANA time zone such as UTC or Europe/Berlin")
		loc = time.UTC
	}
	if _, err := parseSchedule(d.Schedule, loc); err != nil {
		p.bad(field("schedule"), d.Schedule, "%v; %s", err, scheduleHint)
	}
	if d.Window < 0 || d.Window > 7*24*time.Hour {
		p.bad(field("window"), d.Window, "want a duration from 0 to 168h")
	}
	if d.Jitter < 0 || d.Jitter > d.Window {
		p.bad(field("jitter"), d.Jitter, "want 0 up to the window (%s): a rotation never starts outside its window", d.Window)
	}
	if d.MaxAge < 0 {
		p.bad(field("max_age"), d.MaxAge, "want a positive duration such as 720h, or leave it out")
	}
	if d.Missed != MissedRunOnce && d.Missed != MissedSkip {
		p.bad(field("missed"), d.Missed, "want run_once or skip")
	}
	if d.FirstRotation != FirstRotationAtStart && d.FirstRotation != FirstRotationOnSchedule {
		p.bad(field("first_rotation"), d.FirstRotation, "want at_start or on_schedule")
	}
	if d.OnDrift != DriftAlert && d.OnDrift != DriftRotate {
		p.bad(field("on_drift"), d.OnDrift, "want alert or rotate")
	}
	validateConsumers(p, d.Timing, field)
}

// validatePath checks a destination's vault_path, unique in the config.
func validatePath(p *problems, i int, d Destination, seen seenDestinations, field func(string) string) {
	switch vp := d.VaultPath; {
	case vp == "":
		p.missing(field("vault_path"), "the path inside the KV mount, e.g. webhookco/billing-prod")
	case strings.HasPrefix(vp, "/") || strings.HasSuffix(vp, "/") || path.Clean(vp) != vp || strings.Contains(vp, ".."):
		p.bad(field("vault_path"), vp, "want a clean relative path without leading or trailing slashes or '..', e.g. webhookco/billing-prod")
	default:
		if j, dup := seen.paths[vp]; dup {
			p.bad(field("vault_path"), vp, "also destinations[%d].vault_path; each destination needs its own path", j)
		}
		seen.paths[vp] = i
	}
}

// Zone returns the destination's time zone; it is valid once Validate passed.
func (d Destination) Zone() *time.Location {
	loc, err := loadLocation(d.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Parsing is memoised: a fleet of 100,000 destinations has a handful of schedules and time
// zones, each parsed once (a time zone is a file read, a schedule a cron parse), and both
// are immutable, so every destination with the same ones shares them.
var (
	locations sync.Map // name → locationOrError
	schedules sync.Map // scheduleKey → scheduleOrError
	// periods holds each schedule's period seen from the last time asked (EffectiveMaxAge):
	// a start asks it of every destination at one now.
	periods sync.Map // scheduleKey → periodAt
)

// scheduleKey is a schedule in a time zone (loadLocation gives one *time.Location a name).
type scheduleKey struct {
	loc  *time.Location
	spec string
}

type periodAt struct {
	now    time.Time
	period time.Duration
}

type locationOrError struct {
	loc *time.Location
	err error
}

type scheduleOrError struct {
	s   scheduler.Schedule
	err error
}

// loadLocation is time.LoadLocation, once per name.
func loadLocation(name string) (*time.Location, error) {
	if v, ok := locations.Load(name); ok {
		l := v.(locationOrError)
		return l.loc, l.err
	}
	loc, err := time.LoadLocation(name)
	locations.Store(name, locationOrError{loc, err})
	return loc, err
}

// parseSchedule is scheduler.ParseSchedule, once per spec and time zone.
func parseSchedule(spec string, loc *time.Location) (scheduler.Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	key := scheduleKey{loc, spec}
	if v, ok := schedules.Load(key); ok {
		s := v.(scheduleOrError)
		return s.s, s.err
	}
	s, err := scheduler.ParseSchedule(spec, loc)
	schedules.Store(key, scheduleOrError{s, err})
	return s, err
}

// ParsedSchedule parses the destination's schedule in its time zone.
func (d Destination) ParsedSchedule() (scheduler.Schedule, error) {
	return parseSchedule(d.Schedule, d.Zone())
}

// Offset is the destination's stable offset inside its window, the one every fire of it
// is spread by (scheduled, first rotation, catch-up): from its id, so every replica and
// every restart computes the same, and leaving room for the jitter, so offset+jitter stays
// inside the window.
func (d Destination) Offset() time.Duration {
	return scheduler.Offset(strings.ToLower(d.ID), d.Window-d.Jitter)
}

// SpreadSchedule returns the destination's schedule, spread by its stable offset inside
// its window: the times it really fires.
func (d Destination) SpreadSchedule() (scheduler.Schedule, error) {
	s, err := d.ParsedSchedule()
	if err != nil {
		return nil, err
	}
	// The stable offset leaves room for the jitter, so offset+jitter stays inside the window.
	return scheduler.SpreadJitter(s, d.Offset(), d.Jitter, nil), nil
}

// EffectiveMaxAge is max_age, or when unset twice the schedule's period seen from now.
func (d Destination) EffectiveMaxAge(now time.Time) time.Duration {
	if d.MaxAge > 0 {
		return d.MaxAge
	}
	key := scheduleKey{d.Zone(), d.Schedule}
	// The same instant in the same location (a schedule in time.Local is read in now's).
	if v, ok := periods.Load(key); ok && v.(periodAt).now.Equal(now) && v.(periodAt).now.Location() == now.Location() {
		return 2 * v.(periodAt).period
	}
	s, err := parseSchedule(key.spec, key.loc)
	if err != nil {
		return 0
	}
	first := s.Next(now)
	period := s.Next(first).Sub(first)
	periods.Store(key, periodAt{now, period})
	return 2 * period
}

// Destination returns the destination called name.
func (c *Config) Destination(name string) (Destination, bool) {
	for _, d := range c.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}
