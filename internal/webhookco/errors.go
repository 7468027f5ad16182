package webhookco

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	// ErrInvalidResponse marks a 200 whose body broke the contract (unreadable, wrong shape,
	// wrong destination). For rotate, the key may have been minted all the same.
	ErrInvalidResponse = errors.New("invalid response")
)

// Operation names, used in errors and as the "operation" metric label.
const (
	OpRotate             = "rotate"
	OpListSigningSecrets = "list_signing_secrets"
	OpWhoami             = "whoami"
	OpListDestinations   = "list_destinations"
	OpAuditVerify        = "audit_verify"
	OpListDeliveries     = "list_deliveries"
)

// Operations lists every operation, so metrics can create their series up front.
var Operations = []string{OpRotate, OpListSigningSecrets, OpWhoami, OpListDestinations, OpAuditVerify, OpListDeliveries}

// Scopes are the API key scopes each operation needs (API-NOTES: matching is exact, and
// write does not imply read). whoami needs none.
var Scopes = map[string]string{OpRotate: "endpoints:write", OpListSigningSecrets: "endpoints:read", OpListDestinations: "endpoints:read", OpAuditVerify: "audit:read", OpListDeliveries: "events:read"}

// RequiredScopes are the scopes a key needs for every operation rotatord uses.
var RequiredScopes = []string{Scopes[OpRotate], Scopes[OpListSigningSecrets]}

// APIError is a non-200 HTTP response.
type APIError struct {
	Operation string
	// Status is the HTTP status code.
	Status int
	// Code is the JSON envelope's error code (e.g. RATE_LIMITED); empty for 401/403 and for
	// text/plain bodies.
	Code string
	// Message is the envelope's message, or the start of a text/plain body.
	Message string
	// WWWAuthenticate is the bearer challenge of a 401 or 403 (it names the error, not the scope).
	WWWAuthenticate string
	// RetryAfter is the parsed Retry-After header of a 429 or 503 (zero when absent).
	RetryAfter time.Duration
	// HasRetryAfter is true when the header was present and valid.
	HasRetryAfter bool
}

// Error implements error.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("webhook.co %s: HTTP %d", e.Operation, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.WWWAuthenticate != "" {
		msg += " (WWW-Authenticate: " + e.WWWAuthenticate + ")"
	}
	// The 403 challenge does not name the scope; the operation does.
	if scope := Scopes[e.Operation]; e.Status == 403 && scope != "" {
		msg += ": the API key lacks the scope " + scope + " that " + e.Operation + " needs"
	}
	return msg
}

// TransportError is a failure to complete the HTTP exchange: dial, TLS, timeout, reset.
type TransportError struct {
	Operation string
	// Sent is true when the whole request was written before the failure, so the server may
	// have acted on it.
	Sent bool
	Err  error
}

// Error implements error.
func (e *TransportError) Error() string {
	when := "before the request was sent"
	if e.Sent {
		when = "after the request was sent"
	}
	return fmt.Sprintf("webhook.co %s: %s: %v", e.Operation, when, e.Err)
}

// Unwrap returns the underlying network error.
func (e *TransportError) Unwrap() error { return e.Err }

// ResponseError is a 200 whose body could not be read or did not match the contract.
type ResponseError struct {
	Operation string
	Err       error
}

// Error implements error.
func (e *ResponseError) Error() string {
	return fmt.Sprintf("webhook.co %s: HTTP 200 with an invalid body: %v", e.Operation, e.Err)
}

// Unwrap returns the cause.
func (e *ResponseError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidResponse) true.
func (e *ResponseError) Is(target error) bool { return target == ErrInvalidResponse }
