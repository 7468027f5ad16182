package config

import (
	"errors"
	"fmt"
	"github.com/rotatord/rotatord/internal/loopback"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/scheduler"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// namePattern keeps destination names usable as metric label values and in file names.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scheduleHint says what a valid schedule looks like.
const scheduleHint = "want five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1\", or a descriptor such as @daily or @every 1h"

// Validate checks every field and returns all problems at once, each naming the field, the
// bad value and what would be right.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %q: %s", field, fmt.Sprint(value), fmt.Sprintf(format, args...)))
	}
	missing := func(field, want string) {
		errs = append(errs, fmt.Errorf("%s: missing; %s", field, want))
	}

	if c.StateDir == "" {
		missing("state_dir", "a directory that survives restarts, e.g. /var/lib/rotatord")
	}

	// api
	if u, err := url.Parse(c.API.BaseURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		bad("api.base_url", c.API.BaseURL, "want an absolute https URL such as https://api.webhook.co")
	} else if u.Scheme == "http" && !loopback.IsHost(u.Hostname()) {
		bad("api.base_url", c.API.BaseURL, "plain http would send the API key in clear; use https (http is allowed only for loopback hosts)")
	} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		bad("api.base_url", c.API.BaseURL, "want the origin only, without a path or query (rotatord adds /v1/…)")
	}
	switch {
	case c.API.TokenFile == "" && c.API.TokenEnv == "":
		missing("api.token_file", "set api.token_file (a file holding the API key) or api.token_env (the name of an environment variable holding it)")
	case c.API.TokenFile != "" && c.API.TokenEnv != "":
		bad("api.token_env", c.API.TokenEnv, "set either api.token_file or api.token_env, not both")
	case strings.HasPrefix(c.API.TokenEnv, "whk_"):
		// Looks like the key itself: say so without repeating it.
		errs = append(errs, errors.New("api.token_env: holds what looks like an API key; want the NAME of an environment variable that holds the key (the value is not repeated here)"))
	case !envNamePattern.MatchString(c.API.TokenEnv) && c.API.TokenEnv != "":
		errs = append(errs, errors.New("api.token_env: want the name of an environment variable (letters, digits, _), not its value (the value is not repeated here)"))
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, d, "want a positive duration such as 30s")
		}
	}
	positive("api.timeout", c.API.Timeout)
	if c.API.RateLimit < 0 {
		bad("api.rate_limit", c.API.RateLimit, "want calls per second, e.g. 10, or 0 for no limit")
	}
	if c.API.RateBurst < 1 {
		bad("api.rate_burst", c.API.RateBurst, "want at least 1")
	}
	r := c.API.Retry
	positive("api.retry.initial_backoff", r.InitialBackoff)
	positive("api.retry.max_backoff", r.MaxBackoff)
	positive("api.retry.max_retry_after", r.MaxRetryAfter)
	positive("api.retry.max_rate_limit_wait", r.MaxRateLimitWait)
	positive("api.retry.max_unreachable_wait", r.MaxUnreachableWait)
	positive("api.retry.max_sink_wait", r.MaxSinkWait)
	if r.InitialBackoff > r.MaxBackoff {
		bad("api.retry.initial_backoff", r.InitialBackoff, "must not exceed api.retry.max_backoff (%s)", r.MaxBackoff)
	}
	if r.MaxAmbiguousRetries < 0 || r.MaxAmbiguousRetries > 10 {
		bad("api.retry.max_ambiguous_retries", r.MaxAmbiguousRetries, "want 0 to 10")
	}

	// sink and vault
	switch c.Sink.Type {
	case SinkVault:
		if c.Sink.Dir != "" {
			bad("sink.dir", c.Sink.Dir, "only the file sink takes a dir; remove it or set sink.type: file")
		}
	case SinkFile:
		if c.Sink.Dir == "" {
			missing("sink.dir", "the file sink needs a directory, e.g. /var/lib/rotatord/secrets")
		}
	default:
		bad("sink.type", c.Sink.Type, "want vault or file")
	}
	if c.Vault.Address != "" {
		if u, err := url.Parse(c.Vault.Address); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("vault.address", c.Vault.Address, "want a URL such as https://vault.example.com:8200")
		}
	}
	if m := c.Vault.KV.Mount; m == "" || strings.HasPrefix(m, "/") || strings.HasSuffix(m, "/") || strings.Contains(m, "..") {
		bad("vault.kv.mount", m, "want the mount path without leading or trailing slashes, e.g. secret")
	}
	if k := c.API.KeyCheckInterval; k < 0 || (k > 0 && k < time.Second) {
		bad("api.key_check_interval", k, "want 0 (only at start) or at least 1s, e.g. 15m")
	}
	if t := c.Vault.Timeout; t < time.Second || t > 5*time.Minute {
		bad("vault.timeout", t, "want 1s to 5m, e.g. 15s")
	}
	if v := c.Vault.KV.Version; v != 0 && v != 1 && v != 2 {
		bad("vault.kv.version", v, "want 1 or 2, or leave it out to detect it from the mount")
	}
	if c.Vault.TLSSkipVerify && c.Vault.Address != "" {
		if u, err := url.Parse(c.Vault.Address); err == nil && !loopback.IsHost(u.Hostname()) {
			bad("vault.tls_skip_verify", true, "certificate verification may be turned off only for a loopback vault.address; set vault.ca_cert instead")
		}
	}
	if (c.Vault.ClientCert == "") != (c.Vault.ClientKey == "") {
		missing("vault.client_key", "set vault.client_cert and vault.client_key together")
	}
	a := c.Vault.Auth
	switch a.Method {
	case AuthToken:
		if a.RoleID != "" || a.RoleIDFile != "" || a.SecretIDFile != "" || a.Role != "" {
			bad("vault.auth.method", a.Method, "the token method takes vault.token_file (or VAULT_TOKEN); role settings belong to approle or kubernetes")
		}
	case AuthAppRole:
		if a.RoleID == "" && a.RoleIDFile == "" {
			missing("vault.auth.role_id", "set vault.auth.role_id or vault.auth.role_id_file")
		}
		if a.SecretIDFile == "" {
			missing("vault.auth.secret_id_file", "the file holding the AppRole secret_id (or its wrapping token with secret_id_wrapped: true)")
		}
	case AuthKubernetes:
		if a.Role == "" {
			missing("vault.auth.role", "the Vault role bound to this pod's service account")
		}
	default:
		bad("vault.auth.method", a.Method, "want token, approle or kubernetes")
	}

	// coordination
	switch co := c.Coordination; co.Mode {
	case CoordinationNone, CoordinationLocal:
	case CoordinationVault:
		if c.Sink.Type != SinkVault {
			bad("coordination.mode", co.Mode, "Vault leases live next to the secrets; set sink.type: vault, or use mode local on one host")
		}
		if co.LeaseTTL < 2*c.API.Timeout || co.LeaseTTL < 10*time.Second {
			bad("coordination.lease_ttl", co.LeaseTTL, "want at least twice api.timeout (%s) and at least 10s: a lease must outlive a rotate request in flight", c.API.Timeout)
		}
		if m := co.Vault.Mount; strings.HasPrefix(m, "/") || strings.HasSuffix(m, "/") || strings.Contains(m, "..") {
			bad("coordination.vault.mount", m, "want a KV v2 mount path without leading or trailing slashes, or leave it out to use vault.kv.mount")
		}
		if co.Vault.Mount == "" && c.Vault.KV.Version == 1 {
			missing("coordination.vault.mount", "vault.kv.mount is KV v1, and a lease needs KV v2 check-and-set; name a KV v2 mount for the leases")
		}
		if p := co.Vault.Path; p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "..") {
			bad("coordination.vault.path", p, "want a folder path without leading or trailing slashes, e.g. rotatord/leases")
		}
	default:
		bad("coordination.mode", co.Mode, "want none, local or vault")
	}

	// defaults, scheduler, metrics, log
	if _, err := time.LoadLocation(c.Defaults.TimeZone); err != nil || c.Defaults.TimeZone == "" {
		bad("defaults.time_zone", c.Defaults.TimeZone, "want an IANA time zone such as UTC or Europe/Berlin")
	}
	if c.Scheduler.MaxConcurrent < 1 || c.Scheduler.MaxConcurrent > 256 {
		bad("scheduler.max_concurrent", c.Scheduler.MaxConcurrent, "want 1 to 256")
	}
	positive("scheduler.shutdown_timeout", c.Scheduler.ShutdownTimeout)
	if c.Scheduler.DriftCheckInterval < 0 || (c.Scheduler.DriftCheckInterval > 0 && c.Scheduler.DriftCheckInterval < time.Second) {
		bad("scheduler.drift_check_interval", c.Scheduler.DriftCheckInterval, "want 0 (off) or at least 1s, e.g. 1h")
	}
	if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
		bad("metrics.listen", c.Metrics.Listen, "want host:port, e.g. 127.0.0.1:9464")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "want debug, info, warn or error")
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("log.format", c.Log.Format, "want json or console")
	}

	// destinations
	if len(c.Destinations) == 0 {
		missing("destinations", "list at least one destination (id, name, vault_path)")
	}
	names, ids, paths := map[string]int{}, map[string]int{}, map[string]int{}
	for i, d := range c.Destinations {
		field := func(f string) string { return fmt.Sprintf("destinations[%d].%s", i, f) }
		switch {
		case d.ID == "":
			missing(field("id"), "the destination's UUID at webhook.co")
		case !webhookco.IsUUID(d.ID):
			bad(field("id"), d.ID, "not a UUID webhook.co accepts (8-4-4-4-12 hex digits, version 1-8)")
		default:
			if j, dup := ids[strings.ToLower(d.ID)]; dup {
				bad(field("id"), d.ID, "also destinations[%d].id; two entries would rotate one destination twice", j)
			}
			ids[strings.ToLower(d.ID)] = i
		}
		switch {
		case d.Name == "":
			missing(field("name"), "a short unique name such as billing-prod, used in logs and metrics")
		case !namePattern.MatchString(d.Name):
			bad(field("name"), d.Name, "want lowercase letters, digits, '-', '_' or '.', at most 63, starting with a letter or digit")
		default:
			if j, dup := names[d.Name]; dup {
				bad(field("name"), d.Name, "duplicate; destinations[%d] has the same name", j)
			}
			names[d.Name] = i
		}
		loc, err := time.LoadLocation(d.TimeZone)
		if err != nil || d.TimeZone == "" {
			bad(field("time_zone"), d.TimeZone, "want an IANA time zone such as UTC or Europe/Berlin")
			loc = time.UTC
		}
		if _, err := scheduler.ParseSchedule(d.Schedule, loc); err != nil {
			bad(field("schedule"), d.Schedule, "%v; %s", err, scheduleHint)
		}
		if d.Window < 0 || d.Window > 7*24*time.Hour {
			bad(field("window"), d.Window, "want a duration from 0 to 168h")
		}
		if d.Jitter < 0 || d.Jitter > d.Window {
			bad(field("jitter"), d.Jitter, "want 0 up to the window (%s): a rotation never starts outside its window", d.Window)
		}
		if d.MaxAge < 0 {
			bad(field("max_age"), d.MaxAge, "want a positive duration such as 720h, or leave it out")
		}
		if d.Missed != MissedRunOnce && d.Missed != MissedSkip {
			bad(field("missed"), d.Missed, "want run_once or skip")
		}
		if d.FirstRotation != FirstRotationAtStart && d.FirstRotation != FirstRotationOnSchedule {
			bad(field("first_rotation"), d.FirstRotation, "want at_start or on_schedule")
		}
		if d.OnDrift != DriftAlert && d.OnDrift != DriftRotate {
			bad(field("on_drift"), d.OnDrift, "want alert or rotate")
		}
		switch p := d.VaultPath; {
		case p == "":
			missing(field("vault_path"), "the path inside the KV mount, e.g. webhookco/billing-prod")
		case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || path.Clean(p) != p || strings.Contains(p, ".."):
			bad(field("vault_path"), p, "want a clean relative path without leading or trailing slashes or '..', e.g. webhookco/billing-prod")
		default:
			if j, dup := paths[p]; dup {
				bad(field("vault_path"), p, "also destinations[%d].vault_path; each destination needs its own path", j)
			}
			paths[p] = i
		}
	}
	return errors.Join(errs...)
}

// Location returns the destination's time zone; it is valid once Validate passed.
func (d Destination) Location() *time.Location {
	loc, err := time.LoadLocation(d.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// ParsedSchedule parses the destination's schedule in its time zone.
func (d Destination) ParsedSchedule() (scheduler.Schedule, error) {
	return scheduler.ParseSchedule(d.Schedule, d.Location())
}

// SpreadSchedule returns the destination's schedule, spread by its stable offset inside
// its window: the times it really fires.
func (d Destination) SpreadSchedule() (scheduler.Schedule, error) {
	s, err := d.ParsedSchedule()
	if err != nil {
		return nil, err
	}
	// The stable offset leaves room for the jitter, so offset+jitter stays inside the window.
	return scheduler.SpreadJitter(s, scheduler.Offset(strings.ToLower(d.ID), d.Window-d.Jitter), d.Jitter, nil), nil
}

// EffectiveMaxAge is max_age, or when unset twice the schedule's period seen from now.
func (d Destination) EffectiveMaxAge(now time.Time) time.Duration {
	if d.MaxAge > 0 {
		return d.MaxAge
	}
	s, err := d.ParsedSchedule()
	if err != nil {
		return 0
	}
	first := s.Next(now)
	return 2 * s.Next(first).Sub(first)
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
