// Package config reads rotatord's YAML configuration: defaults first, then strict decoding
// (an unknown key is an error), then Validate, which names the field, the bad value and what
// would be right. Parsing has no side effects: secrets are not read here, only where they
// are named (see LoadAPIKey).
package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotatord/rotatord/internal/gcpace"
)

// DefaultPath is where rotatord looks for its config when --config is not given.
const DefaultPath = "/etc/rotatord/config.yaml"

// Config is the whole configuration file.
type Config struct {
	// StateDir holds the spool of secrets not yet stored and the records of rotations in
	// flight (0700). It must survive restarts: systemd's StateDirectory=, a volume.
	StateDir     string        `yaml:"state_dir"`
	Spool        Spool         `yaml:"spool"`
	API          API           `yaml:"api"`
	Sink         Sink          `yaml:"sink"`
	Vault        Vault         `yaml:"vault"`
	Defaults     Defaults      `yaml:"defaults"`
	Scheduler    Scheduler     `yaml:"scheduler"`
	Coordination Coordination  `yaml:"coordination"`
	Metrics      Metrics       `yaml:"metrics"`
	Log          Log           `yaml:"log"`
	Destinations []Destination `yaml:"destinations"`
	// Discovery adds the destinations its rules select from the provider's list.
	Discovery Discovery `yaml:"discovery"`
}

// API is how rotatord reaches webhook.co.
type API struct {
	// BaseURL is the API's origin, without the /v1 prefix.
	BaseURL string `yaml:"base_url"`
	// TokenFile is a file holding the API key (systemd credentials work: $CREDENTIALS_DIRECTORY/…).
	TokenFile string `yaml:"token_file"`
	// TokenEnv names an environment variable holding the API key.
	TokenEnv string `yaml:"token_env"`
	// Timeout bounds one HTTP request, from dial to the end of the body.
	Timeout time.Duration `yaml:"timeout"`
	// CACert is a PEM file of the CAs that verify webhook.co's certificate instead of the
	// system's (behind a TLS-inspecting proxy); empty: the system's CAs.
	CACert string `yaml:"ca_cert"`
	// KeyCheckInterval is how often `run` asks webhook.co (whoami) whether the API key is
	// still valid with every scope it needs (rotatord_api_key_ok); 0: only at start.
	KeyCheckInterval time.Duration `yaml:"key_check_interval"`
	// DeliveryWatchInterval, when set, is how often `run` reads webhook.co's delivery log
	// (GET /v1/deliveries, scope events:read) of each destination rotated in the last hour:
	// receivers answering 401/403 since the rotation are counted, alerted on, and hold the
	// destination's next rotation. 0: off.
	DeliveryWatchInterval time.Duration `yaml:"delivery_watch_interval"`
	// Retry governs waiting after 429 and after ambiguous outcomes.
	Retry Retry `yaml:"retry"`
	// RateLimit is the shared budget of calls per second for this API key (0: no limit);
	// RateBurst how many may go at once. A 429 pauses every call until its wait has passed.
	RateLimit float64 `yaml:"rate_limit"`
	RateBurst int     `yaml:"rate_burst"`
}

// Retry says how long rotatord waits and how often it tries again.
type Retry struct {
	// InitialBackoff is the first wait after a 429 without Retry-After; it doubles each time.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the exponential backoff.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxRetryAfter caps an honoured Retry-After header.
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
	// MaxRateLimitWait bounds the total time one rotation waits on 429s before it fails.
	MaxRateLimitWait time.Duration `yaml:"max_rate_limit_wait"`
	// MaxUnreachableWait bounds the total time one rotation waits for webhook.co to accept a
	// connection (the request never left) before it fails with reason unreachable.
	MaxUnreachableWait time.Duration `yaml:"max_unreachable_wait"`
	// MaxAmbiguousRetries bounds how often one rotation re-sends rotate after an ambiguous
	// outcome that a signing-secrets listing proved harmless, or rotates to recover a lost key.
	MaxAmbiguousRetries int `yaml:"max_ambiguous_retries"`
	// MaxSinkWait bounds how long one rotation keeps retrying a failed sink write.
	MaxSinkWait time.Duration `yaml:"max_sink_wait"`
	// SettlePeriod is how long after a rotate request without the provider's answer
	// (timeout, broken connection, gateway 5xx) rotatord keeps listing keys before it
	// decides nothing was minted. The provider commits such a rotate seconds later.
	SettlePeriod time.Duration `yaml:"settle_period"`
}

// Spool configures the durable spool under state_dir.
type Spool struct {
	// KeyFile, when set, holds a 32-byte key (raw, hex or base64) that seals spooled secrets
	// with AES-256-GCM.
	KeyFile string `yaml:"key_file"`
	// Flush is how the write-ahead records' durable writes reach the disk: "group" (the
	// default: rotations writing at the same moment share one flush, syncfs(2) of the
	// state_dir's filesystem) or "each" (one fdatasync per write).
	Flush string `yaml:"flush"`
}

// The spool's flush modes.
const (
	FlushGroup = "group"
	FlushEach  = "each"
)

// Sink says where new secrets are stored.
type Sink struct {
	// Type is "vault" (the default) or "file".
	Type string `yaml:"type"`
	// Dir is the file sink's directory; each destination is stored at Dir/<vault_path>.json.
	Dir string `yaml:"dir"`
}

// Sink types.
const (
	SinkVault = "vault"
	SinkFile  = "file"
)

// Vault is the connection to HashiCorp Vault. Empty fields fall back to Vault's usual
// environment variables (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_TOKEN).
type Vault struct {
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	// CACert and CAPath verify Vault's certificate (VAULT_CACERT, VAULT_CAPATH).
	CACert string `yaml:"ca_cert"`
	CAPath string `yaml:"ca_path"`
	// ClientCert and ClientKey are for Vault's TLS client-certificate checks.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// TLSServerName is the name to verify Vault's certificate against.
	TLSServerName string `yaml:"tls_server_name"`
	// TLSSkipVerify turns certificate verification off; refused unless the address is loopback.
	TLSSkipVerify bool `yaml:"tls_skip_verify"`
	// Timeout bounds one Vault request, and each start-up step (login, the mount and rights
	// checks): a Vault that accepts connections but never answers makes rotatord start
	// degraded (secrets wait in the spool) instead of hanging.
	Timeout time.Duration `yaml:"timeout"`
	// TokenFile holds the Vault token for auth.method token; when empty, VAULT_TOKEN is used.
	// It is re-read whenever the token stops working (a Vault Agent sink file just works).
	TokenFile string    `yaml:"token_file"`
	Auth      VaultAuth `yaml:"auth"`
	KV        KV        `yaml:"kv"`
}

// Auth methods.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// DefaultServiceAccountTokenFile is where Kubernetes mounts a pod's service account token.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// VaultAuth is how rotatord logs in to Vault.
type VaultAuth struct {
	// Method is token (the default), approle or kubernetes.
	Method string `yaml:"method"`
	// Mount is the auth method's mount path; empty means approle or kubernetes.
	Mount string `yaml:"mount"`
	// RoleID (or RoleIDFile) and SecretIDFile are for approle.
	RoleID     string `yaml:"role_id"`
	RoleIDFile string `yaml:"role_id_file"`
	// SecretIDFile holds the secret_id, or with SecretIDWrapped a response-wrapping token for it.
	SecretIDFile    string `yaml:"secret_id_file"`
	SecretIDWrapped bool   `yaml:"secret_id_wrapped"`
	// Role and ServiceAccountTokenFile are for kubernetes.
	Role                    string `yaml:"role"`
	ServiceAccountTokenFile string `yaml:"service_account_token_file"`
}

// KV is the KV secrets engine mount that receives the secrets.
type KV struct {
	Mount string `yaml:"mount"`
	// Version is 1 or 2; 0 (unset) means detect it from the mount at start.
	Version int `yaml:"version"`
}

// Timing is when and how a destination is rotated. A destination and a discovery rule each
// have one, and the defaults are one: a destination's or rule's empty values come from them.
type Timing struct {
	Schedule string `yaml:"schedule"`
	TimeZone string `yaml:"time_zone"`
	// Window spreads each destination's fire time by a stable offset inside it (0: none).
	Window time.Duration `yaml:"window"`
	// Jitter adds a random delay in [0, jitter) to each fire; jitter must not exceed window.
	Jitter time.Duration `yaml:"jitter"`
	// MaxAge is how old a stored secret may get before it is overdue (0: twice the schedule's period).
	MaxAge time.Duration `yaml:"max_age"`
	// Missed is what to do at start about a scheduled time that passed while rotatord was
	// down: run_once (one catch-up rotation) or skip.
	Missed string `yaml:"missed"`
	// OnDrift is what to do when the provider's active key is not the stored one (someone
	// rotated outside rotatord, or a response was lost): alert or rotate.
	OnDrift string `yaml:"on_drift"`
	// FirstRotation is when a destination with nothing stored is first rotated: at_start
	// (when rotatord starts, inside its window) or on_schedule (at its next scheduled time).
	FirstRotation string `yaml:"first_rotation"`
	// MinInterval keeps two rotations of the destination at least this far apart, whatever
	// started them (0: no bound); `rotate --force` overrides it, audited as forced.
	MinInterval time.Duration `yaml:"min_interval,omitempty"`
	// Consumers are the receivers of the destination's secret (see Consumer).
	Consumers []Consumer `yaml:"consumers,omitempty"`
	// OnHoldDeadline is what a rotation held for a consumer does once holding longer would
	// let the stored secret pass max_age: hold (default) or rotate.
	OnHoldDeadline string `yaml:"on_hold_deadline,omitempty"`
}

// Defaults apply to every destination and rule that does not set its own value.
type Defaults = Timing

// fill takes each value t leaves empty from d.
func (t *Timing) fill(d Timing) {
	if t.Schedule == "" {
		t.Schedule = d.Schedule
	}
	if t.TimeZone == "" {
		t.TimeZone = d.TimeZone
	}
	if t.Window == 0 {
		t.Window = d.Window
	}
	if t.Jitter == 0 {
		t.Jitter = d.Jitter
	}
	if t.MaxAge == 0 {
		t.MaxAge = d.MaxAge
	}
	if t.Missed == "" {
		t.Missed = d.Missed
	}
	if t.OnDrift == "" {
		t.OnDrift = d.OnDrift
	}
	if t.FirstRotation == "" {
		t.FirstRotation = d.FirstRotation
	}
	if t.MinInterval == 0 {
		t.MinInterval = d.MinInterval
	}
	if t.Consumers == nil {
		t.Consumers = d.Consumers
	}
	if t.OnHoldDeadline == "" {
		t.OnHoldDeadline = d.OnHoldDeadline
	}
}

// First-rotation policies.
const (
	FirstRotationAtStart    = "at_start"
	FirstRotationOnSchedule = "on_schedule"
)

// Drift policies.
const (
	DriftAlert  = "alert"
	DriftRotate = "rotate"
)

// Missed-rotation policies.
const (
	MissedRunOnce = "run_once"
	MissedSkip    = "skip"
)

// Scheduler bounds the daemon's concurrency and shutdown.
type Scheduler struct {
	// MaxConcurrent is how many destinations may rotate at the same time.
	MaxConcurrent int `yaml:"max_concurrent"`
	// ShutdownTimeout bounds how long SIGTERM waits for rotations in flight.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DriftCheckInterval is how often the provider's active keys are compared with the
	// stored ones (0: never).
	DriftCheckInterval time.Duration `yaml:"drift_check_interval"`
}

// Coordination keeps several rotatord processes from rotating one destination at once.
type Coordination struct {
	// Mode is none (this process alone rotates these destinations), local (the default:
	// processes sharing state_dir on one host take turns with a file lock) or vault
	// (replicas on several hosts take turns with a lease per destination in Vault KV v2).
	Mode string `yaml:"mode"`
	// LeaseTTL is how long a Vault lease lives without renewal: how long a crashed holder
	// keeps the destination from the others. At least twice api.timeout.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	Vault    LeaseStore    `yaml:"vault"`
}

// LeaseStore says where the Vault leases live.
type LeaseStore struct {
	// Mount is a KV v2 mount; empty means vault.kv.mount.
	Mount string `yaml:"mount"`
	// Path is the folder of the lease entries, one per destination id.
	Path string `yaml:"path"`
}

// Coordination modes.
const (
	CoordinationNone  = "none"
	CoordinationLocal = "local"
	CoordinationVault = "vault"
)

// LeaseMount is the KV v2 mount that holds the Vault leases.
func (c *Config) LeaseMount() string {
	if c.Coordination.Vault.Mount != "" {
		return c.Coordination.Vault.Mount
	}
	return c.Vault.KV.Mount
}

// Metrics is the HTTP listener for /metrics, /healthz and /readyz.
type Metrics struct {
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiles under /debug/pprof/ (heap, CPU, execution trace), for
	// measuring; loopback listeners only. Off by default.
	Pprof bool `yaml:"pprof"`
	// DestinationSeries says which destinations have series of their own: "all" (the
	// default) or "problems" (only while overdue, failing, drifting, held or late: for fleets
	// of tens of thousands; the aggregates rotatord_destinations_in_trouble and
	// rotatord_fleet_rotations_total are always there).
	DestinationSeries string `yaml:"destination_series"`
}

// The values of metrics.destination_series.
const (
	SeriesAll      = "all"
	SeriesProblems = "problems"
)

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Destination is one webhook.co replay destination whose signing secret rotatord rotates.
type Destination struct {
	// ID is the destination's UUID at webhook.co.
	ID string `yaml:"id"`
	// Name is unique in this config and used in logs and metric labels.
	Name string `yaml:"name"`
	// VaultPath is the secret's path inside the KV mount (or below the file sink's dir).
	VaultPath string `yaml:"vault_path"`
	// Path is the neutral name of VaultPath (it names the file sink's path too): either
	// key may be used, not both with different values. Load folds it into VaultPath.
	Path string `yaml:"path,omitempty"`
	// Enabled false pauses the destination: kept in metrics, plan and status, never rotated.
	Enabled *bool `yaml:"enabled"`
	// Outputs are files the stored record is also written to, beside the sink (the shared
	// volume a sidecar's application reads): written atomically after each store, under
	// the same no-loss rules (the secret stays in the spool until every output has it).
	Outputs []Output `yaml:"outputs,omitempty"`
	// Timing: the schedule (a five-field cron spec or an @-descriptor) in its time zone,
	// window, jitter, max_age, missed, on_drift, first_rotation; empty values come from
	// defaults.
	Timing `yaml:",inline"`
}

// IsEnabled reports whether the destination is rotated (enabled unless set to false).
func (d Destination) IsEnabled() bool { return d.Enabled == nil || *d.Enabled }

// Default returns the configuration that a file's keys are decoded over.
func Default() Config {
	return Config{
		StateDir: "/var/lib/rotatord",
		API: API{
			BaseURL:          "https://api.webhook.co",
			Timeout:          30 * time.Second,
			KeyCheckInterval: 15 * time.Minute,
			RateLimit:        10,
			RateBurst:        5,
			Retry: Retry{
				InitialBackoff:      500 * time.Millisecond,
				MaxBackoff:          8 * time.Second,
				MaxRetryAfter:       60 * time.Second,
				MaxRateLimitWait:    10 * time.Minute,
				MaxUnreachableWait:  2 * time.Minute,
				MaxAmbiguousRetries: 2,
				MaxSinkWait:         2 * time.Minute,
				// The provider's server was seen to commit rotates its client had left 5 to
				// 10 s after they arrived, under load (API-NOTES): three times the worst.
				SettlePeriod: 30 * time.Second,
			},
		},
		Sink:      Sink{Type: SinkVault},
		Spool:     Spool{Flush: FlushGroup},
		Vault:     Vault{Timeout: 15 * time.Second, KV: KV{Mount: "secret"}, Auth: VaultAuth{Method: AuthToken, ServiceAccountTokenFile: DefaultServiceAccountTokenFile}},
		Defaults:  Defaults{Schedule: "@weekly", TimeZone: "UTC", Missed: MissedRunOnce, OnDrift: DriftAlert, FirstRotation: FirstRotationAtStart},
		Scheduler: Scheduler{MaxConcurrent: 4, ShutdownTimeout: 45 * time.Second, DriftCheckInterval: time.Hour},
		Coordination: Coordination{Mode: CoordinationLocal, LeaseTTL: time.Minute,
			Vault: LeaseStore{Path: "rotatord/leases"}},
		Metrics:   Metrics{Listen: "127.0.0.1:9464", DestinationSeries: SeriesAll},
		Log:       Log{Level: "info", Format: "json"},
		Discovery: Discovery{Interval: 15 * time.Minute, Grace: 24 * time.Hour},
	}
}

// While a config of bigConfig bytes or more is parsed, the collector runs at GOGC parseGC,
// and once it is parsed the collector runs once. A parsed document (yaml.v3's nodes, about
// 1.5 KB a destination) is live until it is decoded: the destinations of such a config are
// parsed a chunk at a time where they can be (chunked.go: a config of 100,000 peaked at 190
// MB of heap parsed whole, 72 MB per chunk), and at the default GOGC 100 the collector would
// let the heap grow to twice what is live before the next collection (a daemon's start
// peaked at 333-389 MiB of RSS before parseGC, its ready state 215 MiB).
const (
	bigConfig = 1 << 20
	parseGC   = 50
)

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	cfg, _, err := LoadFile(path, Digest{})
	return cfg, err
}

// Digest identifies the bytes a config was read from. Parse reads nothing but them (no
// other file, no environment), so the same bytes are the same config.
type Digest [sha256.Size]byte

// LoadFile is Load, and the digest of the file's bytes; when they are the bytes last read
// (a SIGHUP with the file unchanged), nothing is parsed and cfg is nil. A reload (last set)
// parses a large config's destinations on one goroutine, not on every processor as a start
// does: the running daemon's heap is beside the parse then, and two chunks parsed at once
// took the peak of a reload of 100,000 destinations to 307-309 MiB in two runs (290-291
// in the two runs before, parsed on one).
func LoadFile(path string, last Digest) (cfg *Config, d Digest, err error) {
	return loadFile(path, last, nil)
}

// LoadFileAhead is LoadFile for a start (no digest to compare) that can begin work before
// the whole config is parsed: when the config is large (its destinations parsed a chunk at
// a time), ahead is called once with its api section as soon as that section is decoded
// and checked, before the destinations are parsed, which takes a second or more at fleet
// scale. The rest of the config may still be refused: whatever ahead begins must wait for
// LoadFileAhead's answer before it counts. A config parsed whole calls nothing.
func LoadFileAhead(path string, ahead func(API)) (cfg *Config, d Digest, err error) {
	return loadFile(path, Digest{}, ahead)
}

func loadFile(path string, last Digest, ahead func(API)) (cfg *Config, d Digest, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, d, fmt.Errorf("read config: %w", err)
	}
	d, workers := sha256.Sum256(data), runtime.GOMAXPROCS(0)
	if last != (Digest{}) {
		if d == last {
			return nil, d, nil
		}
		workers = 1
	}
	if cfg, err = parseWith(data, workers, ahead); err != nil {
		return nil, d, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, d, nil
}

// Parse decodes data strictly over Default(), fills each destination's empty schedule and
// time zone from defaults, and validates the result.
func Parse(data []byte) (*Config, error) { return parseWith(data, runtime.GOMAXPROCS(0), nil) }

// parseWith is Parse with a large config's destination chunks parsed on workers goroutines,
// and its api section handed to ahead (when not nil) before they are.
func parseWith(data []byte, workers int, ahead func(API)) (*Config, error) {
	if len(data) < bigConfig {
		return parse(data, workers, ahead)
	}
	release := gcpace.Tighten(parseGC)
	cfg, err := parse(data, workers, ahead)
	release()
	// The parsed document is garbage now: collected at once, so that the collector's next
	// goal is set from what stays (the config), not from the document it held.
	runtime.GC()
	return cfg, err
}

func parse(data []byte, workers int, ahead func(API)) (*Config, error) {
	cfg := Default()
	chunked := false
	if len(data) >= bigConfig {
		if l, ok := findDestinations(data); ok {
			chunked = decodeChunked(data, l, chunkEntries, workers, &cfg, ahead) == nil
		}
	}
	if !chunked {
		if err := decodeWhole(data, &cfg); err != nil {
			return nil, err
		}
	}
	// One form for "none": `rules: []` and no rules at all are the same config.
	if len(cfg.Destinations) == 0 {
		cfg.Destinations = nil
	}
	if len(cfg.Discovery.Rules) == 0 {
		cfg.Discovery.Rules = nil
	}
	for i := range cfg.Destinations {
		cfg.Destinations[i].fill(cfg.Defaults)
	}
	if err := foldPaths(&cfg); err != nil {
		return nil, err
	}
	for i := range cfg.Discovery.Rules {
		fillRule(&cfg.Discovery.Rules[i], cfg.Defaults)
	}
	// `consumers: []` opts a destination or rule out of the defaults' consumers; once the
	// defaults are filled in, none is one form.
	noConsumers(&cfg.Defaults)
	for i := range cfg.Destinations {
		noConsumers(&cfg.Destinations[i].Timing)
	}
	for i := range cfg.Discovery.Rules {
		noConsumers(&cfg.Discovery.Rules[i].Timing)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Ids enter here as written (errors above quote them so); the API answers them in
	// lowercase. One spelling, so one destination has one lock file, one lease, one series.
	for i := range cfg.Destinations {
		cfg.Destinations[i].ID = strings.ToLower(cfg.Destinations[i].ID)
	}
	return &cfg, nil
}

// decodeWhole parses data as one document and decodes it into cfg; its errors are the
// config's messages for every kind of bad YAML.
func decodeWhole(data []byte, cfg *Config) error {
	doc, unknown, err := parseNodes(data, configType)
	if err != nil {
		return err
	}
	err = doc.Decode(cfg)
	if len(unknown) > 0 || err != nil {
		return friendlyDecodeError(joinDecodeErrors(unknown, err))
	}
	return nil
}

var configType = reflect.TypeOf(Config{})

// parseNodes parses data (one document) into nodes and makes on them the checks yaml.v3
// would make on the text, beside type t: repeated keys are an error, and the keys no
// field of t takes are returned (checkNodes). The document is parsed once, the checks are
// made on its nodes, which are then decoded (parsing is most of the cost: 100,000
// destinations took 1.7 s when the text was parsed twice).
func parseNodes(data []byte, t reflect.Type) (*yaml.Node, []string, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("the file is empty; see config.example.yaml")
		}
		return nil, nil, friendlyDecodeError(err)
	}
	// yaml.v3 compares every pair of a mapping's keys when it decodes into a struct, and
	// reports each repeat: thousands of repeated keys cost minutes and gigabytes. They are
	// found here first, in one pass.
	if err := repeatedKeys(&doc); err != nil {
		return nil, nil, err
	}
	return &doc, checkNodes(&doc, t), nil
}

// maxReported bounds how many problems of one kind an error lists.
const maxReported = 5

// repeatedKeys returns an error naming the first keys set twice in one mapping, or nil.
func repeatedKeys(root *yaml.Node) error {
	var found []string
	more := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			first := make(map[string]int, len(n.Content)/2)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if line, seen := first[k.Value]; seen && k.Kind == yaml.ScalarNode {
					if len(found) < maxReported {
						found = append(found, fmt.Sprintf("line %d: key %s is already set at line %d", k.Line, quoteShort(k.Value), line))
					} else {
						more++
					}
				} else if k.Kind == yaml.ScalarNode {
					first[k.Value] = k.Line
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	if len(found) == 0 {
		return nil
	}
	if more > 0 {
		found = append(found, fmt.Sprintf("and %d more repeated keys", more))
	}
	return errors.New(strings.Join(found, "; "))
}

// quoteShort quotes at most 80 bytes of a value from the config, escaped, saying how long
// the rest was: a bad value of megabytes never makes an error of megabytes.
func quoteShort(s string) string {
	if len(s) <= 80 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:80]), len(s))
}

var durationType = reflect.TypeOf(time.Duration(0))

// checkNodes walks parsed nodes beside type t (Config, or a part of it): it returns the keys no field
// takes (yaml.v3's own words, "line N: field K not found in type T", which only its text
// decoder checks), and turns a bare 0 given for a duration field into 0s: yaml.v3 refuses an
// integer for a time.Duration, yet 0 is how the example config spells "never" or "none". Any
// other bare number stays an error (30 is neither 30s nor 30ns).
func checkNodes(doc *yaml.Node, t reflect.Type) []string {
	w := nodeWalk{seen: map[*yaml.Node]bool{}}
	w.walk(doc, t)
	return w.unknown
}

type nodeWalk struct {
	unknown []string
	// seen: an alias's target is walked once (aliases may repeat it exponentially).
	seen map[*yaml.Node]bool
}

func (w *nodeWalk) walk(n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			w.walk(c, t)
		}
	case yaml.AliasNode:
		if n.Alias != nil && !w.seen[n.Alias] {
			w.seen[n.Alias] = true
			w.walk(n.Alias, t)
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, c := range n.Content {
				w.walk(c, t.Elem())
			}
		}
	case yaml.MappingNode:
		w.mapping(n, t)
	case yaml.ScalarNode:
		if t == durationType && n.Tag == "!!int" && n.Value == "0" {
			n.Tag, n.Value = "!!str", "0s"
		}
	}
}

func (w *nodeWalk) mapping(n *yaml.Node, t reflect.Type) {
	switch t.Kind() {
	case reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem())
		}
	case reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				w.walk(v, t) // `<<: *defaults` merges the keys of the mapping(s) it names
				continue
			}
			if f, ok := fieldByTag(t, k.Value); ok {
				w.walk(v, f.Type)
			} else if !w.seen[k] { // a mapping merged into several places is named once
				w.seen[k] = true
				w.unknown = append(w.unknown, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
			}
		}
	}
}

// joinDecodeErrors puts the unknown keys and the decoder's errors in one yaml.TypeError, in
// the order of their lines (as yaml.v3's text decoder reports them).
func joinDecodeErrors(unknown []string, err error) error {
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	all := append([]string(nil), unknown...)
	if te != nil {
		all = append(all, te.Errors...)
	}
	line := func(m string) int {
		var n int
		_, _ = fmt.Sscanf(m, "line %d:", &n)
		return n
	}
	slices.SortStableFunc(all, func(a, b string) int { return line(a) - line(b) })
	return &yaml.TypeError{Errors: all}
}

// fieldByTag finds the field of struct type t that yaml.v3 decodes key into: the name its
// yaml tag gives, or else its name in lowercase; fields of inline structs count as t's own.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" {
			continue // unexported: yaml.v3 leaves it alone
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			if inner, ok := fieldByTag(f.Type, key); ok {
				return inner, true
			}
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlSections maps the decoder's Go type names to the config keys a user sees.
var yamlSections = map[string]string{
	"config.Config": "the top level", "config.Spool": "spool", "config.API": "api", "config.Retry": "api.retry",
	"config.Sink": "sink", "config.Vault": "vault", "config.KV": "vault.kv", "config.VaultAuth": "vault.auth",
	"config.Timing": "defaults", "config.Scheduler": "scheduler", "config.Metrics": "metrics",
	"config.Log": "log", "config.Destination": "a destination",
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// friendlyDecodeError rewrites yaml.v3's Go-flavoured messages into the config's own words.
func friendlyDecodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	msgs := make([]string, 0, min(len(te.Errors), maxReported+1))
	for i, m := range te.Errors {
		if i == maxReported {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(te.Errors)-i))
			break
		}
		if len(m) > 300 {
			m = m[:300] + "…"
		}
		if sub := unknownField.FindStringSubmatch(m); sub != nil {
			where := yamlSections[sub[2]]
			if where == "" {
				where = sub[2]
			}
			m = strings.Replace(m, sub[0], fmt.Sprintf("unknown key %q in %s (check its spelling against config.example.yaml)", sub[1], where), 1)
		}
		m = strings.Replace(m, "into time.Duration", "into a duration; want e.g. 500ms, 30s, 5m or 1h", 1)
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func noConsumers(t *Timing) {
	if len(t.Consumers) == 0 {
		t.Consumers = nil
	}
}

// foldPaths takes `path` (the neutral key) for `vault_path` where only it is set, and
// refuses the two with different values.
func foldPaths(cfg *Config) error {
	var p problems
	for i := range cfg.Destinations {
		d := &cfg.Destinations[i]
		foldPath(&p, fmt.Sprintf("destinations[%d].path", i), &d.VaultPath, &d.Path)
	}
	for i := range cfg.Discovery.Rules {
		r := &cfg.Discovery.Rules[i]
		foldPath(&p, fmt.Sprintf("discovery.rules[%d].path", i), &r.VaultPath, &r.Path)
	}
	return errors.Join(p.errs...)
}

// foldPath moves *path into *vaultPath when only path is set, refuses the two with
// different values (field names path), and empties *path.
func foldPath(p *problems, field string, vaultPath, path *string) {
	switch {
	case *path == "":
	case *vaultPath == "":
		*vaultPath = *path
	case *vaultPath != *path:
		p.bad(field, *path, "also vault_path %q: give one of them (path is the neutral name)", *vaultPath)
	}
	*path = ""
}
