// Package report builds the evidence of an audit period: for each destination in scope,
// every key the provider minted in the period, which of them rotatord minted and stored
// (and where), the intervals between keys against the policy's max_age, and the findings
// an auditor asks about. Build is a pure function over facts gathered elsewhere (Gather);
// Write renders a report as text, JSON, CSV or one self-contained HTML page, sealed with
// its SHA-256 (seal.go).
package report

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Schema names the JSON layout; it changes when a field changes meaning.
const Schema = "rotatord.report/v1"

// Severities of a finding. Only an error makes `rotatord report` exit non-zero.
const (
	Error   = "error"
	Warning = "warning"
	Info    = "info"
)

// Kinds of finding.
const (
	// Overdue: an interval between consecutive keys (or from the last key to the period's
	// end) longer than max_age; From is when it became overdue, To when a key came.
	Overdue = "overdue"
	// Outside: a key minted by someone other than rotatord (a dashboard rotation, a script).
	Outside = "minted_outside_rotatord"
	// Lost: a key rotatord minted whose secret never reached the sink.
	Lost = "lost"
	// Drift: at the end of the period the stored key is not the provider's active key.
	Drift = "drift"
	// Uncovered: a destination of the organisation that existed in the period with no rule
	// or explicit entry: nothing rotates it.
	Uncovered = "uncovered"
	// Deleted: a destination deleted at the provider during the period.
	Deleted = "deleted"
	// Source: a source that could not answer, or answered only in part; Detail says which.
	Source = "source_unavailable"
)

// Kinds lists every kind, in the order the summary shows them.
var Kinds = []string{Overdue, Lost, Drift, Source, Outside, Uncovered, Deleted}

var severity = map[string]string{Overdue: Error, Lost: Error, Drift: Error, Outside: Warning, Uncovered: Warning, Deleted: Info}

// Period is the half-open interval [From, To).
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Policy is what a destination is held to.
type Policy struct {
	Schedule string        `json:"schedule"`
	TimeZone string        `json:"time_zone,omitempty"`
	MaxAge   time.Duration `json:"-"`
}

// Subject is what was gathered about one destination in scope.
type Subject struct {
	Name     string
	ID       string
	Location string // where its secret is stored (a Vault path, a file)
	Source   string // destinations[i] or discovery.rules[i]
	Policy   Policy
	// CreatedAt is the provider's createdAt (zero: not listed).
	CreatedAt time.Time
	// Keys is the provider's key list; KeysErr why it could not be had ("" when it could).
	Keys    []webhookco.SigningKey
	KeysErr string
	// Gone is set when the provider no longer has the destination (its key list is 404).
	Gone bool
	// DeletedAt is when rotatord saw the destination gone from the provider's list (zero:
	// not seen, or not when).
	DeletedAt time.Time
	// Stored is what the sink holds (nil: nothing); StoredErr why it could not be read.
	Stored    *sink.Record
	StoredErr string
	// KV is the KV v2 metadata of the secret (nil for KV v1 and files).
	KV *sink.KVMetadata
}

// Other is a destination of the organisation that no rule or entry covers.
type Other struct {
	ID        string    `json:"id"`
	Label     string    `json:"label,omitempty"`
	URL       string    `json:"url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Inputs name what a report was built from.
type Inputs struct {
	Organization string   `json:"provider_organization,omitempty"`
	APIURL       string   `json:"provider_api_url"`
	Sink         string   `json:"sink"`
	VaultAddress string   `json:"vault_address,omitempty"`
	VaultMount   string   `json:"vault_mount,omitempty"`
	Config       string   `json:"config"`
	Version      string   `json:"rotatord_version"`
	Names        []string `json:"names,omitempty"`
	// AuditChain is the provider's own check of its audit chain, when the key may ask.
	AuditChain *AuditChain `json:"provider_audit_chain,omitempty"`
}

// AuditChain is the outcome of POST /v1/audit/verify.
type AuditChain struct {
	Checked      bool   `json:"checked"`
	OK           bool   `json:"ok"`
	RowsVerified int    `json:"rows_verified"`
	Detail       string `json:"detail,omitempty"`
}

// Report is the evidence for one period.
type Report struct {
	Schema       string        `json:"schema"`
	GeneratedAt  time.Time     `json:"generated_at"`
	Period       Period        `json:"period"`
	Inputs       Inputs        `json:"inputs"`
	Summary      Summary       `json:"summary"`
	Findings     []Finding     `json:"findings"`
	Destinations []Destination `json:"destinations"`
}

// Summary comes first: how many destinations, how many compliant, findings by kind.
type Summary struct {
	InScope   int            `json:"destinations_in_scope"`
	Compliant int            `json:"compliant"`
	Keys      int            `json:"keys_in_period"`
	ByKind    map[string]int `json:"findings_by_kind"`
	Errors    int            `json:"errors"`
	Warnings  int            `json:"warnings"`
}

// Finding is one thing an auditor must see.
type Finding struct {
	Kind        string    `json:"kind"`
	Severity    string    `json:"severity"`
	Destination string    `json:"destination"`
	From        time.Time `json:"from,omitzero"`
	To          time.Time `json:"to,omitzero"`
	KeyID       string    `json:"key_id,omitempty"`
	Detail      string    `json:"detail"`
}

// Destination is one destination's evidence.
type Destination struct {
	Name          string `json:"name"`
	ID            string `json:"id"`
	Location      string `json:"location"`
	Source        string `json:"source,omitempty"`
	Schedule      string `json:"schedule"`
	MaxAgeSeconds int64  `json:"max_age_seconds"`
	Compliant     bool   `json:"compliant"`
	Keys          []Key  `json:"keys"`
	// Before is the last key before the period: the first interval counts from it.
	Before *Key `json:"key_before_period,omitempty"`
	// LongestSeconds is the longest interval between consecutive keys in the period.
	LongestSeconds int64     `json:"longest_interval_seconds"`
	LongestFrom    time.Time `json:"longest_interval_from,omitzero"`
	LongestTo      time.Time `json:"longest_interval_to,omitzero"`
	// End is where the last interval ends: the period's end, now, or the deletion.
	End       time.Time `json:"evaluated_until"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	maxAge    time.Duration
	packed    []packedKey // Keys, packed once judged (see Expand)
}

// Origins of a key.
const (
	OriginRotatord = "rotatord"
	OriginLost     = "rotatord_lost"
	OriginCreated  = "created_with_destination"
	OriginOutside  = "outside_rotatord"
	OriginUnknown  = "unknown"
)

// Key is one key minted in the period.
type Key struct {
	ID        string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
	// Status is the provider's status now ("" when only rotatord's record names the key).
	Status string `json:"provider_status,omitempty"`
	Origin string `json:"origin"`
	// StoredAt, Location and Version say where rotatord stored it; empty: never stored.
	StoredAt time.Time `json:"stored_at,omitzero"`
	Location string    `json:"stored_in,omitempty"`
	Version  string    `json:"kv_version,omitempty"`
	// KVState is the KV v2 version's state now: current, kept, deleted, destroyed, or
	// pruned (beyond max_versions; the key's record is in the newer versions' history).
	KVState string `json:"kv_state,omitempty"`
}

// Build makes the report of the period from the gathered facts. now bounds the last
// interval of a period that has not ended.
func Build(p Period, subjects []Subject, others []Other, in Inputs, now time.Time) Report {
	b := NewBuilder(p, in, len(subjects), now)
	for i, s := range subjects {
		b.Add(i, s)
	}
	return b.Report(others)
}

// Builder judges destinations one at a time, so the facts gathered about one (its keys,
// its record) are dropped once judged: a year of a large account is never held twice.
// Add is safe for concurrent use.
type Builder struct {
	p   Period
	in  Inputs
	now time.Time

	mu    sync.Mutex
	dests []*Destination
	found [][]Finding
}

// NewBuilder starts the report of p over n destinations.
func NewBuilder(p Period, in Inputs, n int, now time.Time) *Builder {
	return &Builder{p: p, in: in, now: now, dests: make([]*Destination, n), found: make([][]Finding, n)}
}

// Add judges the i-th destination.
func (b *Builder) Add(i int, s Subject) {
	d, fs := judge(b.p, s, b.now)
	b.mu.Lock()
	b.dests[i], b.found[i] = d, fs
	b.mu.Unlock()
}

// Report is the report of every destination added, and of others: the account's
// destinations nothing covers.
func (b *Builder) Report(others []Other) Report {
	p, in := b.p, b.in
	r := Report{Schema: Schema, GeneratedAt: b.now.UTC(), Period: Period{From: p.From.UTC(), To: p.To.UTC()}, Inputs: in,
		Findings: []Finding{}, Destinations: []Destination{}}
	if in.AuditChain != nil && in.AuditChain.Checked && !in.AuditChain.OK {
		r.Findings = append(r.Findings, Finding{Kind: Source, Severity: Error, Detail: "webhook.co's audit chain check failed: " + in.AuditChain.Detail})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, d := range b.dests {
		if d == nil {
			continue
		}
		r.Destinations = append(r.Destinations, *d)
		r.Findings = append(r.Findings, b.found[i]...)
	}
	for _, o := range others {
		if !o.CreatedAt.Before(p.To) {
			continue
		}
		r.Findings = append(r.Findings, Finding{Kind: Uncovered, Severity: Warning, Destination: o.ID, From: o.CreatedAt.UTC(),
			Detail: fmt.Sprintf("destination %s (%s) exists at webhook.co and no rule or entry covers it: nothing rotates its key", o.ID, cmp.Or(o.Label, o.URL, "no label"))})
	}
	r.Summary = summarize(r)
	return r
}

func summarize(r Report) Summary {
	s := Summary{InScope: len(r.Destinations), ByKind: map[string]int{}}
	for _, k := range Kinds {
		s.ByKind[k] = 0
	}
	for _, f := range r.Findings {
		s.ByKind[f.Kind]++
		switch f.Severity {
		case Error:
			s.Errors++
		case Warning:
			s.Warnings++
		}
	}
	for _, d := range r.Destinations {
		s.Keys += d.KeyCount()
		if d.Compliant {
			s.Compliant++
		}
	}
	return s
}

// judge builds one destination's evidence and findings; nil when it is out of the period
// (created after it, or deleted before it).
func judge(p Period, s Subject, now time.Time) (*Destination, []Finding) {
	if !s.CreatedAt.IsZero() && !s.CreatedAt.Before(p.To) {
		return nil, nil
	}
	if !s.DeletedAt.IsZero() && s.DeletedAt.Before(p.From) {
		return nil, nil
	}
	d := &Destination{Name: s.Name, ID: s.ID, Location: s.Location, Source: s.Source, Schedule: s.Policy.Schedule,
		MaxAgeSeconds: int64(s.Policy.MaxAge / time.Second), maxAge: s.Policy.MaxAge, DeletedAt: s.DeletedAt.UTC()}
	f := findings{dest: s.Name}
	d.End = minTime(p.To, now)
	if !s.DeletedAt.IsZero() && s.DeletedAt.Before(d.End) {
		d.End = s.DeletedAt.UTC()
		f.add(Deleted, fmt.Sprintf("deleted at webhook.co; rotatord saw it gone from the list at %s and stopped rotating it", s.DeletedAt.UTC().Format(time.RFC3339)), s.DeletedAt, time.Time{}, "")
	}
	rec := recordOf(s)
	keys, source := s.keyTimeline(rec)
	s.sourceFindings(&f, p, source)
	d.takeKeys(p, s, keys, rec, &f)
	d.intervals(p, func(from, to time.Time, open bool) {
		what := "no new key for longer than max_age " + Days(s.Policy.MaxAge)
		if open {
			what += ", still none when the evaluation ended"
		}
		f.add(Overdue, what, from, to, "")
	})
	if drift, ok := driftAtEnd(s, rec, keys, d.End); ok {
		f.out = append(f.out, drift)
	}
	// Compliant: no finding is an error (a warning, such as a key minted elsewhere, is for
	// the auditor to weigh, and does not by itself break the policy).
	d.Compliant = !slices.ContainsFunc(f.out, func(f Finding) bool { return f.Severity == Error })
	d.packKeys()
	return d, f.out
}

// findings collects one destination's findings.
type findings struct {
	dest string
	out  []Finding
}

func (f *findings) add(kind, detail string, from, to time.Time, keyID string) {
	sev := severity[kind]
	if sev == "" {
		sev = Error
	}
	f.out = append(f.out, Finding{Kind: kind, Severity: sev, Destination: f.dest, From: from.UTC(), To: to.UTC(), KeyID: keyID, Detail: detail})
}

// sourceFindings says which of s's sources could not answer; source names what the keys
// shown come from then.
func (s Subject) sourceFindings(f *findings, p Period, source string) {
	switch {
	case s.KeysErr != "":
		f.add(Source, "webhook.co's key list could not be read ("+s.KeysErr+"); "+source, p.From, p.To, "")
	case s.Gone && s.DeletedAt.IsZero():
		f.add(Source, "webhook.co no longer has this destination and rotatord never saw it deleted; "+source, p.From, p.To, "")
	}
	if s.StoredErr != "" {
		f.add(Source, "what is stored could not be read: "+s.StoredErr, p.From, p.To, "")
	}
	if s.Stored != nil && s.Stored.History.Unreadable != "" {
		f.add(Source, "rotatord's record in the stored secret is unreadable ("+s.Stored.History.Unreadable+"); it counts from the stored key on", p.From, p.To, "")
	}
}

// takeKeys keeps the key before the period and the keys in it, and finds the keys minted
// outside rotatord, the lost ones, and those older than rotatord's record.
func (d *Destination) takeKeys(p Period, s Subject, keys []Key, rec record, f *findings) {
	incomplete := 0
	for i, k := range keys {
		if k.CreatedAt.Before(p.From) {
			before := keys[i] // a copy: the timeline is dropped once judged
			d.Before = &before
			continue
		}
		if !k.CreatedAt.Before(d.End) {
			break
		}
		d.Keys = append(d.Keys, k)
		switch k.Origin {
		case OriginOutside:
			f.add(Outside, "key minted at webhook.co that rotatord neither minted nor stored (a dashboard rotation, another tool)", k.CreatedAt, time.Time{}, k.ID)
		case OriginLost:
			f.add(Lost, "rotatord minted this key and its secret never reached "+s.Location+"; a later rotation replaced it", k.CreatedAt, time.Time{}, k.ID)
		case OriginUnknown:
			incomplete++
		}
	}
	if incomplete > 0 && !rec.unread {
		f.add(Source, fmt.Sprintf("%d key(s) in the period are older than rotatord's record, which is complete from %s: who minted them is not known", incomplete, rec.since.UTC().Format(time.RFC3339)), p.From, rec.since, "")
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b.UTC()
	}
	return a.UTC()
}

// record is rotatord's own record of a destination: the stored key and its history.
type record struct {
	entries map[string]sink.HistoryEntry
	newest  *sink.HistoryEntry // the key stored now
	since   time.Time          // complete from then on (zero: from the start)
	// unread is true when the sink could not be read: no key's origin is known.
	unread bool
}

func recordOf(s Subject) record {
	r := record{entries: map[string]sink.HistoryEntry{}, unread: s.StoredErr != "" && s.Stored == nil}
	if s.Stored == nil || s.Stored.KeyID == "" {
		return r
	}
	h := s.Stored.History
	r.since = h.Since
	if h.Unreadable != "" {
		r.since = s.Stored.RotatedAt
	}
	for _, e := range h.Entries {
		r.entries[e.KeyID] = e
	}
	cur := sink.HistoryEntry{KeyID: s.Stored.KeyID, At: s.Stored.RotatedAt, Version: s.Stored.Version}
	r.entries[cur.KeyID] = cur
	r.newest = &cur
	return r
}

// keyTimeline is every key known, oldest first, with its origin: the provider's list,
// or, when it cannot be had, rotatord's record alone (source says which).
func (s Subject) keyTimeline(rec record) (keys []Key, source string) {
	if s.KeysErr != "" || s.Gone {
		for _, e := range rec.entries {
			keys = append(keys, s.key(rec, e.KeyID, e.At, ""))
		}
		source = "the keys shown are rotatord's record only"
	} else {
		oldest, oldestAt := "", time.Time{}
		for _, k := range s.Keys {
			if oldest == "" || k.CreatedAt.Before(oldestAt) {
				oldest, oldestAt = k.ID, k.CreatedAt
			}
		}
		for _, k := range s.Keys {
			key := s.key(rec, k.ID, k.CreatedAt, string(k.Status))
			if k.ID == oldest && key.Origin == OriginOutside {
				key.Origin = OriginCreated // the key every destination is created with
			}
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b Key) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	return keys, source
}

// key describes one key from rotatord's record and the KV metadata.
func (s Subject) key(rec record, id string, created time.Time, status string) Key {
	k := Key{ID: id, CreatedAt: created.UTC(), Status: status}
	e, ok := rec.entries[id]
	switch {
	case ok && e.Lost:
		k.Origin = OriginLost
	case ok:
		k.Origin, k.StoredAt, k.Location, k.Version = OriginRotatord, e.At.UTC(), s.Location, string(e.Version)
		k.KVState = s.KV.State(e.Version)
	case rec.unread || !rec.since.IsZero() && created.Before(rec.since):
		k.Origin = OriginUnknown
	default:
		k.Origin = OriginOutside
	}
	return k
}

// intervals finds the longest interval between consecutive keys from the last key before
// the period to d.End, and calls overdue for each stretch past max_age.
func (d *Destination) intervals(p Period, overdue func(from, to time.Time, open bool)) {
	var times []time.Time
	if d.Before != nil {
		times = append(times, d.Before.CreatedAt)
	}
	for _, k := range d.Keys {
		times = append(times, k.CreatedAt)
	}
	if len(times) == 0 {
		return
	}
	times = append(times, d.End)
	for i := 1; i < len(times); i++ {
		from, to := times[i-1], times[i]
		if gap := to.Sub(from); gap > time.Duration(d.LongestSeconds)*time.Second {
			d.LongestSeconds, d.LongestFrom, d.LongestTo = int64(gap/time.Second), from, to
		}
		if d.maxAge > 0 && to.Sub(from) > d.maxAge {
			due := from.Add(d.maxAge)
			if due.Before(p.From) {
				due = p.From // overdue already when the period began
			}
			overdue(due, to, i == len(times)-1)
		}
	}
}

// driftAtEnd compares the provider's active key at the end with the key stored then.
func driftAtEnd(s Subject, rec record, keys []Key, end time.Time) (Finding, bool) {
	if s.KeysErr != "" || s.Gone || rec.unread || len(keys) == 0 {
		return Finding{}, false
	}
	var active *Key
	for i := range keys {
		if keys[i].CreatedAt.Before(end) {
			active = &keys[i]
		}
	}
	if active == nil {
		return Finding{}, false
	}
	var stored *sink.HistoryEntry
	for _, e := range rec.entries {
		if !e.Lost && !e.At.After(end.Add(settleGrace)) && (stored == nil || e.At.After(stored.At)) {
			e := e
			stored = &e
		}
	}
	f := Finding{Kind: Drift, Severity: Error, Destination: s.Name, From: end.UTC(), KeyID: active.ID}
	switch {
	case stored == nil && active.Origin == OriginCreated:
		f.Detail = "nothing stored at " + s.Location + ": rotatord never stored a key for this destination"
	case stored == nil:
		f.Detail = "nothing stored at " + s.Location + " while webhook.co's active key is " + active.ID
	case stored.KeyID != active.ID:
		f.Detail = fmt.Sprintf("stored key %s is not webhook.co's active key %s", stored.KeyID, active.ID)
	default:
		return Finding{}, false
	}
	return f, true
}

// settleGrace is how long after a key's minting its store may come and still count as
// held at the period's end: a rotation in flight at the boundary is not drift.
const settleGrace = time.Minute
