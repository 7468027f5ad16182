package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"time"
)

// Consumer is a receiver of a destination's secret: told when a new key is stored, and,
// with adoption, asked which key it holds, so that no rotation revokes a key it still needs.
type Consumer struct {
	// Name identifies the consumer in metrics, logs, status and alerts. A consumer declared
	// in defaults or a rule serves every destination they cover: one notification per
	// burst, whatever the number of destinations rotated.
	Name     string    `yaml:"name"`
	Notify   Notify    `yaml:"notify"`
	Adoption *Adoption `yaml:"adoption,omitempty"`
}

// Notify says how a consumer is told a new key is stored: exec (argv, no shell) or an HTTP
// POST signed Standard Webhooks style. Exactly one of Exec and URL.
type Notify struct {
	Exec []string `yaml:"exec,omitempty"`
	// SecretOnStdin hands exec the stored records, secrets included, as JSON lines on
	// standard input (never in argv or the environment).
	SecretOnStdin bool   `yaml:"secret_on_stdin,omitempty"`
	URL           string `yaml:"url,omitempty"`
	// KeyFile holds the key (whsec_…) the POST is signed with; mode 0600 rule as the API key.
	KeyFile string `yaml:"key_file,omitempty"`
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Debounce gathers the stores of a burst into one notification: it is sent once no new
	// store came for this long (default 5s), at the latest 6 times this long after the first.
	Debounce time.Duration `yaml:"debounce,omitempty"`
}

// Adoption says how rotatord learns which keys a consumer holds: an HTTP GET it answers
// (JSON {"key_ids": [...]}) or an exec that prints them (one per line). {id} and {name} in
// URL and in Exec's arguments stand for the destination's id and name.
type Adoption struct {
	URL  string   `yaml:"url,omitempty"`
	Exec []string `yaml:"exec,omitempty"`
	// Ack reads the consumer's acknowledgement beside the secret: the consumer writes
	// {"key_ids": [...]} to <vault_path>/consumers/<name> in the same KV mount (for the file
	// sink, <dir>/<vault_path>/consumers/<name>.json).
	Ack bool `yaml:"ack,omitempty"`
	// Timeout bounds one question (default 5s).
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// Output is a file a destination's stored record is also written to: the JSON the file
// sink writes (signing_secret, key_id, destination_id, rotated_at, …), mode 0600.
type Output struct {
	File string `yaml:"file"`
}

// validateOutputs checks a destination's outputs: absolute, clean, each once.
func validateOutputs(p *problems, d Destination, field func(string) string) {
	seen := map[string]int{}
	for i, o := range d.Outputs {
		f := field(fmt.Sprintf("outputs[%d].file", i))
		switch {
		case o.File == "" || !filepath.IsAbs(o.File) || filepath.Clean(o.File) != o.File:
			p.bad(f, o.File, "want an absolute, clean file path, e.g. /run/billing/webhook-secret.json")
		default:
			if j, dup := seen[o.File]; dup {
				p.bad(f, o.File, "also outputs[%d]", j)
			}
			seen[o.File] = i
		}
	}
}

// Hold deadline choices (on_hold_deadline): what a rotation held for a consumer does when
// holding longer would let the stored secret pass max_age.
const (
	// HoldKeep keeps holding: the destination goes overdue (its alert fires) rather than
	// cutting off a receiver. The default: an overdue secret is a finding, a cut-off
	// receiver is an outage.
	HoldKeep = "hold"
	// HoldRotate rotates at the deadline although a consumer is behind.
	HoldRotate = "rotate"
)

var consumerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Defaults of a consumer's durations.
func (n Notify) EffectiveTimeout() time.Duration  { return orDuration(n.Timeout, 10*time.Second) }
func (n Notify) EffectiveDebounce() time.Duration { return orDuration(n.Debounce, 5*time.Second) }

// EffectiveTimeout is the adoption question's bound.
func (a Adoption) EffectiveTimeout() time.Duration { return orDuration(a.Timeout, 5*time.Second) }

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// validateConsumers checks a timing's consumers, min_interval and on_hold_deadline.
func validateConsumers(p *problems, t Timing, field func(string) string) {
	if t.MinInterval < 0 {
		p.bad(field("min_interval"), t.MinInterval, "want a positive duration such as 1h, or leave it out")
	}
	if t.OnHoldDeadline != "" && t.OnHoldDeadline != HoldKeep && t.OnHoldDeadline != HoldRotate {
		p.bad(field("on_hold_deadline"), t.OnHoldDeadline, "want hold (the default: never cut a receiver off) or rotate")
	}
	seen := map[string]int{}
	for i, c := range t.Consumers {
		f := func(s string) string { return field(fmt.Sprintf("consumers[%d].%s", i, s)) }
		if !consumerName.MatchString(c.Name) {
			p.bad(f("name"), c.Name, "want lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
		} else if j, dup := seen[c.Name]; dup {
			p.bad(f("name"), c.Name, "also consumers[%d]; each consumer of a destination needs its own name", j)
		}
		seen[c.Name] = i
		validateNotify(p, c, f)
		validateAdoption(p, c.Adoption, f)
	}
}

// validateNotify checks how a consumer is told: exec or url, each with what it needs.
func validateNotify(p *problems, c Consumer, f func(string) string) {
	n := c.Notify
	switch {
	case len(n.Exec) > 0 && n.URL != "":
		p.bad(f("notify"), "exec and url", "want one of them")
	case len(n.Exec) > 0:
		validateArgv(p, f("notify.exec"), n.Exec)
	case n.URL != "":
		validateURL(p, f("notify.url"), n.URL)
		if n.KeyFile == "" {
			p.missing(f("notify.key_file"), "a file holding the key (whsec_…) the notification is signed with")
		} else if !filepath.IsAbs(n.KeyFile) {
			p.bad(f("notify.key_file"), n.KeyFile, "want an absolute path")
		}
		if n.SecretOnStdin {
			p.bad(f("notify.secret_on_stdin"), true, "only for exec: an HTTP notification never carries the secret")
		}
	case c.Adoption == nil:
		p.missing(f("notify"), "exec (argv) or url, or at least an adoption to ask")
	}
	if n.Timeout < 0 || n.Debounce < 0 {
		p.bad(f("notify"), "timeout/debounce", "want positive durations")
	}
}

// validateAdoption checks how a consumer is asked which keys it holds: one way of three.
func validateAdoption(p *problems, a *Adoption, f func(string) string) {
	if a == nil {
		return
	}
	switch n := btoi(len(a.Exec) > 0) + btoi(a.URL != "") + btoi(a.Ack); {
	case n > 1:
		p.bad(f("adoption"), "exec, url and ack", "want one of them")
	case len(a.Exec) > 0:
		validateArgv(p, f("adoption.exec"), a.Exec)
	case a.URL != "":
		validateURL(p, f("adoption.url"), a.URL)
	case a.Ack:
	default:
		p.missing(f("adoption"), "url (a GET answering {\"key_ids\": [...]}), exec (prints the key ids) or ack: true (it writes them beside the secret)")
	}
}

func validateArgv(p *problems, field string, argv []string) {
	if !filepath.IsAbs(argv[0]) {
		p.bad(field+"[0]", argv[0], "want the program's absolute path (no shell runs it, and no PATH is searched)")
	}
}

func validateURL(p *problems, field, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		p.bad(field, raw, "want an http or https URL without credentials")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
