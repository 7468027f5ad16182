package webhookco_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/webhookco"
)

func startEmulator(t *testing.T) (*emulator.Emulator, string) {
	t.Helper()
	em := emulator.New(emulator.Options{})
	url, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	return em, url
}

func newClient(t *testing.T, base, key string) *webhookco.Client {
	t.Helper()
	c, err := webhookco.New(webhookco.Options{BaseURL: base, APIKey: secret.New(key), Version: "1.2.3", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRotateAndList(t *testing.T) {
	em, url := startEmulator(t)
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	dest := em.AddDestination("billing")
	c := newClient(t, url, key)
	ctx := context.Background()

	before, err := c.ListSigningSecrets(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Rotate(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	active := em.ActiveKeys(dest)
	if len(active) != 1 || got.KeyID != active[0].ID || got.Secret.Reveal() != active[0].Secret || got.DestinationID != dest {
		t.Fatalf("Rotate = %+v, emulator's active keys %+v", got, active)
	}
	after, err := c.ListSigningSecrets(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	if webhookco.ActiveKeyID(after) != got.KeyID || len(after) != 2 || after[1].ID != webhookco.ActiveKeyID(before) || after[1].Status != webhookco.KeyRetiring {
		t.Errorf("listing after rotate = %+v", after)
	}
	id, err := c.Whoami(ctx)
	if err != nil || !id.HasScope(emulator.ScopeEndpointsWrite) || id.HasScope("events:read") {
		t.Errorf("Whoami = %+v, %v", id, err)
	}
	if ua := em.Requests()[0].UserAgent; !strings.HasPrefix(ua, "rotatord/1.2.3") {
		t.Errorf("User-Agent = %q, want rotatord/1.2.3…", ua)
	}
}

func TestTypedErrors(t *testing.T) {
	em, url := startEmulator(t)
	writeOnly := em.AddKey(emulator.ScopeEndpointsWrite)
	full := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	dest := em.AddDestination("billing")
	ctx := context.Background()

	tests := []struct {
		name       string
		key        string
		setup      func()
		call       func(c *webhookco.Client) error
		status     int
		code       string
		challenge  string
		retryAfter time.Duration
		hasRA      bool
	}{
		{name: "bad key", key: "whk_nope", call: func(c *webhookco.Client) error { _, err := c.Rotate(ctx, dest); return err },
			status: 401, challenge: `error="invalid_token"`},
		{name: "missing scope", key: writeOnly, call: func(c *webhookco.Client) error { _, err := c.ListSigningSecrets(ctx, dest); return err },
			status: 403, challenge: `error="insufficient_scope"`},
		{name: "unknown destination", key: full, call: func(c *webhookco.Client) error {
			_, err := c.Rotate(ctx, "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b")
			return err
		}, status: 404, code: "NOT_FOUND"},
		{name: "429 with Retry-After", key: full, setup: func() {
			em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "7"})
		}, call: func(c *webhookco.Client) error { _, err := c.Rotate(ctx, dest); return err },
			status: 429, code: "RATE_LIMITED", retryAfter: 7 * time.Second, hasRA: true},
		{name: "429 without Retry-After", key: full, setup: func() {
			em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.RateLimit})
		}, call: func(c *webhookco.Client) error { _, err := c.Rotate(ctx, dest); return err },
			status: 429, code: "RATE_LIMITED"},
		{name: "plain 500", key: full, setup: func() {
			em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.InternalError})
		}, call: func(c *webhookco.Client) error { _, err := c.Rotate(ctx, dest); return err },
			status: 500},
		{name: "409 paused", key: full, setup: func() {
			em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.Status, Status: 409, Code: "ENDPOINT_PAUSED"})
		}, call: func(c *webhookco.Client) error { _, err := c.Rotate(ctx, dest); return err },
			status: 409, code: "ENDPOINT_PAUSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			err := tt.call(newClient(t, url, tt.key))
			var ae *webhookco.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error = %v, want *APIError", err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || !strings.Contains(ae.WWWAuthenticate, tt.challenge) ||
				ae.RetryAfter != tt.retryAfter || ae.HasRetryAfter != tt.hasRA {
				t.Errorf("got %+v", ae)
			}
			if tt.status == 403 && !strings.Contains(err.Error(), "lacks the scope endpoints:read that list_signing_secrets needs") {
				t.Errorf("403 error %q does not name the scope the operation needs", err)
			}
			if tt.status == 500 && ae.Message != "internal error" {
				t.Errorf("500 message = %q, want the text/plain body", ae.Message)
			}
			if strings.Contains(err.Error(), tt.key) && tt.key != "" {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
}

func TestAmbiguousAndUnsent(t *testing.T) {
	em, url := startEmulator(t)
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	dest := em.AddDestination("billing")
	c := newClient(t, url, key)
	ctx := context.Background()

	em.InjectFaults(emulator.OpRotate, emulator.Fault{Kind: emulator.DropAfterMint}, emulator.Fault{Kind: emulator.MalformedAfterMint})
	_, err := c.Rotate(ctx, dest)
	var te *webhookco.TransportError
	if !errors.As(err, &te) || !te.Sent {
		t.Fatalf("dropped after mint: error = %v, want a TransportError with Sent", err)
	}
	_, err = c.Rotate(ctx, dest)
	if !errors.Is(err, webhookco.ErrInvalidResponse) {
		t.Fatalf("malformed 200: error = %v, want ErrInvalidResponse", err)
	}
	for _, m := range em.Minted() {
		if m.Delivered {
			t.Errorf("minted %+v marked delivered", m)
		}
	}

	// A closed port: nothing was sent.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, err = newClient(t, "http://"+addr, key).Rotate(ctx, dest)
	if !errors.As(err, &te) || te.Sent {
		t.Fatalf("refused connection: error = %v, want a TransportError without Sent", err)
	}
}

// TestContractViolations covers 200 bodies the emulator never sends.
func TestContractViolations(t *testing.T) {
	const dest = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
	const key = "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b"
	tests := []struct{ name, ctype, body, want string }{
		{"other destination", "application/json", `{"destinationId":"5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d","keyId":"` + key + `","signingSecret":"whsec_x"}`, "differs from the destination"},
		{"bad key id", "application/json", `{"destinationId":"` + dest + `","keyId":"k1","signingSecret":"whsec_x"}`, `keyId is not a UUID (2 bytes)`},
		{"secret as key id", "application/json", `{"destinationId":"` + dest + `","keyId":"whsec_SECRETBYTES","signingSecret":"whsec_x"}`, `keyId is not a UUID`},
		{"secret as destination", "application/json", `{"destinationId":"whsec_SECRETBYTES","keyId":"` + key + `","signingSecret":"whsec_x"}`, "differs from the destination"},
		{"secret as field name", "application/json", `{"destinationId":"` + dest + `","keyId":"` + key + `","signingSecret":"whsec_x","whsec_SECRETBYTES":1}`, "unknown field"},
		{"empty secret", "application/json", `{"destinationId":"` + dest + `","keyId":"` + key + `","signingSecret":""}`, "signingSecret is empty"},
		{"missing secret", "application/json", `{"destinationId":"` + dest + `","keyId":"` + key + `"}`, "all required"},
		{"extra field", "application/json", `{"destinationId":"` + dest + `","keyId":"` + key + `","signingSecret":"whsec_x","extra":1}`, "unknown field"},
		{"html", "text/html", `<html>`, "want application/json"},
		{"too big", "application/json", `{"destinationId":"` + strings.Repeat("a", 2<<20) + `"}`, "exceeds"},
		{"trailing", "application/json", `{"destinationId":"` + dest + `","keyId":"` + key + `","signingSecret":"whsec_SECRETBYTES"} {}`, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			_, err := newClient(t, srv.URL, "whk_k").Rotate(context.Background(), dest)
			if !errors.Is(err, webhookco.ErrInvalidResponse) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want ErrInvalidResponse containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "whsec_") {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	c, err := webhookco.New(webhookco.Options{BaseURL: srv.URL, APIKey: secret.New("whk_k"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Whoami(context.Background())
	var ae *webhookco.APIError
	if !errors.As(err, &ae) || !ae.HasRetryAfter || ae.RetryAfter != 90*time.Second {
		t.Fatalf("error = %#v, want Retry-After 90s", err)
	}
}

// TestRedirectIsNotFollowed: a 3xx (here to plain http on another port) is an unexpected
// status; the API key never reaches the redirect's target.
func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = leaked || r.Header.Get("Authorization") != ""
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	_, err := newClient(t, redirector.URL, "whk_"+strings.Repeat("k", 49)).Rotate(context.Background(), "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")
	var ae *webhookco.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTemporaryRedirect {
		t.Errorf("err = %v, want an *APIError with status 307", err)
	}
	if leaked {
		t.Error("the redirect was followed with the API key")
	}
}

// TestUnexpectedAnswerNeverEchoesItsBody: a rotate answered 201 text/plain with the secret
// in its body gives an error that holds the body's size, never the body.
func TestUnexpectedAnswerNeverEchoesItsBody(t *testing.T) {
	const leaked = "whsec_c2VjcmV0LXRoYXQtbXVzdC1ub3QtYmUtbG9nZ2VkLWV2ZXI="
	for _, status := range []int{http.StatusCreated, http.StatusBadGateway} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(leaked))
		}))
		_, err := newClient(t, srv.URL, "whk_"+strings.Repeat("k", 49)).Rotate(context.Background(), "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")
		srv.Close()
		if err == nil || strings.Contains(err.Error(), "whsec_") || !strings.Contains(err.Error(), "-byte body, not shown") {
			t.Errorf("status %d: err = %v, want the body's size and never the secret", status, err)
		}
	}
}

// TestCACert: with api.ca_cert naming the CA of webhook.co's certificate (here the emulator
// behind TLS), the client verifies against it; without it the same server is refused, and a
// file without a certificate is an error naming api.ca_cert.
func TestCACert(t *testing.T) {
	em := emulator.New(emulator.Options{})
	srv := httptest.NewTLSServer(em)
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	key := secret.New(em.AddKey("endpoints:read", "endpoints:write"))
	opts := webhookco.Options{BaseURL: srv.URL, APIKey: key, Version: "1", Timeout: 5 * time.Second, CACert: caFile}
	c, err := webhookco.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Whoami(context.Background()); err != nil {
		t.Errorf("whoami with api.ca_cert: %v", err)
	}

	opts.CACert = ""
	plain, err := webhookco.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Whoami(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("whoami without the CA: err = %v, want a certificate error", err)
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("(the CA)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.CACert = bad
	if _, err := webhookco.New(opts); err == nil || !strings.Contains(err.Error(), "api.ca_cert "+bad+": no PEM certificate") {
		t.Errorf("bad CA file: err = %v", err)
	}
}

// TestListDestinations: the organisation's destinations as the OpenAPI document shapes them,
// through their lifecycle at the emulator: created over the API (with its one-time secret),
// unlabelled (label null), disabled by the provider (disabledAt), deleted (gone from the
// list, 404 for its keys) and purged (no longer listed).
func TestListDestinations(t *testing.T) {
	em, base := startEmulator(t)
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	c := newClient(t, base, key)
	ctx := context.Background()

	labelled := em.AddDestination("billing")
	unlabelled := em.AddDestinationAt(nil, "https://hooks.example.com/x")
	disabled := em.AddDestination("orders")
	em.DisableDestination(disabled)

	req, _ := http.NewRequest(http.MethodPost, base+"/v1/replay-destinations", strings.NewReader(`{"url":"https://new.example.com/hook","label":"created"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(fmt.Sprint(created["signingSecret"]), "whsec_") || created["label"] != "created" {
		t.Fatalf("create: %d %v", resp.StatusCode, created["label"])
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/v1/replay-destinations", strings.NewReader(`{"url":"http://10.0.0.1/hook"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("create with a private http URL: %v %v", resp.StatusCode, err)
	}

	deleted := em.AddDestination("gone-soon")
	req, _ = http.NewRequest(http.MethodDelete, base+"/v1/replay-destinations/"+deleted, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete: %v %v", resp.StatusCode, err)
	}
	purged := em.AddDestination("purged")
	em.PurgeDestination(purged)

	listing, err := c.ListDestinations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list := listing.Destinations
	byID := map[string]webhookco.ReplayDestination{}
	for _, d := range list {
		byID[d.ID] = d
	}
	if len(list) != 4 {
		t.Errorf("%d listed, want 4: %+v", len(list), list)
	}
	if d := byID[labelled]; d.LabelOrEmpty() != "billing" || d.Status != webhookco.DestinationActive || d.DisabledAt != nil {
		t.Errorf("labelled: %+v", d)
	}
	if d := byID[unlabelled]; d.Label != nil || d.URL != "https://hooks.example.com/x" {
		t.Errorf("unlabelled: %+v", d)
	}
	if d := byID[disabled]; d.DisabledAt == nil || d.Status != webhookco.DestinationActive {
		t.Errorf("disabled: %+v", d)
	}
	// Deleted: gone from the list, as the real server filters deleted ones out.
	if d, listed := byID[deleted]; listed {
		t.Errorf("a deleted destination is listed: %+v", d)
	}
	for _, d := range list {
		if d.Status != webhookco.DestinationActive {
			t.Errorf("listed with status %q: every listed item is active", d.Status)
		}
	}
	if _, listed := byID[purged]; listed {
		t.Error("a purged destination is listed")
	}
	var ae *webhookco.APIError
	if _, err := c.ListSigningSecrets(ctx, deleted); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("keys of a deleted destination: %v, want 404", err)
	}
	if _, err := c.Rotate(ctx, deleted); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("rotate a deleted destination: %v, want 404", err)
	}

	// A write-only key may not list (403), as the API notes say.
	if _, err := newClient(t, base, em.AddKey(emulator.ScopeEndpointsWrite)).ListDestinations(ctx); !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("list with a write-only key: %v", err)
	}
	// Strict about the document: anything but {"items": [...]} is a contract violation.
	for _, body := range []string{`{"items":[],"next":"x"}`, `{}`, `{"items":[]} {}`, `[]`, `{"items":{}}`,
		`{"items":[{"id":"x"},{"id":}]}`, `{"items":[{"id":"x"},{"id":"y"`} {
		if _, err := webhookco.DecodeDestinations(strings.NewReader(body)); err == nil {
			t.Errorf("DecodeDestinations(%s) accepted it", body)
		}
	}
	// A body that fails part way fails the listing, even inside an item (not a skipped item).
	broken := io.MultiReader(strings.NewReader(`{"items":[{"id":"0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b","lab`), iotest.ErrReader(errors.New("connection reset")))
	if l, err := webhookco.DecodeDestinations(broken); err == nil || !strings.Contains(err.Error(), "items[0]: connection reset") {
		t.Errorf("a body failing inside an item: %+v, %v; want the read error", l, err)
	}
}

// TestConnectionsAreKeptForTheConcurrency: with MaxConns 8, eight rotations at a time
// reuse eight connections. With Go's default of two idle connections per host, every
// burst opened and closed connections (seen at scheduler.max_concurrent 8: connect and
// socket calls in the CPU profile, on both sides).
func TestConnectionsAreKeptForTheConcurrency(t *testing.T) {
	em := emulator.New(emulator.Options{})
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(em)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	dests := make([]string, 8)
	for i := range dests {
		dests[i] = em.AddDestination(fmt.Sprintf("d%d", i))
	}
	c, err := webhookco.New(webhookco.Options{BaseURL: srv.URL, APIKey: secret.New(key), Timeout: 5 * time.Second, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for _, d := range dests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Rotate(context.Background(), d); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if n := opened.Load(); n > 8 {
		t.Errorf("%d connections opened for 160 rotations 8 at a time, want at most 8", n)
	}
}

// TestLargeListing: an account whose listing passes 1 MiB (430 destinations at the API's
// maximum URL and label lengths, and 5,000 ordinary ones) is listed whole.
func TestLargeListing(t *testing.T) {
	em, base := startEmulator(t)
	key := em.AddKey(emulator.ScopeEndpointsRead)
	for i := range 430 {
		label := fmt.Sprintf("%03d", i) + strings.Repeat("l", 197)
		url := fmt.Sprintf("https://h%03d.example.com/", i) + strings.Repeat("p", 2048-len("https://h000.example.com/"))
		em.AddDestinationAt(&label, url)
	}
	for i := range 5000 {
		em.AddDestination(fmt.Sprintf("rd-%d", i))
	}
	list, err := newClient(t, base, key).ListDestinations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(list.Destinations); got != 5430 || len(list.Skipped) != 0 {
		t.Errorf("%d destinations listed, want 5430", got)
	}
}

// TestNoItemStopsTheListing: items no destination of the API can be (too large, an id that
// is not a UUID, an unknown status, a second item with one id, not an object) are each
// left out with the reason, quoting at most a short, escaped prefix; every other item is
// listed, control characters in a label included (they are escaped where printed).
func TestNoItemStopsTheListing(t *testing.T) {
	const a, b = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c"
	item := func(id, label, status string) string {
		l, _ := json.Marshal(label)
		i, _ := json.Marshal(id)
		return `{"id":` + string(i) + `,"orgId":"o","url":"https://x.example.com/hook","label":` + string(l) + `,"status":"` + status + `","createdAt":"2026-01-01T00:00:00.000Z","lastValidatedAt":null,"ordered":false,"disabledAt":null,"newField":1}`
	}
	body := `{"items":[` + strings.Join([]string{
		item(a, "billing\x1b]0;pwned\x07", "active"),
		item("../../etc/passwd\x1b[2J", "x", "active"),
		item(b, strings.Repeat("L", 20000), "active"),
		item(b, "paused", "paused"),
		`"not an object"`,
		item(a, "again", "active"),
		`null`,
		strings.Replace(item(b, "x", "active"), `"status":"active"`, `"status":5`, 1),
		strings.Replace(item(b, "x", "active"), `"2026-01-01T00:00:00.000Z"`, `"yesterday"`, 1),
		"\n  " + item(b, "orders", "active") + "\n",
	}, ",") + `]}`
	got, err := webhookco.DecodeDestinations(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Destinations) != 2 || got.Destinations[0].ID != a || got.Destinations[1].LabelOrEmpty() != "orders" {
		t.Errorf("destinations = %+v", got.Destinations)
	}
	want := []string{
		`items[1]: id "../../etc/passwd\x1b[2J" is not a UUID`,
		"items[2]: 20230 bytes, more than 16384",
		`items[3]: status "paused" is not active or revoked`,
		"items[4]: not an object",
		"items[5]: a second item with id " + a,
		"items[6]: not an object",
		`items[7]: not a destination: field "status": want string, got JSON number`,
		`items[8]: not a destination: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`,
	}
	if strings.Join(got.Skipped, "\n") != strings.Join(want, "\n") {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(got.Skipped, "\n"), strings.Join(want, "\n"))
	}
}

// TestStatusLabelsAreBounded: a status code becomes a metric label only as one of
// StatusLabels: odd codes by their class, so a server cannot mint series.
func TestStatusLabelsAreBounded(t *testing.T) {
	for code, want := range map[int]string{200: "200", 429: "429", 504: "504", 201: "2xx", 307: "3xx", 418: "4xx", 599: "5xx", 999: "other", 100: "other"} {
		got := webhookco.StatusLabel(code)
		if got != want || !slices.Contains(webhookco.StatusLabels, got) {
			t.Errorf("StatusLabel(%d) = %q, want %q (one of StatusLabels)", code, got, want)
		}
	}
}
