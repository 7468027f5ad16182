package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// paced calls webhook.co for check, status and plan as the daemon does: every call through
// the config's rate budget (api.rate_limit, api.rate_burst), a 429 waited out (Retry-After,
// else backoff) within api.retry.max_rate_limit_wait, and what it waits for said on stderr,
// a slow answer included, so a person never watches a silent terminal.
type paced struct {
	gate   *rotate.RateGate
	policy rotate.Policy
	limit  time.Duration // api.retry.max_rate_limit_wait
	slow   time.Duration // after this long without an answer, say so
	out    io.Writer
}

func newPaced(cfg *config.Config, out io.Writer) *paced {
	r := cfg.API.Retry
	return &paced{
		gate:   rotate.NewRateGate(cfg.API.RateLimit, cfg.API.RateBurst, nil),
		policy: rotate.Policy{InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, MaxRetryAfter: r.MaxRetryAfter},
		limit:  r.MaxRateLimitWait, slow: 3 * time.Second, out: out,
	}
}

// do runs call, what it asks webhook.co named by what, through the budget and its 429s.
func (p *paced) do(ctx context.Context, what string, call func(context.Context) error) error {
	step, waited := 0, time.Duration(0)
	for {
		probe, err := p.gate.Acquire(ctx)
		if err != nil {
			return err
		}
		slow := time.AfterFunc(p.slow, func() {
			fmt.Fprintf(p.out, "webhook.co: still waiting for an answer to %s (each request waits at most api.timeout)\n", what)
		})
		err = call(ctx)
		slow.Stop()
		o := rotate.Classify(err)
		limited := o.Class == rotate.Retryable && o.Reason == rotate.ReasonRateLimited
		wait := rotate.Backoff(p.policy, o, &step, rand.Float64)
		p.gate.Done(probe, limited, wait)
		if !limited || waited+wait > p.limit {
			return err
		}
		fmt.Fprintf(p.out, "webhook.co: %s answered 429 (rate limited); waiting %s before trying again (%s of at most %s waited so far)\n",
			what, wait.Round(time.Millisecond), waited.Round(time.Second), p.limit)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		waited += wait
	}
}

// keys lists d's signing keys at webhook.co through the budget.
func (p *paced) keys(ctx context.Context, client *webhookco.Client, d config.Destination) ([]webhookco.SigningKey, error) {
	var keys []webhookco.SigningKey
	err := p.do(ctx, "the key listing of "+d.Name, func(ctx context.Context) (err error) {
		keys, err = client.ListSigningSecrets(ctx, d.ID)
		return err
	})
	return keys, err
}
