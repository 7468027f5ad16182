// Package metrics defines rotatord's Prometheus metrics and the HTTP listener that serves
// them with /healthz and /readyz. Metrics are built from an injected Registerer (never
// package globals), and every label value a job will use is created up front, so each
// series exists at 0 from the first scrape and alerts on rate() work from the start.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Result label values of rotatord_rotations_total (and, with skipped,
// rotatord_fleet_rotations_total).
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
	ResultSkipped = "skipped"
)

// Result label values of rotatord_lease_acquisitions_total.
const (
	LeaseAcquired  = "acquired"   // the lease was free
	LeaseTakenOver = "taken_over" // the lease had expired: its holder stopped renewing it
	LeaseHeld      = "held"       // another process holds it
	LeaseError     = "error"      // the lease store did not answer (Vault unreachable, denied)
)

// Options say which label values exist from the start.
type Options struct {
	Registerer prometheus.Registerer
	// Version is exported as rotatord_build_info{version}.
	Version string
	// Destinations are the destination names (label "destination").
	Destinations []string
	// FailureReasons are the values of rotatord_rotation_failures_total{reason}.
	FailureReasons []string
	// Operations and Codes are the values of rotatord_api_requests_total{operation,code}.
	Operations []string
	Codes      []string
	// CoverageStates are the values of rotatord_destinations{state}.
	CoverageStates []string
	// Sink names the sink (label "sink" of rotatord_sink_writes_total).
	Sink string
	// SkipProcessCollectors leaves out the Go and process collectors (for tests that compare output).
	SkipProcessCollectors bool
	// Now is the clock of the freshness metrics; nil means time.Now.
	Now func() time.Time
	// ProblemsOnly (metrics.destination_series: problems) exports a destination's own series
	// only while it is in trouble (overdue, failing, drifting, held, late); the aggregates
	// (rotatord_destinations_in_trouble, rotatord_fleet_rotations_total) always.
	ProblemsOnly bool
}

// Metrics are rotatord's instruments.
type Metrics struct {
	RotationFailures    *prometheus.CounterVec
	FailuresByReason    *prometheus.CounterVec
	RotationDuration    prometheus.Histogram
	APIRequests         *prometheus.CounterVec
	RateLimited         prometheus.Counter
	SinkWrites          *prometheus.CounterVec
	LostSecrets         *prometheus.CounterVec
	RotationsInFlight   prometheus.Gauge
	SpooledSecrets      prometheus.Gauge
	SinkRetries         prometheus.Counter
	SpoolCorrupt        prometheus.Counter
	StaleWritesSkipped  prometheus.Counter
	VaultTokenExpiry    prometheus.Gauge
	VaultLogins         *prometheus.CounterVec
	DriftDetected       *prometheus.CounterVec
	ConfigReloads       *prometheus.CounterVec
	ConfigReloadSuccess prometheus.Gauge
	LastFailure         *prometheus.GaugeVec
	// Fleet is each destination's state (rotations, freshness, next rotation, failures in a
	// row, drift, holds), exported at scrape time.
	Fleet             *Fleet
	lastReason        map[string]string
	lastReasonMu      sync.Mutex
	SkippedRotations  *prometheus.CounterVec
	LeaseAcquisitions *prometheus.CounterVec
	LeasesHeld        prometheus.Gauge
	LeaseLost         prometheus.Counter
	BuildInfo         *prometheus.GaugeVec
	SinkPartialWrites prometheus.Counter
	APIKeyOK          prometheus.Gauge
	APIKeyChecks      *prometheus.CounterVec
	// Destinations counts the account's destinations by coverage state (see internal/coverage).
	Destinations     *prometheus.GaugeVec
	DiscoveryRuns    *prometheus.CounterVec
	DiscoverySuccess prometheus.Gauge
	// Receivers (consumers of a destination's secret).
	HeldRotations         *prometheus.CounterVec
	RotationHeld          *prometheus.GaugeVec
	ConsumerNotifications *prometheus.CounterVec
	ConsumerBehind        *prometheus.GaugeVec
	KeysRevoked           *prometheus.CounterVec
	DeliveriesRejected    *prometheus.GaugeVec
	sink                  string
	problemsOnly          bool
}

// Result label values of rotatord_api_key_checks_total.
const (
	KeyOK          = "ok"       // whoami answered and the key holds every scope rotatord needs
	KeyRejected    = "rejected" // 401: the key is wrong, revoked or expired
	KeyMissesScope = "missing_scope"
	KeyUnreachable = "unreachable" // no answer: nothing is known of the key
	// KeyRateLimited: webhook.co answered 429, so it did not check the key: nothing is
	// known of it, and the check is not a sign that webhook.co is down.
	KeyRateLimited = "rate_limited"
)

// New registers rotatord's metrics with opts.Registerer.
func New(opts Options) *Metrics {
	f := promauto.With(opts.Registerer)
	m := &Metrics{
		sink: opts.Sink,
		RotationFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_rotation_failures_total",
			Help: "Failed rotations and detected lost secrets, by destination and reason; a destination's series for a reason appears once that failure happened (rotatord_failures_by_reason_total has every reason from the start).",
		}, []string{"destination", "reason"}),
		FailuresByReason: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_failures_by_reason_total",
			Help: "Failed rotations and detected lost secrets of all destinations, by reason.",
		}, []string{"reason"}),
		RotationDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "rotatord_rotation_duration_seconds",
			Help: "Time from the start of a rotation to the read-back of the stored secret, waits included.",
			// 50 ms (one API call plus a Vault write) up to about 14 min (rate-limit waits).
			Buckets: prometheus.ExponentialBuckets(0.05, 3, 10),
		}),
		APIRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_api_requests_total",
			Help: "webhook.co API requests, by operation and HTTP status code (\"error\": no response).",
		}, []string{"operation", "code"}),
		RateLimited: f.NewCounter(prometheus.CounterOpts{
			Name: "rotatord_rate_limited_total",
			Help: "HTTP 429 answers from webhook.co; each one made rotatord wait.",
		}),
		SinkWrites: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_sink_writes_total",
			Help: "Secret writes to the sink (each proven by the version the sink's answer names, or by a read-back), by sink and result.",
		}, []string{"sink", "result"}),
		LostSecrets: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_lost_secrets_total",
			Help: "Signing secrets minted by webhook.co that rotatord never stored: a response lost in transit or a sink that stayed unavailable.",
		}, []string{"destination"}),
		RotationsInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_rotations_in_flight",
			Help: "Rotations running now.",
		}),
		SpooledSecrets: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_spooled_secrets",
			Help: "Received secrets waiting in the spool for the sink.",
		}),
		SinkRetries: f.NewCounter(prometheus.CounterOpts{
			Name: "rotatord_sink_retries_total",
			Help: "Retries of failed sink writes.",
		}),
		SpoolCorrupt: f.NewCounter(prometheus.CounterOpts{
			Name: "rotatord_spool_corrupt_entries_total",
			Help: "Spool entries that could not be read and were moved aside.",
		}),
		StaleWritesSkipped: f.NewCounter(prometheus.CounterOpts{
			Name: "rotatord_stale_writes_skipped_total",
			Help: "Spooled secrets not written because the sink already held a newer one.",
		}),
		VaultTokenExpiry: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_vault_token_expiry_timestamp_seconds",
			Help: "Unix time at which rotatord's Vault token expires unless renewed (0: it does not expire, or no token yet).",
		}),
		VaultLogins: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_vault_logins_total",
			Help: "Vault logins (and token reloads), by result.",
		}, []string{"result"}),
		LastFailure: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotatord_last_failure_info",
			Help: "1 for the reason of the destination's latest failed rotation; absent after a success.",
		}, []string{"destination", "reason"}),
		lastReason: map[string]string{},
		DriftDetected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_drift_detected_total",
			Help: "Drift checks that found the provider's active key differing from the stored one.",
		}, []string{"destination"}),
		ConfigReloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_config_reloads_total",
			Help: "Config reloads (SIGHUP), by result.",
		}, []string{"result"}),
		ConfigReloadSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful config load (start or SIGHUP).",
		}),
		HeldRotations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_held_rotations_total",
			Help: "Rotations held before anything was minted, by destination and reason: held (a consumer still holds only the key the rotation would revoke) or min_interval.",
		}, []string{"destination", "reason"}),
		RotationHeld: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotatord_rotation_held_since_timestamp_seconds",
			Help: "Unix time since which a destination's rotations are held for a consumer that has not loaded the stored key; present only while held.",
		}, []string{"destination", "consumer"}),
		ConsumerNotifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_consumer_notifications_total",
			Help: "Notifications to consumers that a new key is stored (one per burst), by consumer and result (delivered, failed).",
		}, []string{"consumer", "result"}),
		ConsumerBehind: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotatord_consumer_behind",
			Help: "Destinations whose stored key the consumer did not hold when last asked (adoption), by consumer; 0 when it holds every stored key.",
		}, []string{"consumer"}),
		DeliveriesRejected: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotatord_deliveries_rejected",
			Help: "Delivery attempts that receivers answered 401 or 403 since the destination's last rotation, with none accepted since (the delivery watch, api.delivery_watch_interval); present for an hour after a rotation.",
		}, []string{"destination"}),
		KeysRevoked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_keys_revoked_total",
			Help: "Keys revoked at the provider by a rotation (the key stored before the previous one), by whether a consumer was last seen holding it and nothing newer (consumer_held true: that consumer was cut off).",
		}, []string{"consumer_held"}),
		SkippedRotations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_skipped_rotations_total",
			Help: "Automatic rotations not run: the destination's previous rotation was still running, another process held its lease, or a replica had already rotated it for the slot.",
		}, []string{"destination"}),
		LeaseAcquisitions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_lease_acquisitions_total",
			Help: "Attempts to take a destination's lease, by result (acquired, taken_over, held, error).",
		}, []string{"result"}),
		LeasesHeld: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_leases_held",
			Help: "Destination leases this process holds now.",
		}),
		LeaseLost: f.NewCounter(prometheus.CounterOpts{
			Name: "rotatord_lease_lost_total",
			Help: "Leases lost while held (renewal failed past expiry, or another process took over): the rotation stopped before the rotate request or before the write.",
		}),
		SinkPartialWrites: f.NewCounter(prometheus.CounterOpts{
			Name: "rotatord_sink_partial_writes_total",
			Help: "Secret writes that stored the secret but not its description (Vault KV v2 custom_metadata refused): the secret is in place, managed_by and key_id in custom_metadata are not.",
		}),
		APIKeyOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_api_key_ok",
			Help: "1 when the last check of the webhook.co API key (whoami) found it valid with every scope rotatord needs; 0 when it was refused or lacks a scope. Unchanged when webhook.co did not answer or answered 429.",
		}),
		APIKeyChecks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_api_key_checks_total",
			Help: "Checks of the webhook.co API key (whoami), by result (ok, rejected, missing_scope, unreachable, rate_limited).",
		}, []string{"result"}),
		Destinations: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotatord_destinations",
			Help: "Replay destinations by state: covered (rotated by rotatord), excluded (an exclude rule: rotated elsewhere), uncovered (nobody decided), revoked (deleted at webhook.co), missing_at_provider (configured, not listed), disabled (enabled: false).",
		}, []string{"state"}),
		DiscoveryRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rotatord_discovery_runs_total",
			Help: "Listings of the account's replay destinations (discovery.rules), by result; a failed one keeps the last known set.",
		}, []string{"result"}),
		DiscoverySuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "rotatord_discovery_last_success_timestamp_seconds",
			Help: "Unix time of the last successful listing of the account's replay destinations (0: none yet).",
		}),
		BuildInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotatord_build_info",
			Help: "Always 1; the label says rotatord's version.",
		}, []string{"version"}),
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m.Fleet = newFleet(now, opts.ProblemsOnly)
	m.problemsOnly = opts.ProblemsOnly
	opts.Registerer.MustRegister(m.Fleet)
	if !opts.SkipProcessCollectors {
		opts.Registerer.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m.BuildInfo.WithLabelValues(opts.Version).Set(1)

	// Create every series a job will touch, so each exists at 0.
	for _, d := range opts.Destinations {
		m.AddDestination(d, opts.FailureReasons)
	}
	for _, op := range opts.Operations {
		for _, code := range opts.Codes {
			m.APIRequests.WithLabelValues(op, code)
		}
	}
	for _, r := range []string{LeaseAcquired, LeaseTakenOver, LeaseHeld, LeaseError} {
		m.LeaseAcquisitions.WithLabelValues(r)
	}
	for _, r := range []string{KeyOK, KeyRejected, KeyMissesScope, KeyUnreachable, KeyRateLimited} {
		m.APIKeyChecks.WithLabelValues(r)
	}
	for _, r := range opts.FailureReasons {
		m.FailuresByReason.WithLabelValues(r)
	}
	for _, state := range opts.CoverageStates {
		m.Destinations.WithLabelValues(state)
	}
	for _, r := range []string{ResultSuccess, ResultFailure} {
		m.DiscoveryRuns.WithLabelValues(r)
		m.SinkWrites.WithLabelValues(opts.Sink, r)
		m.VaultLogins.WithLabelValues(r)
		m.ConfigReloads.WithLabelValues(r)
	}
	return m
}

// AddDestination creates a destination's default series at 0: the few that answer "did it
// rotate, when, when next, is it overdue, is it failing" (rotations by result, the stored
// secret's rotation time, the next rotation, overdue, consecutive failures), all in the
// Fleet. Series for a failure reason, lost secrets, skips and drift appear once they
// happen; the aggregate counters carry them for every destination from the start. reasons
// is kept for callers.
func (m *Metrics) AddDestination(name string, reasons []string) {
	_ = reasons
	m.Fleet.add(name)
}

// Skipped counts a skipped rotation (another process holds the destination, or stored its
// slot): by destination, except at fleet scale (ProblemsOnly), and in the aggregate.
func (m *Metrics) Skipped(dest string) {
	m.Fleet.skipped()
	if !m.problemsOnly {
		m.SkippedRotations.WithLabelValues(dest).Inc()
	}
}

// SetDeliveriesRejected exports the deliveries a destination's receivers rejected since its
// last rotation; at fleet scale a destination without any has no series.
func (m *Metrics) SetDeliveriesRejected(dest string, n int) {
	if n == 0 && m.problemsOnly {
		m.DeliveriesRejected.DeleteLabelValues(dest)
		return
	}
	m.DeliveriesRejected.WithLabelValues(dest).Set(float64(n))
}

// Failure counts a failed rotation (or a lost secret) of dest with reason, by destination
// and in the aggregate.
func (m *Metrics) Failure(dest, reason string) {
	m.RotationFailures.WithLabelValues(dest, reason).Inc()
	m.FailuresByReason.WithLabelValues(reason).Inc()
}

// RemoveDestination deletes every series of a destination no longer rotated (gone from
// the provider, or from the config), once its grace period has passed.
func (m *Metrics) RemoveDestination(name string) {
	only := prometheus.Labels{"destination": name}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.RotationFailures, m.LostSecrets, m.SkippedRotations, m.HeldRotations, m.RotationHeld, m.DeliveriesRejected,
		m.DriftDetected, m.LastFailure} {
		v.DeletePartialMatch(only)
	}
	m.lastReasonMu.Lock()
	delete(m.lastReason, name)
	m.lastReasonMu.Unlock()
	m.Fleet.remove(name)
}

// RecordOutcome counts a finished rotation (success or failure) of dest, and keeps its
// failures in a row and the last failure reason.
func (m *Metrics) RecordOutcome(dest string, ok bool, reason string) {
	m.Fleet.outcome(dest, ok)
	m.lastReasonMu.Lock()
	defer m.lastReasonMu.Unlock()
	if prev, had := m.lastReason[dest]; had {
		m.LastFailure.DeleteLabelValues(dest, prev)
		delete(m.lastReason, dest)
	}
	if !ok {
		m.LastFailure.WithLabelValues(dest, reason).Set(1)
		m.lastReason[dest] = reason
	}
}

// SinkWrite counts one sink write.
func (m *Metrics) SinkWrite(ok bool) {
	r := ResultSuccess
	if !ok {
		r = ResultFailure
	}
	m.SinkWrites.WithLabelValues(m.sink, r).Inc()
}

// ObserveAPIRequest counts one API request; it fits webhookco.Options.Observe.
func (m *Metrics) ObserveAPIRequest(operation, code string) {
	m.APIRequests.WithLabelValues(operation, code).Inc()
}
