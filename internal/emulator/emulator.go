// Package emulator is an in-process webhook.co API server for rotatord's tests, demo and
// benchmarks, in the spirit of net/http/httptest. It follows ../shared/webhookco/ (the
// OpenAPI document and API-NOTES.md): rotation moves keys active → retiring → revoked and
// mints a new one shown exactly once; 401/403 are empty-bodied with a WWW-Authenticate
// challenge; scopes match exactly; 500 and unknown paths are text/plain. Faults can be
// queued per operation and destination, including ones that strike after a key was minted,
// and every request is recorded so tests can assert what rotatord sent.
package emulator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/webhookco"
)

// Scopes a webhook.co API key can hold.
const (
	ScopeEndpointsRead  = "endpoints:read"
	ScopeEndpointsWrite = "endpoints:write"
	ScopeAuditRead      = "audit:read"
)

// Operation names, as in package webhookco.
const (
	OpRotate             = "rotate"
	OpListSigningSecrets = "list_signing_secrets"
	OpListDestinations   = "list_destinations"
	OpCreateDestination  = "create_destination"
	OpDeleteDestination  = "delete_destination"
	OpEnableDestination  = "enable_destination"
	OpWhoami             = "whoami"
	OpAuditVerify        = "audit_verify"
)

// Options configure an Emulator.
type Options struct {
	// Now is the clock for createdAt and Retry-After dates; nil means time.Now.
	Now func() time.Time
	// RotateLatency is added to every rotate, like the real server's database work (about 36 ms).
	RotateLatency time.Duration
}

// Emulator is the fake webhook.co API. Its methods are safe for concurrent use.
type Emulator struct {
	now           func() time.Time
	rotateLatency time.Duration
	orgID         string

	mu         sync.Mutex
	keys       map[string][]string // API key → scopes
	dests      map[string]*destination
	order      []string             // destination ids in creation order
	faults     map[faultKey][]Fault // queued faults
	random     *randomFaults        // optional random faults
	records    []Request            // every request, in arrival order
	minted     []Minted             // every key minted by rotate
	inflight   map[string]int       // destination id → rotates in flight
	overlaps   int                  // rotates that began while another of the same destination was in flight
	listener   net.Listener         // set by Start
	server     *http.Server         // set by Start
	onRequest  func(Request)        // optional hook, called after each request is recorded
	auditBreak map[string]any       // set by BreakAuditChain: what POST /v1/audit/verify reports
	deliveries []Delivery           // every delivery attempt, oldest first
}

type destination struct {
	id        string
	url       string
	label     *string // nil: no label (the API's null)
	createdAt time.Time
	keys      []*signingKey // newest first
	// deletedAt is set by a delete: gone from the list, 404 to everything else.
	deletedAt *time.Time
	// disabledAt is set when the provider disabled the destination (Disable), until enabled.
	disabledAt *time.Time
}

type signingKey struct {
	id        string
	status    string
	createdAt time.Time
	secret    string
}

// Request is one recorded request. It never holds the API key or a secret.
type Request struct {
	At            time.Time
	Method        string
	Path          string
	Operation     string // "" for an unknown path
	DestinationID string
	UserAgent     string
	Status        int    // 0 when the connection was dropped
	MintedKeyID   string // set when this request minted a key
	Fault         string // the injected fault, if any
}

// Minted is one key minted by a rotate request.
type Minted struct {
	DestinationID string
	KeyID         string
	// Delivered is true when the 200 body with the secret was written to the connection.
	Delivered bool
	// Direct is true for RotateDirect (a rotation made outside rotatord).
	Direct bool
}

// New returns an Emulator with no keys and no destinations. It starts nothing.
func New(opts Options) *Emulator {
	e := &Emulator{
		now:           opts.Now,
		rotateLatency: opts.RotateLatency,
		keys:          map[string][]string{},
		dests:         map[string]*destination{},
		faults:        map[faultKey][]Fault{},
		inflight:      map[string]int{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.orgID = newUUID()
	return e
}

// Start serves the emulator on addr (use "127.0.0.1:0") and returns its base URL.
func (e *Emulator) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("emulator: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	e.mu.Lock()
	e.listener, e.server = ln, srv
	e.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the server started by Start.
func (e *Emulator) Close() error {
	e.mu.Lock()
	srv := e.server
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// OnRequest sets a hook called (outside the lock) after each request is recorded.
func (e *Emulator) OnRequest(f func(Request)) {
	e.mu.Lock()
	e.onRequest = f
	e.mu.Unlock()
}

// AddKey creates an API key with the given scopes and returns it. Like the real keys it is
// "whk_" + 43 random characters + a 6-character checksum.
func (e *Emulator) AddKey(scopes ...string) string {
	body := randomString(43)
	sum := fmt.Sprintf("%06x", crc32.ChecksumIEEE([]byte(body)))[:6]
	key := "whk_" + body + sum
	e.mu.Lock()
	e.keys[key] = append([]string{}, scopes...) // whoami answers [] for none, never null
	e.mu.Unlock()
	return key
}

// RevokeKey revokes an API key: every later request with it is answered 401.
func (e *Emulator) RevokeKey(key string) {
	e.mu.Lock()
	delete(e.keys, key)
	e.mu.Unlock()
}

// AddDestination creates a replay destination with one active signing key and returns its id.
func (e *Emulator) AddDestination(label string) string {
	return e.AddDestinationWithID(newUUID(), label)
}

// AddDestinationWithID is AddDestination with a chosen id (for fixed configs).
func (e *Emulator) AddDestinationWithID(id, label string) string {
	return e.addDestination(strings.ToLower(id), &label, "https://receiver.example/"+label).id
}

// AddDestinationAt creates a destination with the given label (nil: none) and URL.
func (e *Emulator) AddDestinationAt(label *string, url string) string {
	return e.addDestination(newUUID(), label, url).id
}

func (e *Emulator) addDestination(id string, label *string, url string) *destination {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := &destination{id: id, url: url, label: label, createdAt: e.now().UTC()}
	d.keys = []*signingKey{{id: newUUID(), status: "active", createdAt: d.createdAt, secret: newSigningSecret()}}
	e.dests[id] = d
	e.order = append(e.order, id)
	return d
}

// DeleteDestination soft-deletes a destination, as DELETE /v1/replay-destinations/{id}
// does: like the real server, it vanishes from the list (which filters deleted ones out), and
// every other call about it answers 404.
func (e *Emulator) DeleteDestination(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d, ok := e.dests[strings.ToLower(id)]; ok && d.deletedAt == nil {
		now := e.now().UTC()
		d.deletedAt = &now
	}
}

// PurgeDestination removes a destination from the organisation altogether: no longer listed.
func (e *Emulator) PurgeDestination(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id = strings.ToLower(id)
	delete(e.dests, id)
	for i, o := range e.order {
		if o == id {
			e.order = append(e.order[:i:i], e.order[i+1:]...)
			break
		}
	}
}

// DisableDestination marks a destination disabled by the provider (disabledAt set; still
// active), as the provider does after failed deliveries, until it is enabled again.
func (e *Emulator) DisableDestination(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d, ok := e.dests[strings.ToLower(id)]; ok {
		now := e.now().UTC()
		d.disabledAt = &now
	}
}

// live returns the destination id unless it is unknown or deleted; e.mu is held.
func (e *Emulator) live(id string) (*destination, bool) {
	d, ok := e.dests[id]
	if !ok || d.deletedAt != nil {
		return nil, false
	}
	return d, true
}

// RotateDirect rotates a destination as someone outside rotatord would (the dashboard, a
// script) and returns the new key id. It is recorded in Minted with Direct set.
func (e *Emulator) RotateDirect(destinationID string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.dests[strings.ToLower(destinationID)]
	if !ok {
		return "", fmt.Errorf("emulator: no destination %s", destinationID)
	}
	k := e.rotateLocked(d)
	e.minted = append(e.minted, Minted{DestinationID: d.id, KeyID: k.id, Direct: true})
	return k.id, nil
}

// Backdate gives a destination a past: created at created with its first key, then one
// rotation at each of rotations (ascending, after created), ids minted for those times like
// the real server's. It replaces the destination's keys; the newest is active, the one
// before it retiring, the rest revoked. It returns the keys oldest first, secrets included,
// so a test can store the ones "rotatord" stored. Nothing is recorded as a request or minted.
func (e *Emulator) Backdate(destinationID string, created time.Time, rotations []time.Time) ([]KeyInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.dests[strings.ToLower(destinationID)]
	if !ok {
		return nil, fmt.Errorf("emulator: no destination %s", destinationID)
	}
	times := append([]time.Time{created}, rotations...)
	for i := 1; i < len(times); i++ {
		if !times[i].After(times[i-1]) {
			return nil, fmt.Errorf("emulator: backdate: rotation %d (%s) is not after the one before it", i, times[i])
		}
	}
	d.createdAt = created.UTC()
	d.keys = make([]*signingKey, len(times))
	out := make([]KeyInfo, len(times))
	for i, t := range times {
		k := &signingKey{id: newUUIDAt(t), status: "revoked", createdAt: t.UTC(), secret: newSigningSecret()}
		switch len(times) - 1 - i {
		case 0:
			k.status = "active"
		case 1:
			k.status = "retiring"
		}
		d.keys[len(times)-1-i] = k
		out[i] = KeyInfo{ID: k.id, Status: k.status, Secret: k.secret, CreatedAt: k.createdAt}
	}
	return out, nil
}

// BreakAuditChain makes POST /v1/audit/verify report a break at seq.
func (e *Emulator) BreakAuditChain(seq int, kind, detail string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.auditBreak = map[string]any{"kind": kind, "seq": seq, "detail": detail}
}

// auditVerify is the answer of POST /v1/audit/verify: every recorded request is a row.
func (e *Emulator) auditVerify() map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.auditBreak != nil {
		return map[string]any{"ok": false, "rowsVerified": e.auditBreak["seq"], "break": e.auditBreak}
	}
	return map[string]any{"ok": true, "rowsVerified": len(e.records)}
}

// KeyInfo is a signing key as the emulator knows it, secret included (for assertions).
type KeyInfo struct {
	ID, Status, Secret string
	CreatedAt          time.Time
}

// Keys returns the destination's keys, newest first.
func (e *Emulator) Keys(destinationID string) []KeyInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.dests[strings.ToLower(destinationID)]
	if !ok {
		return nil
	}
	out := make([]KeyInfo, 0, len(d.keys))
	for _, k := range d.keys {
		out = append(out, KeyInfo{ID: k.id, Status: k.status, Secret: k.secret, CreatedAt: k.createdAt})
	}
	return out
}

// ActiveKeys returns the destination's active keys: one, unless concurrent rotations raced.
func (e *Emulator) ActiveKeys(destinationID string) []KeyInfo {
	var out []KeyInfo
	for _, k := range e.Keys(destinationID) {
		if k.Status == "active" {
			out = append(out, k)
		}
	}
	return out
}

// Requests returns a copy of the request record.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.records...)
}

// RequestsFor returns the recorded requests of one operation for one destination ("" = any).
func (e *Emulator) RequestsFor(op, destinationID string) []Request {
	var out []Request
	for _, r := range e.Requests() {
		if r.Operation == op && (destinationID == "" || r.DestinationID == strings.ToLower(destinationID)) {
			out = append(out, r)
		}
	}
	return out
}

// Minted returns every key minted so far, in order.
func (e *Emulator) Minted() []Minted {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Minted(nil), e.minted...)
}

// Overlaps counts rotate requests that began while another rotate of the same destination
// was in flight: the race API-NOTES warns leaves several active keys.
func (e *Emulator) Overlaps() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.overlaps
}

// rotateLocked performs the provider's rotation transaction on d.
func (e *Emulator) rotateLocked(d *destination) *signingKey {
	return e.rotateSeenLocked(d, nil)
}

// rotateSeenLocked is the rotation transaction as of the keys it read when it began (seen;
// nil: all of them). Like the real server's, it changes only what it read: a key another
// rotate committed meanwhile stays active beside the new one (API-NOTES: two rotates in
// flight at once can leave two active keys).
func (e *Emulator) rotateSeenLocked(d *destination, seen map[*signingKey]bool) *signingKey {
	for _, k := range d.keys {
		if seen != nil && !seen[k] {
			continue
		}
		switch k.status {
		case "retiring":
			k.status = "revoked"
		case "active":
			k.status = "retiring"
		}
	}
	k := &signingKey{id: newUUID(), status: "active", createdAt: e.now().UTC(), secret: newSigningSecret()}
	d.keys = append([]*signingKey{k}, d.keys...)
	return k
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The record keeps arrival order: the slot is taken now, the outcome filled in at the end.
	rec := Request{At: e.now(), Method: r.Method, Path: r.URL.Path, UserAgent: r.UserAgent()}
	slot := e.reserve(rec)
	defer func() { e.record(slot, rec) }()

	op, destID, ok := route(r.Method, r.URL.Path)
	if !ok {
		rec.Status = plain(w, http.StatusNotFound, "not found")
		return
	}
	rec.Operation, rec.DestinationID = op, strings.ToLower(destID)

	// Bearer check: 401 for a missing or unknown key, 403 for a missing scope; both empty-bodied.
	scopes, known := e.lookupKey(r.Header.Get("Authorization"))
	if !known {
		rec.Status = e.challenge(w, r, http.StatusUnauthorized, "invalid_token")
		return
	}
	if need := requiredScope(op); need != "" && !contains(scopes, need) {
		rec.Status = e.challenge(w, r, http.StatusForbidden, "insufficient_scope")
		return
	}
	if destID != "" && !webhookco.IsUUID(destID) {
		rec.Status = envelope(w, http.StatusBadRequest, "VALIDATION_ERROR", "destinationId must be a UUID")
		return
	}

	// Injected faults strike after authentication, like the real server's limiter and errors.
	if f, ok := e.nextFault(op, rec.DestinationID); ok {
		rec.Fault = f.String()
		if handled := e.applyFault(w, r, f, &rec); handled {
			return
		}
	}

	switch op {
	case OpWhoami:
		rec.Status = writeJSON(w, map[string]any{"orgId": e.orgID, "scopes": scopes})
	case OpListDestinations:
		rec.Status = writeJSON(w, map[string]any{"items": e.listDestinations()})
	case OpAuditVerify:
		rec.Status = writeJSON(w, e.auditVerify())
	case OpListDeliveries:
		body, status, msg := e.listDeliveries(r)
		if status != http.StatusOK {
			rec.Status = envelope(w, status, "VALIDATION_ERROR", msg)
			return
		}
		rec.Status = writeJSON(w, body)
	case OpListSigningSecrets:
		items, found := e.listKeys(rec.DestinationID)
		if !found {
			rec.Status = envelope(w, http.StatusNotFound, "NOT_FOUND", "replay destination not found")
			return
		}
		rec.Status = writeJSON(w, map[string]any{"items": items})
	case OpRotate:
		e.serveRotate(w, &rec, nil, nil)
	case OpCreateDestination:
		rec.Status = e.serveCreate(w, r)
	case OpDeleteDestination, OpEnableDestination:
		rec.Status = e.serveDestinationChange(w, op, rec.DestinationID)
	}
}

// serveRotate mints a key and writes it; before, when set, runs before the transaction
// (the rotate counts as in flight meanwhile); after, when set, replaces the normal 200 (a
// fault that strikes once the key exists) and returns the status written and whether the
// secret reached the connection.
func (e *Emulator) serveRotate(w http.ResponseWriter, rec *Request, before func(), after func(w http.ResponseWriter, keyID, secret string) (int, bool)) {
	e.mu.Lock()
	d, ok := e.live(rec.DestinationID)
	if !ok {
		e.mu.Unlock()
		rec.Status = envelope(w, http.StatusNotFound, "NOT_FOUND", "replay destination not found")
		return
	}
	if e.inflight[d.id] > 0 {
		e.overlaps++
	}
	e.inflight[d.id]++
	seen := make(map[*signingKey]bool, len(d.keys)) // what the transaction reads first
	for _, k := range d.keys {
		seen[k] = true
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.inflight[d.id]--
		e.mu.Unlock()
	}()
	if e.rotateLatency > 0 {
		time.Sleep(e.rotateLatency)
	}
	if before != nil {
		before()
	}

	e.mu.Lock()
	k := e.rotateSeenLocked(d, seen)
	idx := len(e.minted)
	e.minted = append(e.minted, Minted{DestinationID: d.id, KeyID: k.id})
	e.mu.Unlock()
	rec.MintedKeyID = k.id

	delivered := false
	if after != nil {
		rec.Status, delivered = after(w, k.id, k.secret)
	} else {
		rec.Status = writeJSON(w, map[string]string{"destinationId": d.id, "keyId": k.id, "signingSecret": k.secret})
		delivered = rec.Status == http.StatusOK
	}
	if delivered {
		e.mu.Lock()
		e.minted[idx].Delivered = true
		e.mu.Unlock()
	}
}

func (e *Emulator) listDestinations() []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	items := make([]map[string]any, 0, len(e.order))
	for _, id := range e.order {
		if d := e.dests[id]; d.deletedAt == nil { // the real list filters deleted ones out
			items = append(items, e.destinationJSON(d))
		}
	}
	return items
}

// destinationJSON is d as the API shows it (ReplayDestination); e.mu is held.
func (e *Emulator) destinationJSON(d *destination) map[string]any {
	status := "active" // every listed item is; a deleted one is not listed
	var label, disabledAt any
	if d.label != nil {
		label = *d.label
	}
	if d.disabledAt != nil {
		disabledAt = d.disabledAt.Format(apiTime)
	}
	return map[string]any{
		"id": d.id, "orgId": e.orgID, "url": d.url, "label": label, "status": status,
		"createdAt": d.createdAt.Format(apiTime), "lastValidatedAt": nil, "ordered": false, "disabledAt": disabledAt,
	}
}

// serveDestinationChange soft-deletes ({id, deletedAt}) or re-enables (the destination) one.
func (e *Emulator) serveDestinationChange(w http.ResponseWriter, op, id string) int {
	e.mu.Lock()
	d, ok := e.live(id)
	if !ok {
		e.mu.Unlock()
		return envelope(w, http.StatusNotFound, "NOT_FOUND", "replay destination not found")
	}
	now := e.now().UTC()
	var body map[string]any
	if op == OpDeleteDestination {
		d.deletedAt = &now
		body = map[string]any{"id": d.id, "deletedAt": now.Format(apiTime)}
	} else {
		d.disabledAt = nil
		body = e.destinationJSON(d)
	}
	e.mu.Unlock()
	return writeJSON(w, body)
}

// serveCreate registers a destination (POST /v1/replay-destinations): a public https URL
// and an optional label; the answer holds the first signing secret, shown this once.
func (e *Emulator) serveCreate(w http.ResponseWriter, r *http.Request) int {
	var req struct {
		URL   *string `json:"url"`
		Label *string `json:"label"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.URL == nil {
		return envelope(w, http.StatusBadRequest, "VALIDATION_ERROR", "body must be {url, label?}")
	}
	u, err := url.Parse(*req.URL)
	if err != nil || u.Scheme != "https" || u.User != nil || net.ParseIP(u.Hostname()) != nil || !strings.Contains(u.Hostname(), ".") || len(*req.URL) > 2048 {
		return envelope(w, http.StatusBadRequest, "VALIDATION_ERROR", "url must be a public HTTPS URL")
	}
	if req.Label != nil && (len(*req.Label) < 1 || len(*req.Label) > 200) {
		return envelope(w, http.StatusBadRequest, "VALIDATION_ERROR", "label must have 1 to 200 characters")
	}
	d := e.addDestination(newUUID(), req.Label, *req.URL)
	e.mu.Lock()
	body := e.destinationJSON(d)
	body["signingSecret"] = d.keys[0].secret
	e.mu.Unlock()
	return writeJSON(w, body)
}

func (e *Emulator) listKeys(id string) ([]map[string]string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.live(id)
	if !ok {
		return nil, false
	}
	items := make([]map[string]string, 0, len(d.keys))
	for _, k := range d.keys {
		items = append(items, map[string]string{"id": k.id, "status": k.status, "createdAt": k.createdAt.Format(apiTime)})
	}
	return items, true
}

func (e *Emulator) lookupKey(authorization string) ([]string, bool) {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	scopes, known := e.keys[token]
	return scopes, known
}

func (e *Emulator) challenge(w http.ResponseWriter, r *http.Request, status int, code string) int {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata="http://%s/.well-known/oauth-protected-resource", error=%q`, r.Host, code))
	w.WriteHeader(status)
	return status
}

// reserve appends rec to the record and returns its index.
func (e *Emulator) reserve(rec Request) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records = append(e.records, rec)
	return len(e.records) - 1
}

// record stores the finished request in its slot and calls the hook.
func (e *Emulator) record(slot int, rec Request) {
	e.mu.Lock()
	e.records[slot] = rec
	hook := e.onRequest
	e.mu.Unlock()
	if hook != nil {
		hook(rec)
	}
}

// route maps a method and path to an operation and the destination id in it.
func route(method, path string) (op, destID string, ok bool) {
	if op, ok := fixedRoutes[method+" "+path]; ok {
		return op, "", true
	}
	rest, found := strings.CutPrefix(path, "/v1/replay-destinations/")
	if !found {
		return "", "", false
	}
	id, tail, found := strings.Cut(rest, "/")
	switch {
	case id == "":
		return "", "", false
	case !found && method == http.MethodDelete:
		return OpDeleteDestination, id, true
	case !found:
		return "", "", false
	}
	op, ok = destinationRoutes[method+" "+tail]
	return op, id, ok
}

// fixedRoutes are the operations at a fixed path, by "METHOD path".
var fixedRoutes = map[string]string{
	"GET /v1/whoami":               OpWhoami,
	"GET /v1/deliveries":           OpListDeliveries,
	"POST /v1/audit/verify":        OpAuditVerify,
	"GET /v1/replay-destinations":  OpListDestinations,
	"POST /v1/replay-destinations": OpCreateDestination,
}

// destinationRoutes are the operations below /v1/replay-destinations/{id}/, by "METHOD tail".
var destinationRoutes = map[string]string{
	"POST signing-secret": OpRotate,
	"GET signing-secrets": OpListSigningSecrets,
	"POST enable":         OpEnableDestination,
}

func requiredScope(op string) string {
	switch op {
	case OpRotate, OpCreateDestination, OpDeleteDestination, OpEnableDestination:
		return ScopeEndpointsWrite
	case OpListSigningSecrets, OpListDestinations:
		return ScopeEndpointsRead
	case OpAuditVerify:
		return ScopeAuditRead
	case OpListDeliveries:
		return ScopeEventsRead
	}
	return "" // whoami: any valid key
}

func writeJSON(w http.ResponseWriter, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return 0
	}
	return http.StatusOK
}

func envelope(w http.ResponseWriter, status int, code, message string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
	return status
}

func plain(w http.ResponseWriter, status int, body string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
	return status
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) error {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return errors.New("emulator: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not a polite FIN
	}
	return conn.Close()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// apiTime is how the real server writes times: JavaScript's toISOString, milliseconds, Z.
const apiTime = "2006-01-02T15:04:05.000Z"

// newUUID mints an id as the real server does: UUID version 7 (a 48-bit Unix millisecond
// time, then random bits), so ids sort by creation time.
func newUUID() string { return newUUIDAt(time.Now()) }

// newUUIDAt mints a UUID version 7 for time t (a back-dated key).
func newUUIDAt(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func newSigningSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
