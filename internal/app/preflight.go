package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Findings is what the preflight learnt before anything was minted. Every command that
// can mint (run, rotate, demo) and `check --online` run the same preflight.
type Findings struct {
	// Fatal are problems no destination can rotate past: an API key webhook.co refuses or
	// that lacks a scope, a KV version other than the configured one, a token that may not
	// keep itself or take leases.
	Fatal []error
	// Blocked are destinations whose secret the sink would refuse, by name.
	Blocked map[string]error
	// Unchecked says what could not be checked because Vault or webhook.co did not answer
	// in time: rotatord starts degraded and secrets wait in the spool.
	Unchecked []error
	// Identity is whoami's answer (zero when it failed).
	Identity webhookco.Identity
	// Facts and Ready are the backends' lines for `rotatord check` (preflight.Readiness).
	Facts, Ready []string
	// Deferred are the destinations' Vault rights a daemon's start did not ask about (a
	// fleet above startRightsSample): asked after the start (deferredRights).
	Deferred []preflight.Need
}

// startRightsSample bounds the destinations whose Vault rights a daemon's start asks about
// before it is ready. Vault answers a capabilities request path by path, building the
// token's ACL for each (0.3 ms a path with one small policy, measured on Vault 1.14.1): the
// 200,000 paths of 100,000 destinations were a minute of Vault's CPU. Above it the start asks
// about a sample (one destination of each folder first, then spread over the rest) and the
// daemon asks about the rest once it runs, one request at a time, and about each one at the
// latest before its first rotation.
var startRightsSample = rightsSample(500)

// rightsSample is how many destinations' Vault rights a preflight asks about: askAll,
// askNone (every destination's are left in Findings.Deferred), or at most that many.
type rightsSample int

const (
	askAll  rightsSample = 0
	askNone rightsSample = -1
)

// Refusal is the error that stops a command before it mints: nil when there is none, or
// when allowDegraded lets the blocked destinations fail instead (fatal problems then block
// all). hint says what the user can do besides fixing the problems.
func (f Findings) Refusal(allowDegraded bool, hint string) error {
	if allowDegraded || (len(f.Fatal) == 0 && len(f.Blocked) == 0) {
		return nil
	}
	var lines []string
	for _, err := range f.Fatal {
		lines = append(lines, "  "+err.Error())
	}
	for _, name := range sortedKeys(f.Blocked) {
		lines = append(lines, fmt.Sprintf("  %s: %v", name, f.Blocked[name]))
	}
	return fmt.Errorf("preflight found %s (%s):\n%s", plural(len(lines), "problem"), hint, strings.Join(lines, "\n"))
}

// BlockedAll is the blocked destinations, with every destination blocked by a fatal problem.
func (f Findings) BlockedAll(dests []config.Destination) map[string]error {
	out := map[string]error{}
	for name, err := range f.Blocked {
		out[name] = err
	}
	if len(f.Fatal) > 0 {
		for _, d := range dests {
			if out[d.Name] == nil {
				out[d.Name] = errors.Join(f.Fatal...)
			}
		}
	}
	return out
}

// Log writes one line per finding.
func (f Findings) Log(log *zap.Logger) {
	for _, err := range f.Fatal {
		log.Error("preflight: nothing can rotate", zap.Error(err))
	}
	for _, name := range sortedKeys(f.Blocked) {
		log.Error("preflight: destination cannot be stored", zap.String("destination", name), zap.Error(f.Blocked[name]))
	}
	for _, err := range f.Unchecked {
		if strings.HasPrefix(err.Error(), "vault") {
			log.Warn("preflight: not checked; secrets wait in the spool until Vault answers", zap.Error(err))
		} else {
			log.Warn("preflight: not checked; webhook.co did not answer, and each rotation tries it again at its time", zap.Error(err))
		}
	}
}

// Preflight checks, for dests and before anything is minted: the API key (whoami: valid,
// with every scope), then every backend (the sink, the leases) in its own way
// (preflight.Checker: the KV mount's version, a directory), then every Vault right the
// backends and the token upkeep use, in one capabilities request. Each step is bounded
// (api.timeout for whoami, vault.timeout for Vault): a Vault or webhook.co that accepts
// connections but does not answer is reported unchecked, as one that refuses them, never
// waited for.
func Preflight(ctx context.Context, c *App, dests []config.Destination) Findings {
	return preflightOf(ctx, c, dests, askAll)
}

// preflightOf is Preflight that asks Vault about the rights of at most sample destinations
// and leaves the others' in Findings.Deferred.
func preflightOf(ctx context.Context, c *App, dests []config.Destination, sample rightsSample) Findings {
	// The key (webhook.co) and the backends (Vault, files) at once: neither waits on the
	// other's server.
	var key Findings
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		key.checkAPIKey(ctx, c)
	}()
	f := Findings{Blocked: map[string]error{}}
	f.checkBackends(ctx, c, dests, sample)
	<-asked
	f.Identity = key.Identity
	f.Fatal = append(key.Fatal, f.Fatal...)
	f.Unchecked = append(key.Unchecked, f.Unchecked...)
	return f
}

// checkAPIKey calls whoami and records the key's health in rotatord_api_key_ok.
func (f *Findings) checkAPIKey(ctx context.Context, c *App) {
	id, result, err := checkKey(ctx, c)
	observeKeyCheck(c.metrics, result)
	switch result {
	case metrics.KeyOK:
		f.Identity = id
	case metrics.KeyUnreachable, metrics.KeyRateLimited:
		f.Unchecked = append(f.Unchecked, err)
	default:
		f.Fatal = append(f.Fatal, err)
	}
}

// checkKey asks webhook.co whether the API key is valid and holds every scope rotatord
// needs; result is one of the metrics.Key* values.
func checkKey(ctx context.Context, c *App) (webhookco.Identity, string, error) {
	var id webhookco.Identity
	o := c.paced(ctx, func(ctx context.Context) (err error) { id, err = c.client.Whoami(ctx); return err })
	err := o.Err
	switch {
	case o.Reason == rotate.ReasonUnauthorized:
		return id, metrics.KeyRejected, fmt.Errorf("webhook.co refused the API key (HTTP 401: wrong, revoked or expired): %w", err)
	case o.Reason == rotate.ReasonRateLimited:
		return id, metrics.KeyRateLimited, fmt.Errorf("webhook.co answered whoami with 429 (rate limited), so the API key is not checked this time: %w", err)
	case err != nil:
		return id, metrics.KeyUnreachable, fmt.Errorf("webhook.co did not answer whoami, so the API key is not checked: %w", err)
	}
	var missing []string
	for _, s := range webhookco.RequiredScopes {
		if !id.HasScope(s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return id, metrics.KeyMissesScope, fmt.Errorf("the webhook.co API key (org %s) lacks the %s %s: rotate needs %s, listing keys needs %s",
			id.OrgID, map[bool]string{true: "scope", false: "scopes"}[len(missing) == 1], strings.Join(missing, ", "),
			webhookco.Scopes[webhookco.OpRotate], webhookco.Scopes[webhookco.OpListSigningSecrets])
	}
	return id, metrics.KeyOK, nil
}

// observeKeyCheck exports one key check; one that did not check the key (no answer, or
// 429) leaves rotatord_api_key_ok as it was.
func observeKeyCheck(m *metrics.Metrics, result string) {
	if m == nil {
		return
	}
	m.APIKeyChecks.WithLabelValues(result).Inc()
	switch result {
	case metrics.KeyOK:
		m.APIKeyOK.Set(1)
	case metrics.KeyRejected, metrics.KeyMissesScope:
		m.APIKeyOK.Set(0)
	}
}

// checkBackends asks each backend whether it is ready for dests, then Vault once for every
// right they use (with the token upkeep's), unless a backend could not be asked.
func (f *Findings) checkBackends(ctx context.Context, c *App, dests []config.Destination, sample rightsSample) {
	ctx, cancel := context.WithTimeout(ctx, c.config().Vault.Timeout)
	defer cancel()
	ctx, cancelStart := c.startCtx(ctx)
	defer cancelStart()
	targets := make([]preflight.Target, len(dests))
	for i, d := range dests {
		targets[i] = preflight.Target{Name: d.Name, ID: d.ID, Path: d.VaultPath}
	}
	var needs []preflight.Need
	for _, b := range []any{c.sink, c.leases} {
		ch, ok := b.(preflight.Checker)
		if !ok {
			continue
		}
		r := ch.Preflight(ctx, targets)
		f.Fatal, f.Unchecked = append(f.Fatal, r.Fatal...), append(f.Unchecked, r.Unchecked...)
		for name, err := range r.Blocked {
			f.Blocked[name] = err
		}
		f.Facts, f.Ready = append(f.Facts, r.Facts...), append(f.Ready, r.Ready...)
		if needs == nil {
			needs = r.Needs // at fleet scale, 400,000: not copied
		} else {
			needs = append(needs, r.Needs...)
		}
	}
	if len(needs) == 0 || len(f.Unchecked) > 0 || c.vaultAuth == nil {
		return
	}
	if sample != askAll {
		needs, f.Deferred = sampleNeeds(needs, max(int(sample), 0))
	}
	f.checkRights(ctx, c, needs)
}

// inForce narrows the start's findings, made for the config's own destinations (asked),
// to the destinations in force once the account is listed: one the listing dropped is not
// rotated, so it is not named; one a discovery rule added is checked now, in the same way
// (its rights sampled with the rest: sample).
func (f *Findings) inForce(ctx context.Context, c *App, inForce, asked []config.Destination, sample rightsSample) {
	names := make(map[string]bool, len(inForce))
	for _, d := range inForce {
		names[d.Name] = true
	}
	for name := range f.Blocked {
		if !names[name] {
			delete(f.Blocked, name)
		}
	}
	f.Deferred = slices.DeleteFunc(f.Deferred, func(n preflight.Need) bool { return !names[n.For] })
	for _, d := range asked {
		delete(names, d.Name)
	}
	var added []config.Destination
	for _, d := range inForce {
		if names[d.Name] {
			added = append(added, d)
		}
	}
	if len(added) == 0 || len(f.Fatal) > 0 || len(f.Unchecked) > 0 {
		return
	}
	more := Findings{Blocked: f.Blocked}
	more.checkBackends(ctx, c, added, sample)
	f.Fatal, f.Unchecked = append(f.Fatal, more.Fatal...), append(f.Unchecked, more.Unchecked...)
	f.Deferred = append(f.Deferred, more.Deferred...)
}

// sampleNeeds keeps the needs of every destination when there are at most n, else of n of
// them: first one destination of each folder (a policy grants by path, so a folder the token
// lacks shows at once), then destinations spread evenly over the rest. Needs of no
// destination (For "") are always kept. The others' are deferred. At fleet scale needs
// holds 400,000: they are reordered where they are (deferred first, then kept, each in the
// order given) rather than copied, and each destination is its ordinal after one lookup.
func sampleNeeds(needs []preflight.Need, n int) (kept, deferred []preflight.Need) {
	const none = -1 // a need of no destination
	// A backend gives a destination's needs one after another: their runs bound how many
	// destinations there are, so the map and the list are made once at their size.
	runs := 0
	for i, nd := range needs {
		if nd.For != "" && (i == 0 || nd.For != needs[i-1].For) {
			runs++
		}
	}
	ordinal := make(map[string]int32, runs)
	of := make([]int32, len(needs))
	folder := make([]string, 0, runs) // each destination's, by ordinal: in the order its first need came
	for i, nd := range needs {
		if nd.For == "" {
			of[i] = none
			continue
		}
		k, seen := ordinal[nd.For]
		if !seen {
			k = int32(len(folder))
			ordinal[nd.For] = k
			folder = append(folder, path.Dir(nd.Path))
		}
		of[i] = k
	}
	if len(folder) <= n {
		return needs, nil
	}
	picked := make([]bool, len(folder))
	count, folders := 0, map[string]bool{}
	for k, dir := range folder {
		if count < n && !folders[dir] {
			folders[dir], picked[k] = true, true
			count++
		}
	}
	rest := make([]int32, 0, len(folder)-count)
	for k := range folder {
		if !picked[k] {
			rest = append(rest, int32(k))
		}
	}
	for left, j := n-count, 0; j < left; j++ {
		picked[rest[j*len(rest)/left]] = true
	}
	var keep []preflight.Need
	w := 0
	for i, nd := range needs {
		if of[i] == none || picked[of[i]] {
			keep = append(keep, nd)
			continue
		}
		needs[w] = nd
		w++
	}
	copy(needs[w:], keep)
	return needs[w:], needs[:w:w]
}

// checkRights asks Vault once for every right in needs and the token upkeep's: a right
// one destination needs blocks it, one every destination needs is fatal.
func (f *Findings) checkRights(ctx context.Context, c *App, needs []preflight.Need) {
	owner := map[vault.Need]string{} // need → destination name ("" for every destination)
	all := make([]vault.Need, 0, len(needs))
	for _, n := range needs {
		all = append(all, n.Need)
		owner[n.Need] = n.For
	}
	all = append(all, vault.TokenNeeds()...)
	missing, err := vault.Missing(ctx, c.vaultAuth.Client(), c.vaultAuth.Recover, all)
	switch {
	case err != nil && vault.IsUnreachable(err):
		f.Unchecked = append(f.Unchecked, err)
		return
	case err != nil:
		f.Fatal = append(f.Fatal, err)
		return
	}
	perDest := map[string][]string{}
	var shared []string
	for _, n := range missing {
		if name := owner[n]; name != "" {
			perDest[name] = append(perDest[name], n.String())
		} else {
			shared = append(shared, n.String())
		}
	}
	for name, m := range perDest {
		f.Blocked[name] = fmt.Errorf("the Vault token lacks %s (see deploy/vault/rotatord-policy.hcl)", strings.Join(m, ", "))
	}
	if len(shared) > 0 {
		f.Fatal = append(f.Fatal, fmt.Errorf("the Vault token lacks %s (see deploy/vault/rotatord-policy.hcl)", strings.Join(shared, ", ")))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// plural writes "1 problem", "2 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// ProbeStateDir proves that state_dir can be used, leaving nothing behind: it must be a
// directory rotatord can create files in, or, when it does not exist yet, the nearest
// existing parent must let rotatord create it.
func ProbeStateDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return errors.New("not a directory")
	case err == nil:
		return durable.ProbeWritable(dir)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	for {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		if next := filepath.Dir(parent); next != parent {
			parent = next
			continue
		}
		break
	}
	if err := durable.ProbeWritable(parent); err != nil {
		return fmt.Errorf("does not exist, and cannot be created in %s: %w", parent, err)
	}
	return nil
}
