package rotate

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Class is what an API outcome allows rotatord to do next.
type Class int

// Classes of outcome. Only Success and Ambiguous can have minted a key.
const (
	// Success: a validated 200 with the new secret.
	Success Class = iota
	// Refused: the provider refused (4xx other than 429); nothing was minted; retrying
	// would be refused again, so the rotation fails with a reason.
	Refused
	// Retryable: nothing was minted (429, or the request never left): wait, then decide again.
	Retryable
	// Ambiguous: the request was sent and the outcome is unknown (timeout, reset, 5xx,
	// unreadable 200); a key may have been minted. Rotate must not be sent again before a
	// signing-secrets listing shows whether it was.
	Ambiguous
)

// String names the class for logs.
func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Refused:
		return "refused"
	case Retryable:
		return "retryable"
	case Ambiguous:
		return "ambiguous"
	}
	return "unknown"
}

// Failure reasons: the "reason" label of rotatord_rotation_failures_total. The first group
// comes from Classify, the second from the rotation's own steps.
const (
	ReasonBadRequest       = "bad_request"       // 400
	ReasonUnauthorized     = "unauthorized"      // 401: the API key is wrong or revoked
	ReasonForbidden        = "forbidden"         // 403: the key lacks a scope
	ReasonNotFound         = "not_found"         // 404: unknown or deleted destination
	ReasonPaused           = "paused"            // 409 ENDPOINT_PAUSED
	ReasonRefused          = "refused"           // any other 4xx
	ReasonRateLimited      = "rate_limited"      // 429 for longer than max_rate_limit_wait
	ReasonUnreachable      = "unreachable"       // the request never left (dial, TLS, DNS)
	ReasonServerError      = "server_error"      // 5xx
	ReasonTimeout          = "timeout"           // sent, then no answer in time
	ReasonConnectionLost   = "connection_lost"   // sent, then the connection broke
	ReasonInvalidResponse  = "invalid_response"  // a 200 that broke the contract
	ReasonUnexpectedStatus = "unexpected_status" // 1xx, 3xx or another 2xx

	ReasonLost       = "lost"       // a key was minted and its secret never reached rotatord
	ReasonUnverified = "unverified" // an ambiguous rotation could not be checked; rotate is held back
	ReasonSink       = "sink"       // the sink did not take the secret for a while (unavailable; it waits in the spool)

	ReasonSinkDenied        = "sink_denied"        // the sink refused rotatord's identity (Vault 403 after a re-login); it waits in the spool
	ReasonSinkMisconfigured = "sink_misconfigured" // no such mount or path, or another KV version than configured; it waits in the spool
	ReasonSpool             = "spool"              // the spool could not be written, so nothing was rotated
	ReasonPreflight         = "preflight"          // the sink refused this destination's path at start (--allow-degraded)
	ReasonBusy              = "busy"               // a manual rotation found another process rotating the destination
	ReasonLease             = "lease"              // the destination's lease could not be taken or renewed (Vault unreachable); nothing was rotated
	ReasonLeaseLost         = "lease_lost"         // the lease was lost before the rotate request (another process may rotate); nothing was rotated
	ReasonCanceled          = "canceled"           // shutdown came first

)

// Reasons of a held rotation (Status Held): not failures, guards; counted in
// rotatord_held_rotations_total, not with the failures.
const (
	HeldForConsumer    = "held"         // a consumer still holds only the key the rotation would revoke
	HeldForMinInterval = "min_interval" // the last rotation is more recent than min_interval
)

// FailureReasons lists every reason, so metrics can create their series up front.
var FailureReasons = []string{
	ReasonBadRequest, ReasonUnauthorized, ReasonForbidden, ReasonNotFound, ReasonPaused, ReasonRefused,
	ReasonRateLimited, ReasonUnreachable, ReasonServerError, ReasonTimeout, ReasonConnectionLost,
	ReasonInvalidResponse, ReasonUnexpectedStatus, ReasonLost, ReasonUnverified, ReasonSink, ReasonSinkDenied, ReasonSinkMisconfigured, ReasonSpool, ReasonPreflight, ReasonBusy,
	ReasonLease, ReasonLeaseLost, ReasonCanceled,
}

// Outcome is the classification of one API call.
type Outcome struct {
	Class  Class
	Reason string
	// RetryAfter is the wait the provider asked for; HasRetryAfter says whether it asked.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// MayCommitLate, on an Ambiguous outcome, says the provider's handler may still be
	// running: no complete answer came from it (a timeout, a broken connection, a gateway's
	// 502/503/504). The real server commits such a rotate up to seconds later (API-NOTES),
	// so the outcome stays unknown for the settle period. A 500 or an unreadable 200 is the
	// handler's own answer: it has ended, and one listing tells.
	MayCommitLate bool
	Err           error
}

// Classify decides, in this one place, what an error from the webhook.co client means.
func Classify(err error) Outcome {
	if err == nil {
		return Outcome{Class: Success}
	}
	o := Outcome{Err: err}
	var apiErr *webhookco.APIError
	var transportErr *webhookco.TransportError
	switch {
	case errors.As(err, &apiErr):
		o.Class, o.Reason = classifyStatus(apiErr.Status)
		o.MayCommitLate = apiErr.Status > http.StatusInternalServerError // a gateway's answer, not the handler's
		if apiErr.HasRetryAfter {
			o.RetryAfter, o.HasRetryAfter = apiErr.RetryAfter, true
		}
	case errors.Is(err, webhookco.ErrInvalidResponse):
		o.Class, o.Reason = Ambiguous, ReasonInvalidResponse
	case errors.As(err, &transportErr):
		switch {
		case !transportErr.Sent:
			o.Class, o.Reason = Retryable, ReasonUnreachable
		case isTimeout(err):
			o.Class, o.Reason, o.MayCommitLate = Ambiguous, ReasonTimeout, true
		default:
			o.Class, o.Reason, o.MayCommitLate = Ambiguous, ReasonConnectionLost, true
		}
	default:
		// An error this function does not know: assume the worst, that a key may exist
		// and may still be committed.
		o.Class, o.Reason, o.MayCommitLate = Ambiguous, ReasonConnectionLost, true
	}
	return o
}

// classifyStatus maps a non-200 status. API-NOTES: a 429 or any 4xx means refused and
// nothing minted; a 5xx may come after the transaction committed.
func classifyStatus(status int) (Class, string) {
	switch {
	case status == http.StatusTooManyRequests:
		return Retryable, ReasonRateLimited
	case status == http.StatusBadRequest:
		return Refused, ReasonBadRequest
	case status == http.StatusUnauthorized:
		return Refused, ReasonUnauthorized
	case status == http.StatusForbidden:
		return Refused, ReasonForbidden
	case status == http.StatusNotFound:
		return Refused, ReasonNotFound
	case status == http.StatusConflict:
		return Refused, ReasonPaused
	case status >= 400 && status < 500:
		return Refused, ReasonRefused
	case status >= 500:
		return Ambiguous, ReasonServerError
	default:
		return Ambiguous, ReasonUnexpectedStatus
	}
}

// WarningMetadataRefused marks a rotation that stored its secret, but not the secret's
// description (KV v2 custom_metadata): a success with a warning in its audit line.
const WarningMetadataRefused = "metadata_refused"

// ClassifySink decides, in this one place, what a sink error means for the secret in hand:
//   - Success: stored (with WarningMetadataRefused when only the description was refused);
//   - Retryable: the sink is unavailable or someone wrote in between: try again while
//     max_sink_wait allows (a conflict at once: read again and decide again);
//   - Refused: the sink refuses this identity or cannot be right as configured: trying
//     again soon cannot help. The secret stays in the spool, the rotation fails with its
//     own reason, and the replayer tries again at a slow cadence.
func ClassifySink(err error) Outcome {
	switch {
	case err == nil:
		return Outcome{Class: Success}
	case errors.Is(err, sink.ErrPartial):
		return Outcome{Class: Success, Reason: WarningMetadataRefused, Err: err}
	case errors.Is(err, sink.ErrDenied):
		return Outcome{Class: Refused, Reason: ReasonSinkDenied, Err: err}
	case errors.Is(err, sink.ErrMisconfigured):
		return Outcome{Class: Refused, Reason: ReasonSinkMisconfigured, Err: err}
	}
	return Outcome{Class: Retryable, Reason: ReasonSink, Err: err}
}

// allRefused reports whether err, and each error it joins, is one that ClassifySink refuses.
func allRefused(err error) bool {
	if err == nil {
		return false
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if !allRefused(e) {
				return false
			}
		}
		return true
	}
	return ClassifySink(err).Class == Refused
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
