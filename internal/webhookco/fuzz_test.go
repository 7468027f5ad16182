package webhookco_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// answer is a transport that answers every request with one canned response.
type answer struct {
	status      int
	contentType string
	body        []byte
}

func (a answer) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", a.contentType)
	h.Set("Retry-After", "3")
	return &http.Response{StatusCode: a.status, Header: h, Body: io.NopCloser(bytes.NewReader(a.body)), Request: r}, nil
}

// FuzzResponses: no answer (status, content type, body) makes the client panic, a rotate is
// successful only with a valid secret for the asked destination, and the signing secret in
// a body never reaches an error.
func FuzzResponses(f *testing.F) {
	const dest = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b"
	f.Add(200, "application/json", []byte(`{"destinationId":"`+dest+`","keyId":"0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c","signingSecret":"whsec_c2VjcmV0"}`))
	f.Add(200, "application/json", []byte(`{"items":[{"id":"0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c","status":"active","createdAt":"2026-12-01T03:00:00Z"}]}`))
	f.Add(429, "application/json", []byte(`{"error":"RATE_LIMITED","message":"slow down"}`))
	f.Add(500, "text/plain", []byte(`internal error`))
	f.Add(201, "text/plain", []byte(`whsec_c2VjcmV0`))
	f.Add(200, "application/json", []byte(`{"orgId":"o","scopes":["endpoints:read"]}`))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		c, err := webhookco.New(webhookco.Options{BaseURL: "https://api.webhook.co", APIKey: secret.New("whk_" + strings.Repeat("k", 49)),
			Timeout: time.Second, HTTPClient: &http.Client{Transport: answer{status, contentType, body}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		rotated, err := c.Rotate(ctx, dest)
		if err == nil && (rotated.DestinationID != dest || rotated.Secret.IsZero()) {
			t.Errorf("accepted rotate %+v", rotated)
		}
		_, lerr := c.ListSigningSecrets(ctx, dest)
		_, werr := c.Whoami(ctx)
		for _, e := range []error{err, lerr, werr} {
			if e != nil && strings.Contains(e.Error(), "whsec_") {
				t.Errorf("an error holds a signing secret: %v", e)
			}
		}
	})
}
