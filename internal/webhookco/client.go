// Package webhookco is rotatord's client for the three webhook.co operations it uses:
// rotate a replay destination's signing secret, list its signing-secret metadata, and
// whoami. It follows ../shared/webhookco/openapi.json as the wire contract: bodies are
// bounded and strictly validated, every non-200 becomes a typed *APIError, and a network
// failure says whether the request had been sent. It never retries: deciding whether a
// rotate may be repeated is the caller's job (see package rotate).
package webhookco

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/secret"
)

// maxBodyBytes bounds every response body read but the destination listing. The largest
// is a key listing (about 100 bytes a key); 1 MiB is far beyond any honest answer.
const maxBodyBytes = 1 << 20

// The destination listing is one unpaginated document of the whole organisation, read as
// a stream, one item at a time. An item is about 300 bytes with a short URL and label, and
// at most about 2.4 KB at the API's maximum lengths (URL 2,048, label 200 characters), so:
const (
	// MaxListingBytes bounds the whole listing: 100,000 destinations at the maximum lengths
	// (about 240 MB) fit, and an ordinary account of 100,000 is about 30 MB.
	MaxListingBytes = 256 << 20
	// MaxListingItemBytes bounds one item: the maximum lengths, every character escaped as
	// \uXXXX, fit. A larger item is skipped; the others still count.
	MaxListingItemBytes = 16 << 10
)

// UUIDPattern is the OpenAPI document's UUID pattern for ids and key ids: versions 1-8,
// variant 8-b, or the nil and max UUIDs. The API answers 400 for anything else. IsUUID
// matches it without a regular expression.
const UUIDPattern = `^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$`

// StatusLabels are the values StatusLabel gives, so a metric can create its series up front.
var StatusLabels = []string{"200", "400", "401", "403", "404", "409", "429", "500", "502", "503", "504", "2xx", "3xx", "4xx", "5xx", "other", "error"}

// StatusLabel is a status code as a metric label value: the codes the API documents (and
// a gateway's 502/503/504) as themselves, any other by its class. A server cannot mint new
// series by answering odd codes.
func StatusLabel(code int) string {
	switch code {
	case 200, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504:
		return strconv.Itoa(code)
	}
	if code >= 200 && code < 600 {
		return strconv.Itoa(code/100) + "xx"
	}
	return "other"
}

// IsUUID reports whether s matches UUIDPattern, the API's pattern for destination and key
// ids. It is asked of every listed destination and of each rotation's ids, so it scans the
// 36 bytes in a sixth of the regular expression's time (BenchmarkIsUUID).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	if version, variant := s[14], s[19]; '1' <= version && version <= '8' && strings.IndexByte("89abAB", variant) >= 0 {
		return true
	}
	return s == "00000000-0000-0000-0000-000000000000" || s == "ffffffff-ffff-ffff-ffff-ffffffffffff"
}

// Options configure a Client.
type Options struct {
	// BaseURL is the API origin, e.g. https://api.webhook.co. Required.
	BaseURL string
	// APIKey is the bearer key. Required.
	APIKey secret.Value
	// Version names rotatord's version in the User-Agent.
	Version string
	// Timeout bounds one request; zero means 30s.
	Timeout time.Duration
	// HTTPClient is the transport; nil means a fresh http.Client with a cloned default transport.
	HTTPClient *http.Client
	// CACert, when set, is a PEM file of the CAs that verify webhook.co's certificate instead
	// of the system's (a TLS-inspecting proxy's CA, a test server's). Only with HTTPClient nil.
	CACert string
	// MaxConns is how many requests may be in flight at once (scheduler.max_concurrent and
	// the background loops): that many connections are kept open for reuse, instead of
	// Go's default of two, so a burst does not open and close connections. Only with
	// HTTPClient nil; zero means the default.
	MaxConns int
	// Now is the clock used to turn an HTTP-date Retry-After into a wait; nil means time.Now.
	Now func() time.Time
	// Observe, when set, is called once per request with the operation and the HTTP status
	// code as text, or "error" when no response arrived.
	Observe func(operation, code string)
}

// Client calls webhook.co. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	key     secret.Value
	agent   string
	timeout time.Duration
	http    *http.Client
	now     func() time.Time
	observe func(operation, code string)
}

// New validates opts and returns a Client.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("webhookco: base URL %q: want an absolute http(s) URL", opts.BaseURL)
	}
	if opts.APIKey.IsZero() {
		return nil, errors.New("webhookco: no API key")
	}
	c := &Client{
		base:    u,
		key:     opts.APIKey,
		agent:   "rotatord/" + opts.Version + " (+https://github.com/rotatord/rotatord)",
		timeout: opts.Timeout,
		http:    opts.HTTPClient,
		now:     opts.Now,
		observe: opts.Observe,
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if opts.MaxConns > 0 {
			tr.MaxIdleConnsPerHost = opts.MaxConns
		}
		if opts.CACert != "" {
			pool, err := loadCAs(opts.CACert)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		c.http = &http.Client{Transport: tr}
	}
	// The API has no legitimate redirect, and following one would send the bearer key to
	// wherever it points (another scheme, another port): a 3xx is an unexpected status.
	noRedirects := *c.http
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &noRedirects
	if c.now == nil {
		c.now = time.Now
	}
	if c.observe == nil {
		c.observe = func(string, string) {}
	}
	return c, nil
}

// RotatedSecret is the 200 body of rotate: the only time the provider shows the secret.
type RotatedSecret struct {
	DestinationID string
	KeyID         string
	Secret        secret.Value
}

// KeyStatus is a signing key's state at the provider.
type KeyStatus string

// Key states: rotate makes the active key retiring, the retiring key revoked, and mints a new active key.
const (
	KeyActive   KeyStatus = "active"
	KeyRetiring KeyStatus = "retiring"
	KeyRevoked  KeyStatus = "revoked"
)

// SigningKey is one entry of a destination's key listing; it never holds the secret.
type SigningKey struct {
	ID        string    `json:"id"`
	Status    KeyStatus `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

// Identity is the whoami answer.
type Identity struct {
	OrgID  string   `json:"orgId"`
	UserID string   `json:"userId,omitempty"`
	Scopes []string `json:"scopes"`
}

// HasScope reports whether the key holds scope (matching is exact; write does not imply read).
func (id Identity) HasScope(scope string) bool {
	for _, s := range id.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Rotate mints a new signing secret for destinationID. It is not idempotent: never call it
// again after an error without first deciding, from ListSigningSecrets, that nothing was minted.
func (c *Client) Rotate(ctx context.Context, destinationID string) (RotatedSecret, error) {
	if !IsUUID(destinationID) {
		return RotatedSecret{}, fmt.Errorf("webhook.co %s: destination id %q is not a UUID the API accepts", OpRotate, destinationID)
	}
	body, err := c.do(ctx, OpRotate, http.MethodPost, "/v1/replay-destinations/"+destinationID+"/signing-secret")
	if err != nil {
		return RotatedSecret{}, err
	}
	var raw struct {
		DestinationID *string `json:"destinationId"`
		KeyID         *string `json:"keyId"`
		SigningSecret *string `json:"signingSecret"`
	}
	if err := decodeStrict(body, &raw); err != nil {
		return RotatedSecret{}, &ResponseError{Operation: OpRotate, Err: err}
	}
	switch {
	case raw.DestinationID == nil || raw.KeyID == nil || raw.SigningSecret == nil:
		return RotatedSecret{}, &ResponseError{Operation: OpRotate, Err: errors.New("destinationId, keyId and signingSecret are all required")}
	case !strings.EqualFold(*raw.DestinationID, destinationID):
		// The body holds a secret: none of its values is quoted, only their sizes.
		return RotatedSecret{}, &ResponseError{Operation: OpRotate, Err: fmt.Errorf("destinationId (%d bytes) differs from the destination asked for", len(*raw.DestinationID))}
	case !IsUUID(*raw.KeyID):
		return RotatedSecret{}, &ResponseError{Operation: OpRotate, Err: fmt.Errorf("keyId is not a UUID (%d bytes)", len(*raw.KeyID))}
	case strings.TrimSpace(*raw.SigningSecret) == "":
		return RotatedSecret{}, &ResponseError{Operation: OpRotate, Err: errors.New("signingSecret is empty")}
	}
	return RotatedSecret{DestinationID: destinationID, KeyID: strings.ToLower(*raw.KeyID), Secret: secret.New(*raw.SigningSecret)}, nil
}

// ListSigningSecrets returns the destination's keys, newest first.
func (c *Client) ListSigningSecrets(ctx context.Context, destinationID string) ([]SigningKey, error) {
	if !IsUUID(destinationID) {
		return nil, fmt.Errorf("webhook.co %s: destination id %q is not a UUID the API accepts", OpListSigningSecrets, destinationID)
	}
	body, err := c.do(ctx, OpListSigningSecrets, http.MethodGet, "/v1/replay-destinations/"+destinationID+"/signing-secrets")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items *[]SigningKey `json:"items"`
	}
	if err := decodeStrict(body, &list); err != nil {
		return nil, &ResponseError{Operation: OpListSigningSecrets, Err: err}
	}
	if list.Items == nil {
		return nil, &ResponseError{Operation: OpListSigningSecrets, Err: errors.New("items is required")}
	}
	for i, k := range *list.Items {
		if !IsUUID(k.ID) {
			return nil, &ResponseError{Operation: OpListSigningSecrets, Err: fmt.Errorf("items[%d].id %s is not a UUID", i, quoteShort(k.ID))}
		}
		switch k.Status {
		case KeyActive, KeyRetiring, KeyRevoked:
		default:
			return nil, &ResponseError{Operation: OpListSigningSecrets, Err: fmt.Errorf("items[%d].status %s is not active, retiring or revoked", i, quoteShort(string(k.Status)))}
		}
		(*list.Items)[i].ID = strings.ToLower(k.ID)
	}
	return *list.Items, nil
}

// Destination statuses in the provider's list: a deleted destination is revoked.
const (
	DestinationActive  = "active"
	DestinationRevoked = "revoked"
)

// ReplayDestination is one entry of the provider's list of the organisation's replay
// destinations (GET /v1/replay-destinations). It holds no secret.
type ReplayDestination struct {
	ID string `json:"id"`
	// Label is nil when the destination has none.
	Label  *string `json:"label"`
	URL    string  `json:"url"`
	Status string  `json:"status"`
	// CreatedAt and DisabledAt (nil unless the provider disabled it) are as the API says.
	CreatedAt  time.Time  `json:"createdAt"`
	DisabledAt *time.Time `json:"disabledAt"`
}

// LabelOrEmpty is the destination's label, or "" when it has none.
func (d ReplayDestination) LabelOrEmpty() string {
	if d.Label == nil {
		return ""
	}
	return *d.Label
}

// Listing is the provider's list of the organisation's destinations, as read.
type Listing struct {
	Destinations []ReplayDestination
	// Skipped says which items were left out, and why: an item the API could not have sent
	// (larger than MaxListingItemBytes, an id that is not a UUID, a status it does not
	// know, a second item with the same id). The others still count, so no one destination
	// can stop the discovery of the rest.
	Skipped []string
}

// ListDestinations returns every replay destination of the key's organisation (the whole
// list: the API has no pagination), read as a stream. It needs the scope endpoints:read.
func (c *Client) ListDestinations(ctx context.Context) (Listing, error) {
	var listing Listing
	err := c.stream(ctx, OpListDestinations, "/v1/replay-destinations", MaxListingBytes, func(r io.Reader) error {
		var err error
		listing, err = DecodeDestinations(r)
		return err
	})
	return listing, err
}

// CloseIdleConnections closes the connections kept open for reuse (a client made for one
// request lets its connection go when that request is over).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// DecodeDestinations reads the provider's answer to GET /v1/replay-destinations (also a
// listing saved to a file, for `rotatord plan --listing`), one item at a time: the
// document must be {"items": [...]}; an item that is not a destination the API could have
// sent is skipped and said in Listing.Skipped.
func DecodeDestinations(r io.Reader) (Listing, error) {
	fail := func(err error) (Listing, error) {
		return Listing{}, &ResponseError{Operation: OpListDestinations, Err: err}
	}
	src := &readErr{r: r}
	dec := json.NewDecoder(src)
	if err := expectDelim(dec, '{'); err != nil {
		return fail(err)
	}
	var out Listing
	seenItems := false
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(fmt.Errorf("decode JSON: %w", scrubJSONError(err)))
		}
		if key, _ := tok.(string); key != "items" || seenItems {
			return fail(errors.New("decode JSON: the document holds more than one items array"))
		}
		seenItems = true
		if err := expectDelim(dec, '['); err != nil {
			return fail(err)
		}
		// Each item is read once, into one destination reused for every item: what is kept
		// is the copy appended. The decoder reads a whole value before it decodes it, so an
		// item that is not a destination (a field of another type) is consumed whole and
		// skipped; only a document that is not JSON, or a body that fails, stops the listing.
		var item ReplayDestination
		for i := 0; dec.More(); i++ {
			from := dec.InputOffset()
			item = ReplayDestination{}
			into := &item // null sets it to nil: an item that is not an object
			err := dec.Decode(&into)
			if err != nil && (src.err != nil || isSyntaxError(err)) {
				return fail(fmt.Errorf("decode JSON: items[%d]: %w", i, scrubJSONError(err)))
			}
			// The item's bytes: after the previous item (or the '['), less the comma; space
			// between the comma and the item counts, and compact JSON has none.
			size := dec.InputOffset() - from
			if i > 0 {
				size--
			}
			d, why := checkDestination(into, size, err)
			if why == "" && seen[d.ID] {
				why = "a second item with id " + d.ID
			}
			if why != "" {
				out.Skipped = append(out.Skipped, fmt.Sprintf("items[%d]: %s", i, why))
				continue
			}
			seen[d.ID] = true
			out.Destinations = append(out.Destinations, d)
		}
		if err := expectDelim(dec, ']'); err != nil {
			return fail(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail(err)
	}
	if !seenItems {
		return fail(errors.New("items is required"))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(errors.New("decode JSON: trailing data after the object"))
	}
	if out.Destinations == nil {
		out.Destinations = []ReplayDestination{}
	}
	return out, nil
}

// checkDestination says why one listed item, of size bytes, cannot be one the API sent (its
// decoding: d, nil for null, and err); "" when it can. Fields the document does not name
// are ignored, never quoted.
func checkDestination(d *ReplayDestination, size int64, err error) (ReplayDestination, string) {
	var typ *json.UnmarshalTypeError
	switch {
	case size > MaxListingItemBytes:
		return ReplayDestination{}, fmt.Sprintf("%d bytes, more than %d", size, MaxListingItemBytes)
	case d == nil || errors.As(err, &typ) && typ.Field == "":
		return ReplayDestination{}, "not an object"
	case err != nil:
		return ReplayDestination{}, "not a destination: " + scrubJSONError(err).Error()
	case !IsUUID(d.ID):
		return ReplayDestination{}, fmt.Sprintf("id %s is not a UUID", quoteShort(d.ID))
	case d.Status != DestinationActive && d.Status != DestinationRevoked:
		return ReplayDestination{}, fmt.Sprintf("status %s is not active or revoked", quoteShort(d.Status))
	}
	out := *d
	out.ID = strings.ToLower(out.ID)
	return out, ""
}

// readErr remembers the error its reader gave: the listing's own failure, not its JSON's.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// isSyntaxError says whether err is the decoder's finding that the document is not JSON
// (or ends early): nothing after it can be read.
func isSyntaxError(err error) bool {
	var syn *json.SyntaxError
	return errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// quoteShort quotes at most 40 bytes of a provider's string, with control characters escaped.
func quoteShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}

// expectDelim reads the next token and checks it is want.
func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode JSON: %w", scrubJSONError(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("decode JSON: want %q at byte %d", string(want), dec.InputOffset())
	}
	return nil
}

// ActiveKeyID returns the id of the active key in keys, or "" when there is none.
func ActiveKeyID(keys []SigningKey) string {
	for _, k := range keys {
		if k.Status == KeyActive {
			return k.ID
		}
	}
	return ""
}

// Whoami returns the key's organisation and scopes.
func (c *Client) Whoami(ctx context.Context) (Identity, error) {
	body, err := c.do(ctx, OpWhoami, http.MethodGet, "/v1/whoami")
	if err != nil {
		return Identity{}, err
	}
	var raw struct {
		OrgID        string          `json:"orgId"`
		UserID       string          `json:"userId"`
		Scopes       *[]string       `json:"scopes"`
		Organization json.RawMessage `json:"organization"`
	}
	if err := decodeStrict(body, &raw); err != nil {
		return Identity{}, &ResponseError{Operation: OpWhoami, Err: err}
	}
	if raw.OrgID == "" || raw.Scopes == nil {
		return Identity{}, &ResponseError{Operation: OpWhoami, Err: errors.New("orgId and scopes are required")}
	}
	return Identity{OrgID: raw.OrgID, UserID: raw.UserID, Scopes: *raw.Scopes}, nil
}

// Delivery is one attempt in the provider's delivery log. It holds no payload.
type Delivery struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	StatusCode *int      `json:"statusCode"`
	CreatedAt  time.Time `json:"createdAt"`
}

// ListDeliveries returns the newest delivery attempts to a destination (at most limit,
// 1-200), newest first. It needs the scope events:read.
func (c *Client) ListDeliveries(ctx context.Context, destinationID string, limit int) ([]Delivery, error) {
	if !IsUUID(destinationID) {
		return nil, fmt.Errorf("webhook.co %s: destination id %q is not a UUID the API accepts", OpListDeliveries, destinationID)
	}
	body, err := c.do(ctx, OpListDeliveries, http.MethodGet, fmt.Sprintf("/v1/deliveries?destinationId=%s&limit=%d", destinationID, min(max(limit, 1), 200)))
	if err != nil {
		return nil, err
	}
	var page struct {
		Items *[]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil || page.Items == nil {
		return nil, &ResponseError{Operation: OpListDeliveries, Err: errors.New("want {items: [...]}")}
	}
	out := make([]Delivery, 0, len(*page.Items))
	for i, raw := range *page.Items {
		var d Delivery
		if err := json.Unmarshal(raw, &d); err != nil || d.ID == "" || d.CreatedAt.IsZero() {
			return nil, &ResponseError{Operation: OpListDeliveries, Err: fmt.Errorf("items[%d]: want id, statusCode and createdAt", i)}
		}
		out = append(out, d)
	}
	return out, nil
}

// AuditCheck is the provider's check of its tamper-evident audit chain.
type AuditCheck struct {
	OK           bool `json:"ok"`
	RowsVerified int  `json:"rowsVerified"`
	Break        *struct {
		Kind   string `json:"kind"`
		Seq    int    `json:"seq"`
		Detail string `json:"detail"`
	} `json:"break,omitempty"`
}

// AuditVerify asks the provider to check the organisation's audit chain (scope audit:read).
func (c *Client) AuditVerify(ctx context.Context) (AuditCheck, error) {
	body, err := c.do(ctx, OpAuditVerify, http.MethodPost, "/v1/audit/verify")
	if err != nil {
		return AuditCheck{}, err
	}
	var out AuditCheck
	if err := decodeStrict(body, &out); err != nil {
		return AuditCheck{}, &ResponseError{Operation: OpAuditVerify, Err: err}
	}
	if !out.OK && out.Break == nil {
		return AuditCheck{}, &ResponseError{Operation: OpAuditVerify, Err: errors.New("ok is false and no break is named")}
	}
	return out, nil
}

// do sends one request and returns the body of a 200, or a typed error.
func (c *Client) do(ctx context.Context, op, method, path string) ([]byte, error) {
	var body []byte
	err := c.send(ctx, op, method, path, func(resp *http.Response) error {
		b, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
		switch {
		case readErr != nil:
			return &ResponseError{Operation: op, Err: fmt.Errorf("read body: %w", readErr)}
		case len(b) > maxBodyBytes:
			return &ResponseError{Operation: op, Err: fmt.Errorf("body exceeds %d bytes", maxBodyBytes)}
		}
		body = b
		return nil
	})
	return body, err
}

// stream sends a GET and hands the body of a 200, at most limit bytes of it, to read.
func (c *Client) stream(ctx context.Context, op, path string, limit int64, read func(io.Reader) error) error {
	return c.send(ctx, op, http.MethodGet, path, func(resp *http.Response) error {
		lr := &io.LimitedReader{R: resp.Body, N: limit + 1}
		err := read(lr)
		if lr.N <= 0 {
			return &ResponseError{Operation: op, Err: fmt.Errorf("body exceeds %d bytes", limit)}
		}
		var re *ResponseError
		if err != nil && !errors.As(err, &re) {
			err = &ResponseError{Operation: op, Err: err}
		}
		return err
	})
}

// send sends one request; a 200 of application/json goes to ok, anything else is a typed error.
func (c *Client) send(ctx context.Context, op, method, path string, ok func(*http.Response) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// Record whether the whole request was written: a failure before that point means the
	// server cannot have acted on it.
	var sent bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { sent = sent || info.Err == nil },
	})
	p, query, _ := strings.Cut(path, "?")
	u := c.base.JoinPath(p)
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("webhook.co %s: build request: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)

	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(op, "error")
		return &TransportError{Operation: op, Sent: sent, Err: ScrubURLError(err)}
	}
	defer resp.Body.Close()
	c.observe(op, StatusLabel(resp.StatusCode))

	if resp.StatusCode == http.StatusOK {
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
			return &ResponseError{Operation: op, Err: fmt.Errorf("Content-Type %s, want application/json", quoteShort(resp.Header.Get("Content-Type")))}
		}
		return ok(resp)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	return c.apiError(op, resp, body)
}

// apiError turns a non-200 response into an *APIError.
func (c *Client) apiError(op string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Operation: op, Status: resp.StatusCode, WWWAuthenticate: resp.Header.Get("WWW-Authenticate")}
	if len(body) > maxBodyBytes {
		body = body[:maxBodyBytes]
	}
	var env struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	switch mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); {
	case resp.StatusCode < 400 || bytes.Contains(body, []byte("whsec_")):
		// Not an error answer (a 201, a 3xx): its body may hold a secret. Its size only.
		e.Message = fmt.Sprintf("(a %d-byte body, not shown: it may hold a secret)", len(body))
	case mt == "application/json" && json.Unmarshal(body, &env) == nil:
		e.Code, e.Message = env.Error, env.Message
	default:
		e.Message = strings.TrimSpace(string(body))
	}
	e.Message = printable(e.Message, 200)
	e.WWWAuthenticate = printable(e.WWWAuthenticate, 300)
	e.RetryAfter, e.HasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	return e
}

// parseRetryAfter reads delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode JSON: %w", scrubJSONError(err))
	}
	if dec.More() {
		return errors.New("decode JSON: trailing data after the object")
	}
	return nil
}

// scrubJSONError keeps a decoder error from quoting body bytes, which could be a secret.
func scrubJSONError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("syntax error at byte %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("field %q: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("body ends early")
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return errors.New("an unknown field (its name is not shown: it could be a secret)")
	}
	return err
}

// ScrubURLError drops the request URL from a *url.Error (the caller names the URL itself,
// and a consumer's may carry a query) while keeping the cause for errors.Is.
func ScrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// printable truncates s and replaces control characters, so a hostile body cannot forge log lines.
func printable(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhookco: api.ca_cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("webhookco: api.ca_cert %s: no PEM certificate in it", path)
	}
	return pool, nil
}
