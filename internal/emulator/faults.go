package emulator

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// FaultKind is what an injected fault does to one request.
type FaultKind int

// Faults. "Before mint" faults leave the provider unchanged; "after mint" faults strike once
// the new key exists, so the caller cannot know the secret: the ambiguous outcomes.
const (
	// RateLimit answers 429 RATE_LIMITED, with Retry-After when Fault.RetryAfter is set.
	RateLimit FaultKind = iota + 1
	// InternalError answers text/plain 500 "internal error" without minting.
	InternalError
	// InternalErrorAfterMint mints, then answers text/plain 500.
	InternalErrorAfterMint
	// DropBeforeMint resets the connection without minting.
	DropBeforeMint
	// DropAfterMint mints, then resets the connection.
	DropAfterMint
	// MalformedAfterMint mints, then answers 200 with a body that is not the contract's JSON.
	MalformedAfterMint
	// Latency waits Fault.Delay, then answers normally.
	Latency
	// Status answers Fault.Status with the JSON envelope code Fault.Code (e.g. 409 ENDPOINT_PAUSED).
	Status
	// LatencyAfterMint mints, then waits Fault.Delay (or until the client goes away) before
	// answering: the window in which a crashed client never reads its secret.
	LatencyAfterMint
	// LateCommit is the real server under load (API-NOTES "A rotate keeps running after its
	// client gives up"): the rotate transaction commits Fault.Delay after the request
	// arrived, whether or not the client is still there, and the answer goes to a client
	// that waited. A client that timed out meanwhile never sees the secret, and a listing
	// taken before the commit shows no new key.
	LateCommit
)

// Fault is one injected failure.
type Fault struct {
	Kind       FaultKind
	RetryAfter string        // RateLimit: the Retry-After header value; "" sends none
	Delay      time.Duration // Latency, LatencyAfterMint, LateCommit
	Status     int           // Status
	Code       string        // Status
}

// String names the fault in the request record.
func (f Fault) String() string {
	switch f.Kind {
	case RateLimit:
		if f.RetryAfter != "" {
			return "rate_limit(retry_after=" + f.RetryAfter + ")"
		}
		return "rate_limit"
	case InternalError:
		return "internal_error"
	case InternalErrorAfterMint:
		return "internal_error_after_mint"
	case DropBeforeMint:
		return "drop_before_mint"
	case DropAfterMint:
		return "drop_after_mint"
	case MalformedAfterMint:
		return "malformed_after_mint"
	case Latency:
		return "latency(" + f.Delay.String() + ")"
	case Status:
		return "status(" + http.StatusText(f.Status) + ")"
	case LatencyAfterMint:
		return "latency_after_mint(" + f.Delay.String() + ")"
	case LateCommit:
		return "late_commit(" + f.Delay.String() + ")"
	}
	return "unknown"
}

type faultKey struct{ op, destinationID string }

// InjectFaults queues faults for the next requests of op to any destination; each request
// consumes one.
func (e *Emulator) InjectFaults(op string, faults ...Fault) {
	e.InjectFaultsFor(op, "", faults...)
}

// InjectFaultsFor queues faults for the next requests of op to one destination. Faults for
// a destination are consumed before faults for any destination.
func (e *Emulator) InjectFaultsFor(op, destinationID string, faults ...Fault) {
	k := faultKey{op, strings.ToLower(destinationID)}
	e.mu.Lock()
	e.faults[k] = append(e.faults[k], faults...)
	e.mu.Unlock()
}

// randomFaults strikes each request of the listed operations with probability rate.
type randomFaults struct {
	rate  float64
	ops   map[string]bool
	kinds []Fault
}

// SetRandomFaults makes each request of ops fail with probability rate, with a fault drawn
// evenly from kinds. A rate of 0 turns random faults off.
func (e *Emulator) SetRandomFaults(rate float64, ops []string, kinds ...Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rate <= 0 || len(kinds) == 0 {
		e.random = nil
		return
	}
	m := map[string]bool{}
	for _, op := range ops {
		m[op] = true
	}
	e.random = &randomFaults{rate: rate, ops: m, kinds: kinds}
}

func (e *Emulator) nextFault(op, destinationID string) (Fault, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range []faultKey{{op, destinationID}, {op, ""}} {
		if q := e.faults[k]; len(q) > 0 {
			e.faults[k] = q[1:]
			return q[0], true
		}
	}
	if r := e.random; r != nil && r.ops[op] && rand.Float64() < r.rate {
		return r.kinds[rand.IntN(len(r.kinds))], true
	}
	return Fault{}, false
}

// applyFault acts out f; it reports whether the request was answered.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, f Fault, rec *Request) bool {
	switch f.Kind {
	case RateLimit:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		rec.Status = envelope(w, http.StatusTooManyRequests, "RATE_LIMITED", "rate limit exceeded")
	case InternalError:
		rec.Status = plain(w, http.StatusInternalServerError, "internal error")
	case DropBeforeMint:
		_ = dropConnection(w)
	case Status:
		rec.Status = envelope(w, f.Status, f.Code, strings.ToLower(strings.ReplaceAll(f.Code, "_", " ")))
	case Latency:
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
		}
		return false
	case LateCommit, LatencyAfterMint, InternalErrorAfterMint, DropAfterMint, MalformedAfterMint:
		return e.applyMintFault(w, r, f, rec)
	default:
		return false
	}
	return true
}

// applyMintFault applies a fault that acts around the mint of a rotate (a late commit, a
// slow answer, an answer lost after the mint). On another operation there is nothing to
// mint: latency and late commits do nothing, and the others degrade to their before-mint form.
func (e *Emulator) applyMintFault(w http.ResponseWriter, r *http.Request, f Fault, rec *Request) bool {
	if rec.Operation != OpRotate {
		switch f.Kind {
		case LateCommit, LatencyAfterMint:
			return false
		case DropAfterMint:
			_ = dropConnection(w)
		default:
			rec.Status = plain(w, http.StatusInternalServerError, "internal error")
		}
		return true
	}
	switch f.Kind {
	case LateCommit:
		arrived := time.Now()
		e.serveRotate(w, rec, func() { time.Sleep(time.Until(arrived.Add(f.Delay))) }, func(w http.ResponseWriter, keyID, secret string) (int, bool) {
			if r.Context().Err() != nil {
				return 0, false // the client gave up before the commit: the secret goes nowhere
			}
			status := writeJSON(w, map[string]string{"destinationId": rec.DestinationID, "keyId": keyID, "signingSecret": secret})
			return status, status == http.StatusOK
		})
	case LatencyAfterMint:
		e.serveRotate(w, rec, nil, func(w http.ResponseWriter, keyID, secret string) (int, bool) {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return 0, false // the client is gone: the secret was never delivered
			}
			status := writeJSON(w, map[string]string{"destinationId": rec.DestinationID, "keyId": keyID, "signingSecret": secret})
			return status, status == http.StatusOK
		})
	default:
		e.serveRotate(w, rec, nil, func(w http.ResponseWriter, keyID, secret string) (int, bool) {
			switch f.Kind {
			case InternalErrorAfterMint:
				return plain(w, http.StatusInternalServerError, "internal error"), false
			case DropAfterMint:
				_ = dropConnection(w)
				return 0, false
			default:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(`{"destinationId":"` + rec.DestinationID + `","keyId":"` + keyID + `","signingSec`))
				return http.StatusOK, false
			}
		})
	}
	return true
}
