package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Discovery covers the whole account: rules select replay destinations from the provider's
// list of the organisation's destinations, beside the explicit destinations. With no rules
// it is off and rotatord never lists the account.
type Discovery struct {
	// Interval is how often the list is read again (at start and on SIGHUP too); 0: only then.
	Interval time.Duration `yaml:"interval"`
	// Grace is how long a destination gone from the provider (or from the rules) keeps its
	// metric series and local lease file before they are removed.
	Grace time.Duration `yaml:"grace"`
	// Rules select destinations; an explicit destination always wins for its id, and an
	// exclude rule wins over the include rules.
	Rules []Rule `yaml:"rules"`
}

// Enabled reports whether rotatord lists the account (any rule configured).
func (d Discovery) Enabled() bool { return len(d.Rules) > 0 }

// Rule selects destinations from the provider's list and says how to rotate them.
type Rule struct {
	// Label and URLHost are globs (path.Match syntax: *, ?, [...]) on the destination's
	// label and on its URL's host; empty matches anything, a missing label included. A
	// destination without a label matches only a rule that leaves label empty.
	Label   string `yaml:"label"`
	URLHost string `yaml:"url_host"`
	// Status is active (the default: the only destinations that can be rotated) or any.
	Status string `yaml:"status"`
	// Exclude opts the matching destinations out: rotated by someone else, by decision.
	// They count as excluded, never as uncovered.
	Exclude bool `yaml:"exclude"`
	// Name and VaultPath are templates over {id}, {label}, {host} and (VaultPath only)
	// {name}. {label} is the label when it is a valid name, else the id.
	Name      string `yaml:"name"`
	VaultPath string `yaml:"vault_path"`
	// Path is the neutral name of VaultPath, as for a destination.
	Path string `yaml:"path,omitempty"`
	// When and how, as for a destination; empty values come from defaults.
	Timing `yaml:",inline"`
}

// Rule statuses.
const (
	RuleStatusActive = "active"
	RuleStatusAny    = "any"
)

// Template defaults.
const (
	DefaultRuleName      = "{label}"
	DefaultRuleVaultPath = "webhookco/{name}"
)

// placeholder finds {word} in a template.
var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

// Expand fills a rule's template for one destination. name is "" while expanding the name
// itself.
func Expand(template, id, label, host, name string) string {
	if !namePattern.MatchString(label) {
		label = strings.ToLower(id)
	}
	// By hand, not with a strings.Replacer: building one costs more than the replacing, and
	// this runs for every destination of the account at every listing.
	var b strings.Builder
	b.Grow(len(template) + len(id) + len(label))
	for rest := template; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{id}"):
			b.WriteString(strings.ToLower(id))
			rest = rest[len("{id}"):]
		case strings.HasPrefix(rest, "{label}"):
			b.WriteString(label)
			rest = rest[len("{label}"):]
		case strings.HasPrefix(rest, "{host}"):
			b.WriteString(host)
			rest = rest[len("{host}"):]
		case strings.HasPrefix(rest, "{name}"):
			b.WriteString(name)
			rest = rest[len("{name}"):]
		default:
			b.WriteByte('{')
			rest = rest[1:]
		}
	}
	return b.String()
}

// ValidName reports whether s is usable as a destination name (metric label, file name).
func ValidName(s string) bool { return namePattern.MatchString(s) }

// ValidPath reports why p is not a clean relative path for a secret, or "" when it is.
func ValidPath(p string) string {
	switch {
	case p == "":
		return "empty"
	case strings.IndexFunc(p, hiddenRune) >= 0:
		// A listed URL's host or label can carry these into a path through a template.
		return "it holds a control or formatting character (C0, C1, bidi); not used as a path"
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || path.Clean(p) != p || strings.Contains(p, ".."):
		return "want a clean relative path without leading or trailing slashes or '..', e.g. webhookco/billing-prod"
	}
	return ""
}

// hiddenRune reports a rune that changes how text is shown instead of showing itself: C0
// and C1 controls, DEL, and Unicode format characters (bidi overrides, zero-width ones).
func hiddenRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// fillRule completes a rule from defaults, as Parse does for destinations.
func fillRule(r *Rule, d Defaults) {
	if r.Status == "" {
		r.Status = RuleStatusActive
	}
	if r.Name == "" {
		r.Name = DefaultRuleName
	}
	if r.VaultPath == "" {
		r.VaultPath = DefaultRuleVaultPath
	}
	r.fill(d)
}

// Destination is the destination a rule makes of a listed one (before any conflict check).
func (r Rule) Destination(id, label, host string) Destination {
	name := Expand(r.Name, id, label, host, "")
	return Destination{ID: strings.ToLower(id), Name: name, VaultPath: Expand(r.VaultPath, id, label, host, name), Timing: r.Timing}
}

// Matches reports whether the rule selects a destination with this label (nil: none), URL
// host and status.
func (r Rule) Matches(label *string, host, status string) bool {
	if r.Status != RuleStatusAny && status != r.Status {
		return false
	}
	if r.Label != "" {
		if label == nil {
			return false
		}
		if ok, _ := path.Match(r.Label, *label); !ok {
			return false
		}
	}
	if r.URLHost != "" {
		if ok, _ := path.Match(r.URLHost, strings.ToLower(host)); !ok {
			return false
		}
	}
	return true
}

// validateDiscovery checks the rules: patterns, templates, timing, and that no two include
// rules can select one destination.
func (c *Config) validateDiscovery(p *problems) {
	if c.Discovery.Interval < 0 {
		p.bad("discovery.interval", c.Discovery.Interval, "want 0 (only at start and on SIGHUP) or a positive duration such as 15m")
	}
	if c.Discovery.Grace < 0 {
		p.bad("discovery.grace", c.Discovery.Grace, "want a positive duration such as 24h")
	}
	for i, r := range c.Discovery.Rules {
		field := func(f string) string { return fmt.Sprintf("discovery.rules[%d].%s", i, f) }
		for _, g := range []struct{ field, glob string }{{"label", r.Label}, {"url_host", r.URLHost}} {
			if _, err := path.Match(g.glob, ""); err != nil {
				p.bad(field(g.field), g.glob, "not a glob: %v (use *, ? and [...])", err)
			}
		}
		if r.Status != RuleStatusActive && r.Status != RuleStatusAny {
			p.bad(field("status"), r.Status, "want active or any (a revoked destination is never rotated)")
		}
		if r.Exclude {
			continue
		}
		validateTemplate(p, field("name"), r.Name, []string{"{id}", "{label}", "{host}"}, func(s string) string {
			if !ValidName(s) {
				return "want lowercase letters, digits, '-', '_' or '.', at most 63, starting with a letter or digit"
			}
			return ""
		})
		validateTemplate(p, field("vault_path"), r.VaultPath, []string{"{id}", "{label}", "{host}", "{name}"}, ValidPath)
		validateTiming(p, Destination{Timing: r.Timing}, field)
	}
	for i, a := range c.Discovery.Rules {
		for j := i + 1; j < len(c.Discovery.Rules); j++ {
			b := c.Discovery.Rules[j]
			if a.Exclude || b.Exclude {
				continue // an exclusion wins over the include rules it overlaps: "all but these"
			}
			if globsMayMeet(a.Label, b.Label) && globsMayMeet(a.URLHost, b.URLHost) && (a.Status == b.Status || a.Status == RuleStatusAny || b.Status == RuleStatusAny) {
				p.add(fmt.Errorf("discovery.rules[%d] and discovery.rules[%d] overlap: a destination with label %s and URL host %s is selected by both; "+
					"make them disjoint (label, url_host), or turn one into an exclude rule", i, j, meetExample(a.Label, b.Label), meetExample(a.URLHost, b.URLHost)))
			}
		}
	}
}

// validateTemplate checks that a template uses only known placeholders, includes one that
// tells destinations apart ({id}, {label} or {name}), and gives a valid value for a sample.
func validateTemplate(p *problems, field, tmpl string, known []string, check func(string) string) {
	for _, ph := range placeholder.FindAllString(tmpl, -1) {
		ok := false
		for _, k := range known {
			ok = ok || ph == k
		}
		if !ok {
			p.bad(field, tmpl, "unknown placeholder %s; want %s", ph, strings.Join(known, ", "))
			return
		}
	}
	if !strings.Contains(tmpl, "{id}") && !strings.Contains(tmpl, "{label}") && !strings.Contains(tmpl, "{name}") {
		p.bad(field, tmpl, "every matching destination would get the same value; include {id}, {label} or {name}")
		return
	}
	sample := Expand(tmpl, "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", "billing-prod", "hooks.example.com", "billing-prod")
	if why := check(sample); why != "" {
		p.bad(field, tmpl, "gives %q for a destination labelled billing-prod: %s", sample, why)
	}
}

// globsMayMeet reports whether some string could match both globs. It is exact when either
// is a literal or empty ("any"); for two patterns it compares the literal text before the
// first and after the last wildcard, and says "maybe" when those agree.
func globsMayMeet(a, b string) bool {
	if a == "" || b == "" || a == b {
		return true
	}
	aLit, bLit := !strings.ContainsAny(a, `*?[\`), !strings.ContainsAny(b, `*?[\`)
	switch {
	case aLit && bLit:
		return false
	case aLit:
		ok, _ := path.Match(b, a)
		return ok
	case bLit:
		ok, _ := path.Match(a, b)
		return ok
	}
	pa, pb := literalPrefix(a), literalPrefix(b)
	sa, sb := literalSuffix(a), literalSuffix(b)
	return (strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)) && (strings.HasSuffix(sa, sb) || strings.HasSuffix(sb, sa))
}

func literalPrefix(g string) string {
	if i := strings.IndexAny(g, `*?[\`); i >= 0 {
		return g[:i]
	}
	return g
}

func literalSuffix(g string) string {
	if i := strings.LastIndexAny(g, `*?]\`); i >= 0 {
		return g[i+1:]
	}
	return g
}

// meetExample names what both globs could match, for the overlap message.
func meetExample(a, b string) string {
	switch {
	case a == "" && b == "":
		return "(any)"
	case a == "":
		return fmt.Sprintf("%q", b)
	case b == "":
		return fmt.Sprintf("%q", a)
	case !strings.ContainsAny(a, `*?[\`):
		return fmt.Sprintf("%q", a)
	case !strings.ContainsAny(b, `*?[\`):
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("matching both %q and %q", a, b)
}
