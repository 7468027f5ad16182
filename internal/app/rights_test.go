package app

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/preflight"
	"github.com/rotatord/rotatord/internal/vault"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// TestSampleNeeds: above the sample, the start asks about one destination of each folder
// first, then destinations spread over the rest; the token's own needs always; the others
// are deferred, each destination whole.
func TestSampleNeeds(t *testing.T) {
	var needs []preflight.Need
	add := func(name, p string) {
		needs = append(needs, preflight.Need{Need: vault.Need{Path: "kv/data/" + p, Capability: "update"}, For: name},
			preflight.Need{Need: vault.Need{Path: "kv/metadata/" + p, Capability: "patch"}, For: name})
	}
	for i := range 90 {
		add(fmt.Sprintf("a%02d", i), fmt.Sprintf("team-a/a%02d", i))
	}
	for i := range 10 {
		add(fmt.Sprintf("b%02d", i), fmt.Sprintf("team-b/b%02d", i))
	}
	needs = append(needs, preflight.Need{Need: vault.Need{Path: "auth/token/renew-self", Capability: "update"}})
	given := map[preflight.Need]int{}
	for i, n := range needs {
		given[n] = i
	}
	kept, deferred := sampleNeeds(needs, 10)
	for _, part := range [][]preflight.Need{kept, deferred} {
		for i := 1; i < len(part); i++ {
			if given[part[i-1]] > given[part[i]] {
				t.Errorf("%s came before %s: the order given is not kept", part[i-1], part[i])
			}
		}
	}
	asked := map[string]int{}
	for _, n := range kept {
		asked[n.For]++
	}
	if asked[""] != 1 {
		t.Errorf("the token's own need asked %d times, want 1", asked[""])
	}
	delete(asked, "")
	if len(asked) != 10 || asked["a00"] != 2 || asked["b00"] != 2 {
		t.Errorf("asked about %v; want 10 destinations, each whole, a00 and b00 (the first of each folder) among them", asked)
	}
	if len(kept)+len(deferred) != len(needs) {
		t.Errorf("kept %d + deferred %d needs of %d", len(kept), len(deferred), len(needs))
	}
	for _, n := range deferred {
		if asked[n.For] > 0 || n.For == "" {
			t.Errorf("%s deferred and asked", n)
		}
	}
	if kept, deferred := sampleNeeds(needs, 100); len(kept) != len(needs) || deferred != nil {
		t.Errorf("100 destinations, a sample of 100: kept %d, deferred %d", len(kept), len(deferred))
	}
}

// TestDeferredRightsBatches: the deferred needs are asked about in batches of whole
// destinations, at most rightsPerRequest needs each, even when a backend gave one
// destination's needs apart.
func TestDeferredRightsBatches(t *testing.T) {
	need := func(name, p string) preflight.Need {
		return preflight.Need{Need: vault.Need{Path: p, Capability: "update"}, For: name}
	}
	r := newDeferredRights([]preflight.Need{need("a", "kv/data/a"), need("b", "kv/data/b"), need("a", "kv/metadata/a")}, nil)
	batch, end := r.next()
	if len(batch) != 2 || end != 3 {
		t.Fatalf("batch %v, end %d; want a's and b's spans, to 3", batch, end)
	}
	for _, sp := range batch {
		name := r.needs[sp.from].For
		for _, n := range r.needs[sp.from:sp.to] {
			if n.For != name {
				t.Errorf("the span of %s holds %s's need %s", name, n.For, n)
			}
		}
		if got, want := sp.to-sp.from, map[string]int{"a": 2, "b": 1}[name]; got != want {
			t.Errorf("%s: %d needs in its span, want %d", name, got, want)
		}
	}
	var many []preflight.Need
	for i := range 600 {
		name := fmt.Sprintf("d%d", i)
		many = append(many, need(name, "kv/data/"+name), need(name, "kv/metadata/"+name))
	}
	r = newDeferredRights(many, nil)
	batch, end = r.next()
	if len(batch) != rightsPerRequest/2 || end != rightsPerRequest {
		t.Errorf("a first batch of %d destinations, to %d; want %d, to %d", len(batch), end, rightsPerRequest/2, rightsPerRequest)
	}
}

// TestRightsAskedAfterTheStart: a fleet larger than the start's sample starts without
// asking about every destination's rights; the one whose path the token may only read is
// asked about before its first rotation (due at the start) and not minted, the others
// rotate, and the daemon asks about the rest once it runs and logs what it found. The same
// for destinations a discovery rule adds (asked about once the account is listed).
func TestRightsAskedAfterTheStart(t *testing.T) {
	t.Run("config", func(t *testing.T) { testRightsAfterStart(t, false) })
	t.Run("discovery", func(t *testing.T) { testRightsAfterStart(t, true) })
}

func testRightsAfterStart(t *testing.T, discover bool) {
	defer func(n rightsSample) { startRightsSample = n }(startRightsSample)
	startRightsSample = 2
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	root := v.Client(t)
	policy := `
path "kv/data/p/*" { capabilities = ["create", "update", "read"] }
path "kv/metadata/p/*" { capabilities = ["patch", "read"] }
path "kv/metadata/p" { capabilities = ["list"] }
path "kv/data/p/d5" { capabilities = ["read"] }
path "kv/data/p/d8" { capabilities = ["read"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
`
	if err := root.Sys().PutPolicy("fleet", policy); err != nil {
		t.Fatal(err)
	}
	token := v.Token(t, "fleet")
	em := emulator.New(emulator.Options{})
	url, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi: {base_url: %q, token_env: K, timeout: 2s, key_check_interval: 0}\n", t.TempDir(), url)
	fmt.Fprintf(&b, "vault: {address: %s, kv: {mount: kv, version: 2}}\nmetrics: {listen: \"127.0.0.1:0\"}\n", v.Addr)
	b.WriteString("defaults: {schedule: \"@daily\", first_rotation: at_start, window: 0}\n")
	if discover {
		b.WriteString("discovery:\n  interval: 200ms\n  rules:\n    - {label: \"d*\", name: \"{label}\", vault_path: \"p/{label}\"}\n")
	} else {
		b.WriteString("destinations:\n")
	}
	ids := map[string]string{}
	for i := range 8 {
		name := fmt.Sprintf("d%d", i)
		// Ids in the names' order: the listing's order (the oldest first, then by id), so the
		// start's sample of two is d0 and d1 either way, and d5 is asked about later.
		ids[name] = em.AddDestinationWithID(fmt.Sprintf("0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f000%d", i), name)
		if !discover {
			fmt.Fprintf(&b, "  - {id: %s, name: %s, vault_path: p/%s}\n", ids[name], name, name)
		}
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	logs := &bintest.Buffer{}
	env := Env{Stderr: logs, Getenv: func(k string) string { return map[string]string{"K": key, "VAULT_TOKEN": token}[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Start(ctx, cfg, env, Options{Version: "test", Command: "test"}, false, "") }()
	defer func() { cancel(); <-done }()
	rotated := func(n string) int { return len(em.RequestsFor(emulator.OpRotate, ids[n])) }
	waitUntil(t, 30*time.Second, "every destination but d5 rotated, d5's outcome, and the deferred check's line", func() bool {
		for n := range ids {
			if n != "d5" && rotated(n) == 0 {
				return false
			}
		}
		text := logs.String()
		return strings.Contains(text, "the Vault rights of every destination are checked") &&
			regexp.MustCompile(`"destination":"d5".*"outcome"`).MatchString(text)
	}, logs)
	if rotated("d5") != 0 {
		t.Errorf("d5, whose path the token is denied, was minted %d times", rotated("d5"))
	}
	text := logs.String()
	if !strings.Contains(text, `"destination":"d5"`) || !strings.Contains(text, "lacks create on kv/data/p/d5, update on kv/data/p/d5") {
		t.Errorf("the log does not name d5 and its missing right:\n%s", text)
	}
	if !strings.Contains(text, `"checked_after_start":6`) || !strings.Contains(text, `"blocked":1`) {
		t.Errorf("the deferred check's line does not say 6 checked after the start, 1 blocked:\n%s", text)
	}
	if strings.Contains(text, "preflight found") {
		t.Errorf("the start was refused:\n%s", text)
	}
	if !discover {
		return
	}
	// A destination the account's listing adds later, whose path the token may only read,
	// is asked about before its first rotation too.
	ids["d8"] = em.AddDestinationWithID("0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f0008", "d8")
	waitUntil(t, 30*time.Second, "d8's outcome", func() bool {
		return regexp.MustCompile(`"destination":"d8".*"outcome"`).MatchString(logs.String())
	}, logs)
	if rotated("d8") != 0 {
		t.Errorf("d8, added after the start, whose path the token may only read, was minted %d times", rotated("d8"))
	}
	if !strings.Contains(logs.String(), "lacks create on kv/data/p/d8") {
		t.Errorf("the log does not name d8's missing right:\n%s", logs.String())
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool, logs *bintest.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, not yet: %s; the log:\n%s", limit, what, logs.String())
		}
	}
}
