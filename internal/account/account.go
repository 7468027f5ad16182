// Package account decides, from the config and the provider's list of the organisation's
// replay destinations, which destinations rotatord rotates: the explicit ones still at the
// provider, and those the discovery rules select. Every listed destination ends in exactly
// one state, so "uncovered" always means "nobody decided". It is pure: no I/O (WithDeleted stamps when it first saw a destination gone).
package account

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// States of a destination, the values of rotatord_destinations{state}.
const (
	// Covered: rotated by rotatord (an explicit destination or a rule's).
	Covered = "covered"
	// Excluded: an exclude rule says someone else rotates it.
	Excluded = "excluded"
	// Uncovered: listed and active, but no rule selects it, or two rules do, or its name or
	// Vault path would collide with another destination's.
	Uncovered = "uncovered"
	// Revoked: deleted at the provider: gone from its list after rotatord had covered it
	// (the real list filters deleted ones out), or listed as revoked; never rotated.
	Revoked = "revoked"
	// MissingAtProvider: configured, but not in the provider's list; never rotated.
	MissingAtProvider = "missing_at_provider"
	// Disabled: an explicit destination paused with enabled: false.
	Disabled = "disabled"
	// DisabledAtProvider: covered, and disabled by webhook.co (disabledAt: its engine
	// turns a destination off after deliveries keep failing). rotatord keeps rotating it on
	// schedule: the policy's period still runs, and a destination re-enabled at webhook.co
	// (POST …/enable) must find a fresh key in Vault. It is its own state so that an
	// operator sees it: nothing is delivered to it meanwhile.
	DisabledAtProvider = "disabled_at_provider"
)

// States lists every state, so the metric has each series from the start.
var States = []string{Covered, Excluded, Uncovered, Revoked, MissingAtProvider, Disabled, DisabledAtProvider}

// coveredState is the state of a destination rotatord rotates: covered, or disabled by
// webhook.co since disabledAt (its deliveries kept failing), and still rotated on schedule.
func coveredState(disabledAt *time.Time) (state, reason string) {
	if disabledAt == nil {
		return Covered, ""
	}
	return DisabledAtProvider, fmt.Sprintf("disabled by webhook.co since %s (its deliveries kept failing): still rotated on schedule", disabledAt.UTC().Format(time.RFC3339))
}

// Item is one destination and what became of it. It never holds a secret.
type Item struct {
	ID string `json:"id"`
	// Label and URL are as listed (empty for a configured destination the provider lacks).
	Label string `json:"label,omitempty"`
	URL   string `json:"url,omitempty"`
	// Name and VaultPath are the destination's in rotatord, when it has them.
	Name      string `json:"name,omitempty"`
	VaultPath string `json:"vault_path,omitempty"`
	State     string `json:"state"`
	// Source is what put it there: destinations[i] or discovery.rules[i].
	Source string `json:"source,omitempty"`
	// Reason says why, for anything but a plain covered destination.
	Reason string `json:"reason,omitempty"`
	// GoneSince is when rotatord first saw a covered destination gone from the list
	// (deleted at webhook.co); `rotatord report` ends its evaluation there.
	GoneSince *time.Time `json:"gone_since,omitempty"`
}

// Result is the outcome of Resolve.
type Result struct {
	// Destinations are the ones to schedule: the configured ones and the rules' ones.
	Destinations []config.Destination
	// Items has every listed destination and every configured one, in that order.
	Items []Item
	// Problems are the conflicts found: two include rules, colliding names or paths.
	Problems []error
	// Listed is false when there was no listing: only the configured destinations count.
	Listed bool
	// Skipped names the listing's items that no destination of the API can be, left out.
	Skipped []string
}

// WithDeleted marks as deleted at the provider (Revoked) the destinations rotatord covered
// before and the listing no longer has: an explicit one found missing_at_provider, a
// rule-made one that is simply gone. deleted are such items from earlier listings (the
// daemon keeps them in state_dir); an id listed again is no longer deleted. It returns the
// result and the deleted items still in force.
func WithDeleted(r Result, previous []Item, deleted []Item) (Result, []Item) {
	if !r.Listed {
		return r, deleted
	}
	listed := map[string]bool{}
	at := map[string]int{}
	for i, it := range r.Items {
		at[it.ID] = i
		if it.State != MissingAtProvider {
			listed[it.ID] = true
		}
	}
	var still []Item
	seen := map[string]bool{}
	for _, it := range append(append([]Item(nil), deleted...), previous...) {
		wasCovered := it.State == Covered || it.State == DisabledAtProvider || (it.State == Revoked && it.Reason == deletedReason)
		if seen[it.ID] || listed[it.ID] || !wasCovered {
			continue
		}
		seen[it.ID] = true
		gone := Item{ID: it.ID, Label: it.Label, URL: it.URL, Name: it.Name, VaultPath: it.VaultPath, Source: it.Source, State: Revoked, Reason: deletedReason, GoneSince: it.GoneSince}
		if gone.GoneSince == nil {
			now := time.Now().UTC().Truncate(time.Second)
			gone.GoneSince = &now
		}
		still = append(still, gone)
		if i, ok := at[it.ID]; ok {
			r.Items[i] = gone // an explicit one: deleted, not merely missing
		} else {
			r.Items = append(r.Items, gone)
		}
	}
	return r, still
}

// deletedReason is the reason of a destination gone from the list after rotatord covered it.
const deletedReason = "deleted at webhook.co (gone from its list after rotatord covered it): not rotated; its stored secret is left alone"

// Count returns how many items are in each state (every state present).
func (r Result) Count() map[string]int {
	out := make(map[string]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	if !r.Listed {
		for _, d := range r.Destinations {
			if d.IsEnabled() {
				out[Covered]++
			} else {
				out[Disabled]++
			}
		}
		return out
	}
	for _, it := range r.Items {
		out[it.State]++
	}
	return out
}

// WithConfigured is the destinations in force (Destinations: what the daemon rotates),
// followed by the config's own destinations that are not in force (webhook.co's list lacks
// them, or deleted them): the ones a person asks about in status and a report.
func (r Result) WithConfigured(cfg *config.Config) []config.Destination {
	out := append([]config.Destination(nil), r.Destinations...)
	in := make(map[string]bool, len(out))
	for _, d := range out {
		in[strings.ToLower(d.ID)] = true
	}
	for _, d := range cfg.Destinations {
		if !in[strings.ToLower(d.ID)] {
			out = append(out, d)
		}
	}
	return out
}

// InState returns the items in state.
func (r Result) InState(state string) []Item {
	var out []Item
	for _, it := range r.Items {
		if it.State == state {
			out = append(out, it)
		}
	}
	return out
}

// Resolve decides every destination's state. listing is the provider's list, or nil when
// there is none (discovery off, or no listing succeeded yet): then the configured
// destinations are scheduled as they are. An explicit destination wins for its id; an
// exclude rule wins over include rules; two include rules, or a name or Vault path that two
// destinations would share, leave the destination uncovered and are reported, never a
// silent pick.
func Resolve(cfg *config.Config, listing []webhookco.ReplayDestination) Result {
	if listing == nil {
		// No items: without a listing every configured destination counts as it is (Count).
		return Result{Destinations: shared(cfg.Destinations)}
	}
	r := Result{Listed: true}
	// Each listed destination by its index (not a copy: at 100,000, 9 MB less while a
	// reload resolves beside the running daemon).
	listed := make(map[string]int32, len(listing))
	for i, l := range listing {
		listed[strings.ToLower(l.ID)] = int32(i)
	}
	n := len(cfg.Destinations)
	taken := taken{cfg: cfg, explicit: make(map[string]bool, n), names: make(map[string]int, n), paths: make(map[string]int, n)}
	configured := r.configured(cfg, listing, listed, taken)
	candidates := r.candidates(cfg, listing, taken)
	r.settleClashes(candidates, taken)
	if len(r.Items) == 0 {
		// Nothing a rule selected (an explicit fleet): the configured ones' items are the
		// list, not a copy of it (13 MB at 100,000, held twice while a reload resolves).
		r.Items = configured
	} else {
		r.Items = append(r.Items, configured...)
	}
	return r
}

// taken is what the config's own destinations hold: their ids, names and paths.
type taken struct {
	cfg          *config.Config
	explicit     map[string]bool
	names, paths map[string]int // name or path → i of destinations[i]
}

// owner names the configured destination i, as a clash with it is reported.
func (t taken) owner(i int) string {
	return "destinations[" + strconv.Itoa(i) + "] (" + t.cfg.Destinations[i].Name + ")"
}

// candidate is a listed destination one rule selects, before names and paths are settled.
type candidate struct {
	item     Item
	dest     config.Destination
	created  time.Time
	disabled *time.Time
}

// configured decides the config's own destinations: at the provider or not, deleted,
// paused, covered; it returns their items and records what they take.
func (r *Result) configured(cfg *config.Config, listing []webhookco.ReplayDestination, listed map[string]int32, t taken) []Item {
	out := make([]Item, 0, len(cfg.Destinations))
	// While every destination so far is kept, the result shares the config's array (at
	// 100,000 destinations, 24 MB not copied); the first one left out starts a copy.
	all := true
	keep := func(i int) {
		if !all {
			r.Destinations = append(r.Destinations, cfg.Destinations[i])
		}
	}
	leave := func(i int) {
		if all {
			all = false
			r.Destinations = append(make([]config.Destination, 0, len(cfg.Destinations)), cfg.Destinations[:i]...)
		}
	}
	for i, d := range cfg.Destinations {
		id := strings.ToLower(d.ID)
		t.explicit[id] = true
		t.names[d.Name], t.paths[d.VaultPath] = i, i
		at, ok := listed[id]
		var l webhookco.ReplayDestination
		if ok {
			l = listing[at]
		}
		var it Item
		switch {
		case !ok:
			it = explicitItem(i, d, MissingAtProvider, "not in webhook.co's list of the organisation's destinations: not rotated")
			leave(i)
		case l.Status == webhookco.DestinationRevoked:
			it = explicitItem(i, d, Revoked, "deleted at webhook.co (listed as revoked): not rotated")
			leave(i)
		case !d.IsEnabled():
			it = explicitItem(i, d, Disabled, "enabled: false")
			keep(i) // paused: kept in metrics, status and plan
		default:
			state, why := coveredState(l.DisabledAt)
			it = explicitItem(i, d, state, why)
			keep(i)
		}
		if ok {
			it.Label, it.URL = l.LabelOrEmpty(), l.URL
		}
		out = append(out, it)
	}
	if all {
		r.Destinations = shared(cfg.Destinations)
	}
	return out
}

// shared is ds itself with no room to grow, so that an append to it copies and the config's
// array is never written: a config is not changed once loaded.
func shared(ds []config.Destination) []config.Destination { return ds[:len(ds):len(ds)] }

// candidates decides, in the provider's order, each listed destination the config does not
// name: deleted, excluded, uncovered (no rule, two rules, a bad name or path), or a
// candidate of one rule.
func (r *Result) candidates(cfg *config.Config, listing []webhookco.ReplayDestination, t taken) []candidate {
	out := make([]candidate, 0, max(len(listing)-len(t.explicit), 0))
	for _, l := range listing {
		id := strings.ToLower(l.ID)
		if t.explicit[id] {
			continue
		}
		it := Item{ID: id, Label: l.LabelOrEmpty(), URL: l.URL}
		host := urlHost(l.URL)
		includes, excludes := matchingRules(cfg, l, host)
		switch {
		case l.Status == webhookco.DestinationRevoked:
			it.State, it.Reason = Revoked, "deleted at webhook.co (listed as revoked)"
		case len(excludes) > 0:
			it.State, it.Source, it.Reason = Excluded, fmt.Sprintf("discovery.rules[%d]", excludes[0]), "excluded by rule: rotated elsewhere"
		case len(includes) == 0:
			it.State, it.Reason = Uncovered, "no rule selects it"
		case len(includes) > 1:
			it.State, it.Reason = Uncovered, fmt.Sprintf("selected by both discovery.rules[%d] and discovery.rules[%d]", includes[0], includes[1])
			r.Problems = append(r.Problems, fmt.Errorf("destination %s (label %q, %s): %s; make the rules disjoint", id, it.Label, l.URL, it.Reason))
		default:
			d := cfg.Discovery.Rules[includes[0]].Destination(id, l.LabelOrEmpty(), host)
			it.Source, it.Name, it.VaultPath = fmt.Sprintf("discovery.rules[%d]", includes[0]), d.Name, d.VaultPath
			if why := badRuleDestination(it.Source, d); why != "" {
				it.State, it.Reason = Uncovered, why
				r.Problems = append(r.Problems, fmt.Errorf("destination %s: %s", id, it.Reason))
			} else {
				out = append(out, candidate{item: it, dest: d, created: l.CreatedAt, disabled: l.DisabledAt})
				continue
			}
		}
		r.Items = append(r.Items, it)
	}
	return out
}

// matchingRules returns the include and the exclude rules that match l.
func matchingRules(cfg *config.Config, l webhookco.ReplayDestination, host string) (includes, excludes []int) {
	for i, rule := range cfg.Discovery.Rules {
		if !rule.Matches(l.Label, host, l.Status) {
			continue
		}
		if rule.Exclude {
			excludes = append(excludes, i)
		} else {
			includes = append(includes, i)
		}
	}
	return includes, excludes
}

// badRuleDestination says why a rule's destination cannot be: an invalid name or path.
func badRuleDestination(source string, d config.Destination) string {
	if !config.ValidName(d.Name) {
		return fmt.Sprintf("%s.name gives %q, not a valid name", source, d.Name)
	}
	if why := config.ValidPath(d.VaultPath); why != "" {
		return fmt.Sprintf("%s.vault_path gives %q: %s", source, d.VaultPath, why)
	}
	return ""
}

// settleClashes makes names and paths unique. A clash with a configured destination leaves
// the rule-made one uncovered; between rule-made ones, the destination created first keeps
// the name and path, and every later one is uncovered, naming it: creating a twin (the same
// label, with the default name "{label}") cannot unschedule anybody's destination.
func (r *Result) settleClashes(all []candidate, t taken) {
	// Sorted by reference: a candidate is large, and an account of 100,000 made the sort
	// move gigabytes. Ids are unique, so the order is total.
	candidates := make([]*candidate, len(all))
	for i := range all {
		candidates[i] = &all[i]
	}
	slices.SortFunc(candidates, func(a, b *candidate) int {
		switch {
		case olderFirst(a.created, b.created, a.item.ID, b.item.ID):
			return -1
		case olderFirst(b.created, a.created, b.item.ID, a.item.ID):
			return 1
		}
		return 0
	})
	// The first (oldest) candidate to use each name and path: any other that uses it clashes.
	nameUse, pathUse := make(map[string]int, len(candidates)), make(map[string]int, len(candidates))
	for i := len(candidates) - 1; i >= 0; i-- {
		nameUse[candidates[i].dest.Name] = i
		pathUse[candidates[i].dest.VaultPath] = i
	}
	r.Items = slices.Grow(r.Items, len(candidates))
	r.Destinations = slices.Grow(r.Destinations, len(candidates))
	clash := func(i int, kind, value string, owners map[string]int, use map[string]int) string {
		if owner, ok := owners[value]; ok {
			return fmt.Sprintf("its %s %q is also %s's", kind, value, t.owner(owner))
		}
		if first := use[value]; first != i {
			other := candidates[first]
			return fmt.Sprintf("its %s %q is also destination %s's (label %q), created earlier", kind, value, other.item.ID, other.item.Label)
		}
		return ""
	}
	for i, c := range candidates {
		it := c.item
		why := clash(i, "name", c.dest.Name, t.names, nameUse)
		if why == "" {
			why = clash(i, "vault path", c.dest.VaultPath, t.paths, pathUse)
		}
		if why != "" {
			it.State, it.Reason = Uncovered, why
			r.Problems = append(r.Problems, fmt.Errorf("destination %s (label %q, %s) from %s: %s; use {id} in the rule's name or vault_path", it.ID, it.Label, it.URL, it.Source, why))
		} else {
			it.State, it.Reason = coveredState(c.disabled)
			r.Destinations = append(r.Destinations, c.dest)
		}
		r.Items = append(r.Items, it)
	}
}

// olderFirst orders destinations by creation, then id: the first keeps a shared name.
func olderFirst(a, b time.Time, idA, idB string) bool {
	if !a.Equal(b) {
		return a.Before(b)
	}
	return idA < idB
}

func explicitItem(i int, d config.Destination, state, reason string) Item {
	return Item{ID: strings.ToLower(d.ID), Name: d.Name, VaultPath: d.VaultPath, State: state, Source: "destinations[" + strconv.Itoa(i) + "]", Reason: reason}
}

// urlHost is the host of a listed URL, lowercase ("" when it does not parse).
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
