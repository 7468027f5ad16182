// Package backoff is the one exponential backoff every waiting loop in rotatord uses: the
// rotation's waits on webhook.co (after its Retry-After), the commands' paced calls, the
// consumers' notifications, Vault logins and the looks at another replica's lease.
package backoff

import "time"

// Policy is an exponential backoff from Initial, doubling per step, capped at Max.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
}

// Delay is the wait before retry number step (0 for the first retry): Initial·2^step,
// capped at Max. With jitter (a source of numbers in [0, 1)) it is half fixed and half
// random, as the provider's own SDK waits, so that callers failing together do not retry
// together; without (nil) it is exact.
func (p Policy) Delay(step int, jitter func() float64) time.Duration {
	d := p.Initial << min(max(step, 0), 30)
	if d <= 0 || d > p.Max {
		d = p.Max
	}
	if jitter == nil {
		return d
	}
	return d/2 + time.Duration(jitter()*float64(d/2))
}

// Next is Delay for *step, and counts the step.
func (p Policy) Next(step *int, jitter func() float64) time.Duration {
	d := p.Delay(*step, jitter)
	*step++
	return d
}
