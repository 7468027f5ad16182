package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/backoff"
	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/vault"
)

// rightsPerRequest is how many rights one capabilities request of the deferred check asks
// about: a destination's four (on two paths), so about 500 paths, vault.Missing's batch.
const rightsPerRequest = 1000

// rightsRetry paces the deferred check's requests that Vault did not answer.
var rightsRetry = backoff.Policy{Initial: time.Second, Max: time.Minute}

// deferredRights is the preflight's verdict on each destination while the daemon runs: the
// destinations it blocked (at the start, or added later), and the Vault rights of those a
// large fleet's start did not ask about (Findings.Deferred). The daemon asks about these
// once it runs, one request at a time so that Vault is not flooded (run), and a destination
// still waiting when it is due is asked about on its own first (check): nothing is minted
// for a destination before its rights are known, as with the start's own preflight.
type deferredRights struct {
	mu sync.Mutex
	// needs are the deferred needs as the preflight left them, each destination's together
	// (a backend gives a destination's needs at once); pending maps a destination not yet
	// asked about to its needs' span. At 100,000 destinations a map of slices was 40 MB.
	needs   []preflight.Need
	pending map[string]span
	cursor  int              // run's place in needs
	blocked map[string]error // destinations found lacking a right
}

type span struct{ from, to int }

func newDeferredRights(needs []preflight.Need, blocked map[string]error) *deferredRights {
	r := &deferredRights{needs: needs, pending: map[string]span{}, blocked: map[string]error{}}
	for name, err := range blocked {
		r.blocked[name] = err
	}
	for i := 0; i < len(needs); {
		j := i + 1
		for j < len(needs) && needs[j].For == needs[i].For {
			j++
		}
		if _, seen := r.pending[needs[i].For]; seen {
			// Not together after all: keep the destination's needs in one span (rare: no
			// backend does this today).
			return newDeferredRights(regroup(needs), blocked)
		}
		r.pending[needs[i].For] = span{i, j}
		i = j
	}
	return r
}

// regroup orders needs by destination, each destination where its first need was.
func regroup(needs []preflight.Need) []preflight.Need {
	first := map[string]int{}
	for i, n := range needs {
		if _, ok := first[n.For]; !ok {
			first[n.For] = i
		}
	}
	out := slices.Clone(needs)
	slices.SortStableFunc(out, func(a, b preflight.Need) int { return first[a.For] - first[b.For] })
	return out
}

// add makes more destinations wait (those a reload or the account's listing added after
// the start): needs as Findings.Deferred gives them, and the destinations the backends
// refused outright.
func (r *deferredRights) add(needs []preflight.Need, blocked map[string]error) {
	more := newDeferredRights(needs, nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	base := len(r.needs)
	r.needs = append(r.needs, more.needs...)
	for name, sp := range more.pending {
		r.pending[name] = span{base + sp.from, base + sp.to}
		delete(r.blocked, name)
	}
	for name, err := range blocked {
		delete(r.pending, name)
		r.blocked[name] = err
	}
}

// waiting is how many destinations' rights are still to be asked about.
func (r *deferredRights) waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// check returns why the destination called name may not rotate (a right its token lacks),
// or nil. Rights still pending are asked about now, alone; when Vault does not answer they
// stay pending and the rotation goes on, as after a start that could not ask (its secret
// waits in the spool until Vault takes it).
func (r *deferredRights) check(ctx context.Context, c *App, name string) error {
	r.mu.Lock()
	sp, pending := r.pending[name]
	err := r.blocked[name]
	r.mu.Unlock()
	if !pending {
		return err
	}
	r.ask(ctx, c, []span{sp})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blocked[name]
}

// ask asks Vault about the needs of the destinations at batch's spans (one request), and
// records the answer: each destination is then known, blocked or not. It reports whether
// Vault answered.
func (r *deferredRights) ask(ctx context.Context, c *App, batch []span) bool {
	r.mu.Lock()
	needs := r.needs // the spans' slice, even after the last ask lets r.needs go
	r.mu.Unlock()
	var all []vault.Need
	for _, sp := range batch {
		for _, n := range needs[sp.from:sp.to] {
			all = append(all, n.Need)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.config().Vault.Timeout)
	defer cancel()
	missing, err := vault.Missing(ctx, c.vaultAuth.Client(), c.vaultAuth.Recover, all)
	if err != nil {
		c.log.Warn("preflight after the start: Vault did not answer which rights the token has; asked again later", zap.Int("destinations", len(batch)), zap.Error(err))
		return false
	}
	lacking := make(map[vault.Need]bool, len(missing))
	for _, n := range missing {
		lacking[n] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sp := range batch {
		name := needs[sp.from].For
		if _, still := r.pending[name]; !still {
			continue // asked meanwhile (a rotation that came due)
		}
		delete(r.pending, name)
		var m []string
		for _, n := range needs[sp.from:sp.to] {
			if lacking[n.Need] {
				m = append(m, n.String())
			}
		}
		if len(m) > 0 {
			r.blocked[name] = fmt.Errorf("the Vault token lacks %s (see deploy/vault/rotatord-policy.hcl)", strings.Join(m, ", "))
			c.log.Error("preflight after the start: destination cannot be stored; not rotated until the token has the right and rotatord restarts",
				zap.String("destination", name), zap.Error(r.blocked[name]))
		}
	}
	if len(r.pending) == 0 {
		r.needs, r.pending, r.cursor = nil, map[string]span{}, 0 // all asked: the memory goes back
	}
	return true
}

// run asks Vault about every pending destination, rightsPerRequest paths a request, one
// request at a time, until none is left or ctx ends; a request Vault does not answer is
// tried again with backoff. It logs one line when done.
func (r *deferredRights) run(ctx context.Context, c *App) {
	total := r.waiting()
	if total == 0 {
		return
	}
	for failures := 0; ctx.Err() == nil; {
		batch, end := r.next()
		if len(batch) == 0 {
			break
		}
		if r.ask(ctx, c, batch) {
			failures = 0
			r.mu.Lock()
			r.cursor = end
			r.mu.Unlock()
			continue
		}
		failures++
		select {
		case <-ctx.Done():
			return
		case <-time.After(rightsRetry.Delay(failures-1, nil)):
		}
	}
	r.mu.Lock()
	blocked := len(r.blocked)
	r.mu.Unlock()
	c.log.Info("preflight after the start: the Vault rights of every destination are checked",
		zap.Int("checked_after_start", total), zap.Int("blocked", blocked))
}

// next is the next batch of pending destinations: at most rightsPerRequest needs. A batch
// Vault does not answer is taken again (its destinations stay pending, and the cursor
// moves only past answered ones: see run).
func (r *deferredRights) next() (batch []span, end int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, i := 0, r.cursor
	for i < len(r.needs) {
		name := r.needs[i].For
		sp, ok := r.pending[name]
		if !ok || sp.from != i {
			i++ // asked already (its span begins here when pending)
			continue
		}
		if n > 0 && n+sp.to-sp.from > rightsPerRequest {
			break
		}
		batch = append(batch, sp)
		n += sp.to - sp.from
		i = sp.to
	}
	return batch, i
}
