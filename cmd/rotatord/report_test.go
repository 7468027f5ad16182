package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	filesink "github.com/rotatord/rotatord/internal/sink/file"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/report"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

type seedSink interface {
	Put(ctx context.Context, path string, rec sink.Record, ifVersion sink.Version) (sink.Version, error)
}

// seedStored stores keys as rotatord would have: each record naming the ones before it (and
// the lost ones) in its history. keys[0] is the key the destination was created with;
// outside keys are not stored, lost keys only named.
func seedStored(t *testing.T, s seedSink, path, destID string, keys []emulator.KeyInfo, outside, lost map[string]bool) {
	t.Helper()
	var h sink.History
	var prev *sink.HistoryEntry
	var version sink.Version
	var pending []sink.HistoryEntry
	for _, k := range keys[1:] {
		switch {
		case lost[k.ID]:
			pending = append(pending, sink.HistoryEntry{KeyID: k.ID, At: k.CreatedAt.Add(30 * time.Second), Lost: true})
			continue
		case outside[k.ID]:
			continue
		}
		if prev != nil {
			pending = append(pending, *prev)
		}
		rec := sink.Record{DestinationID: destID, KeyID: k.ID, Secret: secret.New(k.Secret), RotatedAt: k.CreatedAt.Add(40 * time.Millisecond), History: h.With(pending...)}
		v, err := s.Put(context.Background(), path, rec, version)
		if err != nil {
			t.Fatal(err)
		}
		h, pending, version = rec.History, nil, v
		prev = &sink.HistoryEntry{KeyID: k.ID, At: rec.RotatedAt, Version: v}
	}
}

// weeklyFrom returns weekly times from start until end, shifted by shift(i, t).
func weeklyFrom(start, end time.Time, shift func(t time.Time) time.Duration) []time.Time {
	var out []time.Time
	for at := start.Add(7 * 24 * time.Hour); at.Before(end); at = at.Add(7 * 24 * time.Hour) {
		if shift != nil {
			at = at.Add(shift(at))
		}
		out = append(out, at)
	}
	return out
}

type seededYear struct {
	em         *emulator.Emulator
	cfg        string
	env        map[string]string
	outsideKey string
	lostKey    string
	uncovered  string
}

// seedYear builds an account with a year of weekly keys and one of each planted fault, the
// keys stored in s as rotatord would have, and a config for sinkYAML.
func seedYear(t *testing.T, s seedSink, sinkYAML string) seededYear {
	t.Helper()
	em := emulator.New(emulator.Options{})
	apiURL, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	key := em.AddKey(emulator.ScopeEndpointsRead)
	created := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	end := time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	y := seededYear{em: em}
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi:\n  base_url: %s\n  token_env: K\n%s", stateDir, apiURL, sinkYAML)
	fmt.Fprintf(&b, "defaults:\n  schedule: \"0 3 * * 4\"\n  max_age: 192h\ndestinations:\n")
	for _, name := range []string{"clean", "gap", "outside", "lost", "deleted"} {
		id := em.AddDestination(name)
		fmt.Fprintf(&b, "  - {id: %s, name: %s, vault_path: webhookco/%s}\n", id, name, name)
		var shift func(time.Time) time.Duration
		if name == "gap" {
			shifted := false
			shift = func(at time.Time) time.Duration {
				if !shifted && at.Month() == time.August {
					shifted = true
					return 2 * 24 * time.Hour // one 9-day interval
				}
				return 0
			}
		}
		last := end
		if name == "deleted" {
			last = time.Date(2026, 8, 15, 0, 0, 0, 0, time.UTC)
		}
		times := weeklyFrom(created, last, shift)
		outside, lost := map[string]bool{}, map[string]bool{}
		extra := map[string]time.Time{"outside": time.Date(2026, 9, 10, 15, 0, 0, 0, time.UTC), "lost": time.Date(2026, 8, 20, 3, 0, 0, 0, time.UTC)}
		if at, ok := extra[name]; ok {
			times = append(times, at)
			slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		}
		keys, err := em.Backdate(id, created, times)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			switch {
			case name == "outside" && k.CreatedAt.Equal(extra["outside"]):
				outside[k.ID], y.outsideKey = true, k.ID
			case name == "lost" && k.CreatedAt.Equal(extra["lost"]):
				lost[k.ID], y.lostKey = true, k.ID
			}
		}
		seedStored(t, s, "webhookco/"+name, id, keys, outside, lost)
		if name == "deleted" {
			em.DeleteDestination(id)
			gone := time.Date(2026, 8, 15, 0, 0, 0, 0, time.UTC)
			items, _ := json.Marshal([]account.Item{{ID: id, Name: name, VaultPath: "webhookco/" + name, State: account.Covered, Source: "destinations[4]", GoneSince: &gone}})
			if err := os.WriteFile(filepath.Join(stateDir, app.DeletedFile), items, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	y.uncovered = em.AddDestination("nobody-rotates-me")
	if _, err := em.Backdate(y.uncovered, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), nil); err != nil {
		t.Fatal(err)
	}
	y.cfg = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(y.cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	y.env = map[string]string{"K": key, "VAULT_TOKEN": ""}
	return y
}

// readJSONReport runs report with --output json and returns the exit code and the report.
func runReport(t *testing.T, env map[string]string, args ...string) (int, report.Report, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runMain(context.Background(), env, append([]string{"report", "--output", "json", "--out", out}, args...)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("report wrote no file: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var doc struct {
		Report report.Report `json:"report"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return code, doc.Report, stderr
}

func findingKinds(r report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind+":"+f.Destination)
	}
	slices.Sort(out)
	return out
}

// TestReportOnASeededYear: a year of weekly keys with one of each planted fault, stored in
// KV v2 (with more history than max_versions), KV v1 and files: the report finds exactly
// those, and a clean period finds nothing and exits 0.
func TestReportOnASeededYear(t *testing.T) {
	v := vaulttest.Start(t)
	vc := v.Client(t)
	v.EnableKV(t, "secret-v2", 2)
	if _, err := vc.Logical().Write("secret-v2/config", map[string]any{"max_versions": 5}); err != nil {
		t.Fatal(err)
	}
	v.EnableKV(t, "secret-v1", 1)
	kv2, err := vaultkv.New(vaultkv.Options{Client: vc, Mount: "secret-v2", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	kv1, err := vaultkv.New(vaultkv.Options{Client: vc, Mount: "secret-v1", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	fileDir := t.TempDir()
	files, err := filesink.New(fileDir)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		s    seedSink
		yaml string
	}{
		{"kv2", kv2, fmt.Sprintf("vault:\n  address: %s\n  kv:\n    mount: secret-v2\n    version: 2\n", v.Addr)},
		{"kv1", kv1, fmt.Sprintf("vault:\n  address: %s\n  kv:\n    mount: secret-v1\n    version: 1\n", v.Addr)},
		{"file", files, fmt.Sprintf("sink:\n  type: file\n  dir: %s\n", fileDir)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := seedYear(t, c.s, c.yaml)
			y.env["VAULT_TOKEN"] = v.RootToken
			code, r, stderr := runReport(t, y.env, "--config", y.cfg, "--from", "2026-07-01", "--to", "2026-10-01")
			want := []string{"deleted:deleted", "lost:lost", "minted_outside_rotatord:outside", "overdue:gap", "uncovered:" + y.uncovered}
			if got := findingKinds(r); code != 1 || !slices.Equal(got, want) {
				t.Fatalf("exit %d, findings %v\nwant %v\n%+v\n%s", code, got, want, r.Findings, stderr)
			}
			for _, f := range r.Findings {
				if f.Kind == report.Outside && f.KeyID != y.outsideKey || f.Kind == report.Lost && f.KeyID != y.lostKey {
					t.Errorf("%s names key %s", f.Kind, f.KeyID)
				}
				if f.Kind == report.Overdue && f.To.Sub(f.From) != 24*time.Hour {
					t.Errorf("overdue %s → %s, want one day past the 8-day max_age", f.From, f.To)
				}
			}
			if r.Summary.InScope != 5 || r.Summary.Compliant != 3 {
				t.Errorf("summary %+v", r.Summary)
			}
			for _, d := range r.Destinations {
				if d.Name != "clean" {
					continue
				}
				if len(d.Keys) != 13 {
					t.Errorf("clean: %d keys in Q3, want 13", len(d.Keys))
				}
				pruned := 0
				for _, k := range d.Keys {
					if k.Origin != report.OriginRotatord || k.StoredAt.IsZero() {
						t.Errorf("clean: key %+v not rotatord's", k)
					}
					if c.name == "kv2" && (k.Version == "" || k.KVState != "pruned" && k.KVState != "kept") {
						t.Errorf("kv2: key %s in version %q, state %q", k.ID, k.Version, k.KVState)
					}
					if k.KVState == "pruned" {
						pruned++
					}
				}
				// More history than max_versions: KV no longer keeps most of Q3's versions,
				// and rotatord's record still names every key.
				if c.name == "kv2" && pruned < 10 {
					t.Errorf("kv2: %d of Q3's keys beyond max_versions, want most", pruned)
				}
			}
			// The README's example comes from here: ROTATORD_REPORT_EXAMPLE=DIR writes it.
			if dir := os.Getenv("ROTATORD_REPORT_EXAMPLE"); dir != "" && c.name == "kv2" {
				for _, format := range []string{"text", "html"} {
					runMain(context.Background(), y.env, "report", "--config", y.cfg, "--from", "2026-07-01", "--to", "2026-10-01", "--output", format, "--out", filepath.Join(dir, "q3."+format))
				}
			}
			// A clean period: nothing found, exit 0.
			code, r, stderr = runReport(t, y.env, "--config", y.cfg, "--from", "2026-02-01", "--to", "2026-04-30")
			if code != 0 || len(r.Findings) != 0 || r.Summary.InScope != 5 || r.Summary.Compliant != 5 {
				t.Errorf("clean period: exit %d, %+v\n%s", code, r.Findings, stderr)
			}
		})
	}
}

// TestReportSignedVerifiedLeastPrivilege: under deploy/vault/rotatord-report-policy.hcl
// alone a signed report is written; verify accepts it, rejects one changed byte and a
// report signed by another transit key; each grant taken away is named by the preflight;
// with audit:read the provider's audit chain is checked, and a broken one is an error.
func TestReportSignedVerifiedLeastPrivilege(t *testing.T) {
	v := vaulttest.Start(t)
	vc := v.Client(t)
	// The policy file is written for a KV v2 mount "secret" (vaultdev's is KV v1).
	if err := vc.Sys().Unmount("secret"); err != nil {
		t.Fatal(err)
	}
	v.EnableKV(t, "secret", 2)
	if err := vc.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rotatord-report", "other"} {
		if _, err := vc.Logical().Write("transit/keys/"+k, map[string]any{"type": "ed25519"}); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := vaultkv.New(vaultkv.Options{Client: vc, Mount: "secret", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	y := seedYear(t, kv, fmt.Sprintf("vault:\n  address: %s\n  kv:\n    mount: secret\n", v.Addr))
	policy, err := os.ReadFile("../../deploy/vault/rotatord-report-policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Sys().PutPolicy("rotatord-report", string(policy)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	signed := filepath.Join(dir, "q3.txt")
	env := map[string]string{"K": y.env["K"], "VAULT_TOKEN": v.Token(t, "rotatord-report")}
	period := []string{"--config", y.cfg, "--from", "2026-07-01", "--to", "2026-10-01"}
	code, _, stderr := runMain(context.Background(), env, append([]string{"report", "--sign", "rotatord-report", "--out", signed}, period...)...)
	if code != 1 || !strings.Contains(stderr, "report: 5 destinations in scope, 3 compliant") {
		t.Fatalf("signed report under the report policy: exit %d\n%s", code, stderr)
	}
	body, err := os.ReadFile(signed)
	if err != nil || strings.Contains(string(body), "whsec_") || !strings.Contains(string(body), "signed_with=transit/rotatord-report signature=vault:v1:") {
		t.Fatalf("signed report: %v\n%s", err, tail(string(body), 400))
	}
	auditor := map[string]string{"VAULT_TOKEN": v.RootToken}
	code, stdout, stderr := runMain(context.Background(), auditor, "report", "verify", "--config", y.cfg, "--key", "rotatord-report", signed)
	if code != 0 || !strings.Contains(stdout, "digest ok") || !strings.Contains(stdout, "signature: valid, transit key transit/rotatord-report") {
		t.Errorf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// One changed byte.
	changed := filepath.Join(dir, "changed.txt")
	i := strings.Index(string(body), "compliant")
	b2 := []byte(string(body))
	b2[i] = 'C'
	if err := os.WriteFile(changed, b2, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runMain(context.Background(), auditor, "report", "verify", "--config", y.cfg, "--key", "rotatord-report", changed)
	if code != 1 || !strings.Contains(stderr, "TAMPERED") {
		t.Errorf("verify of a changed report: exit %d\n%s", code, stderr)
	}
	// Signed by another key (that says so, or claims to be the trusted one): invalid.
	other := filepath.Join(dir, "other.txt")
	root := map[string]string{"K": y.env["K"], "VAULT_TOKEN": v.RootToken}
	code, _, stderr = runMain(context.Background(), root, append([]string{"report", "--sign", "transit/other", "--out", other}, period...)...)
	if code != 1 {
		t.Fatalf("report signed with another key: exit %d\n%s", code, stderr)
	}
	forged, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	forged = []byte(strings.Replace(string(forged), "signed_with=transit/other", "signed_with=transit/rotatord-report", 1))
	if err := os.WriteFile(other, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runMain(context.Background(), auditor, "report", "verify", "--config", y.cfg, "--key", "rotatord-report", other)
	if code != 1 || !strings.Contains(stderr, "signature INVALID for transit key transit/rotatord-report") {
		t.Errorf("verify of a report signed by another key: exit %d\n%s", code, stderr)
	}
	// Each grant taken away is named before anything is read.
	for block, want := range map[string]string{
		`path "secret/data/webhookco/*"`:      "lacks read on secret/data/webhookco/",
		`path "secret/metadata/webhookco/*"`:  "lacks read on secret/metadata/webhookco/",
		`path "transit/sign/rotatord-report"`: "lacks update on transit/sign/rotatord-report",
	} {
		start := strings.Index(string(policy), block)
		end := start + strings.Index(string(policy)[start:], "}") + 1
		if err := vc.Sys().PutPolicy("partial", string(policy)[:start]+string(policy)[end:]); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"K": y.env["K"], "VAULT_TOKEN": v.Token(t, "partial")}
		code, _, stderr := runMain(context.Background(), env, append([]string{"report", "--sign", "rotatord-report", "--out", filepath.Join(dir, "partial.txt")}, period...)...)
		if code != 1 || !strings.Contains(stderr, "preflight: the Vault token "+want) {
			t.Errorf("without %s: exit %d\n%s", block, code, stderr)
		}
	}
	// With audit:read, the provider's audit chain: intact, then broken (an error finding).
	env["K"] = y.em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeAuditRead)
	code, stdout, stderr = runMain(context.Background(), env, append([]string{"report", "clean"}, period...)...)
	if code != 0 || !strings.Contains(stdout, "webhook.co audit chain: intact") {
		t.Errorf("audit chain intact: exit %d\n%s\n%s", code, stdout, stderr)
	}
	y.em.BreakAuditChain(17, "hash_mismatch", "row 17 does not chain to row 16")
	code, stdout, _ = runMain(context.Background(), env, append([]string{"report", "clean"}, period...)...)
	if code != 1 || !strings.Contains(stdout, "audit chain: BROKEN after 17 rows: hash_mismatch at row 17") || !strings.Contains(stdout, "source_unavailable") {
		t.Errorf("audit chain broken: exit %d\n%s", code, stdout)
	}
}

// TestReportAfterARealRun: rotatord really rotates (every 2 s, max_age 4 s), stops for
// longer than max_age while someone rotates the destination outside it, runs again; the
// report on that stretch finds the gap and names the outside key.
func TestReportAfterARealRun(t *testing.T) {
	s := newStack(t, "billing-prod")
	s.extraYAML = ""
	cfg := s.writeConfigWith(t, "@every 2s", freeAddr(t), "", "")
	editConfig(t, cfg, `    schedule: "@every 2s"`, "    schedule: \"@every 2s\"\n    max_age: 4s")
	id := s.dests["billing-prod"]
	from := time.Now().UTC().Truncate(time.Second)
	run := func(until func() bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan string, 1)
		go func() {
			_, _, stderr := runMain(ctx, s.env, "run", "--config", cfg)
			done <- stderr
		}()
		waitFor(t, 30*time.Second, "rotations", until)
		cancel()
		<-done
	}
	rotations := func() int { return len(s.em.RequestsFor(emulator.OpRotate, id)) }
	run(func() bool { return rotations() >= 3 })
	time.Sleep(time.Second)
	outside, err := s.em.RotateDirect(id)
	if err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(6 * time.Second) // no key for 6 s after the outside one; max_age is 4 s
	before := rotations()
	run(func() bool { return rotations() >= before+3 })
	to := time.Now().UTC().Add(time.Second).Truncate(time.Second)
	code, r, stderr := runReport(t, s.env, "--config", cfg, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	if code != 1 {
		t.Fatalf("report: exit %d, want 1 (the gap is an error)\n%s", code, stderr)
	}
	var gap, named bool
	for _, f := range r.Findings {
		switch f.Kind {
		case report.Overdue:
			// Overdue from max_age after the outside key until rotatord ran again.
			gap = gap || (!f.From.Before(stopped.Add(3*time.Second)) && f.From.Before(stopped.Add(5*time.Second)) && f.To.After(stopped.Add(6*time.Second)))
		case report.Outside:
			named = named || f.KeyID == outside
		case report.Lost, report.Source:
			t.Errorf("unexpected finding %+v", f)
		}
	}
	if !gap || !named {
		t.Errorf("gap found %v, outside key %s named %v; findings:\n%+v", gap, outside, named, r.Findings)
	}
	// Every key rotatord minted is in its record, stored where the config says.
	for _, d := range r.Destinations {
		for _, k := range d.Keys {
			if k.ID != outside && k.Origin != report.OriginRotatord && k.Origin != report.OriginCreated {
				t.Errorf("key %s: origin %s", k.ID, k.Origin)
			}
			if k.Origin == report.OriginRotatord && (k.Version == "" || !strings.HasPrefix(k.Location, "secret-v2/data/webhookco/billing-prod")) {
				t.Errorf("key %s stored in %q version %q", k.ID, k.Location, k.Version)
			}
		}
	}
}

// TestReportWaitsOut429sAndNeedsOnlyRead: the key lists go through the rate budget and
// their 429s are waited out (said on stderr); a key without endpoints:read is refused
// before anything is read, and a write scope is not needed.
func TestReportWaitsOut429sAndNeedsOnlyRead(t *testing.T) {
	fs := newFileStack(t, emulator.Options{}, "", "", "billing-prod", "orders-prod")
	code, stdout, stderr := runMain(context.Background(), fs.env, "rotate", "--config", fs.cfg, "billing-prod", "orders-prod")
	if code != 0 {
		t.Fatalf("rotate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	readOnly := map[string]string{"K": fs.em.AddKey(emulator.ScopeEndpointsRead)}
	fs.em.InjectFaults(emulator.OpListSigningSecrets, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"}, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"})
	from := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	to := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	code, r, stderr := runReport(t, readOnly, "--config", fs.cfg, "--from", from, "--to", to)
	if code != 0 || len(r.Findings) != 0 || r.Summary.Compliant != 2 || !strings.Contains(stderr, "answered 429 (rate limited); waiting 1s") {
		t.Errorf("report through 429s: exit %d, findings %+v\n%s", code, r.Findings, stderr)
	}
	for _, d := range r.Destinations {
		// The key the destination was created with, then rotatord's.
		if len(d.Keys) != 2 || d.Keys[0].Origin != report.OriginCreated || d.Keys[1].Origin != report.OriginRotatord || d.Keys[1].Location == "" {
			t.Errorf("%s: keys %+v, before %+v", d.Name, d.Keys, d.Before)
		}
	}
	writeOnly := map[string]string{"K": fs.em.AddKey(emulator.ScopeEndpointsWrite)}
	before := len(fs.em.RequestsFor(emulator.OpListSigningSecrets, ""))
	code, _, stderr = runMain(context.Background(), writeOnly, "report", "--config", fs.cfg, "--from", from, "--to", to)
	if code != 1 || !strings.Contains(stderr, "lacks the scope endpoints:read") || len(fs.em.RequestsFor(emulator.OpListSigningSecrets, "")) != before {
		t.Errorf("write-only key: exit %d\n%s", code, stderr)
	}
	// Bad command lines name what was wrong.
	for args, want := range map[string]string{
		"--from 2026-07-01":                              "--to is required",
		"--from 2026-10-01 --to 2026-07-01":              "is not before --to",
		"--from 1st-july --to 2026-10-01":                `--from "1st-july": want a date`,
		"--from 2026-07-01 --to 2026-10-01 --output pdf": `--output "pdf": want text, json, csv, html`,
		"--from 2026-07-01 --to 2026-10-01 nosuch":       `no destination called "nosuch"`,
	} {
		code, _, stderr := runMain(context.Background(), readOnly, append([]string{"report", "--config", fs.cfg}, strings.Fields(args)...)...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("report %s: exit %d, want %q in\n%s", args, code, want, stderr)
		}
	}
}
