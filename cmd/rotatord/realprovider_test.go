package main

// What the provider's real server does and the emulator now does too (issue: faithful to
// the real provider), seen through the real binary with a real Vault.

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/emulator"
)

// lateCommit makes the destination's next rotate commit 4 s after it arrives, with rotatord
// giving up after 1 s and settling for 8 s: the real server under load.
func lateCommit(s *stack, name string) {
	s.apiTimeout = "1s"
	s.retryYAML = "    settle_period: 8s\n"
	s.em.InjectFaultsFor(emulator.OpRotate, s.dests[name], emulator.Fault{Kind: emulator.LateCommit, Delay: 4 * time.Second})
}

// assertEveryKeyAccounted checks that no two rotates of one destination were in flight at
// once, that every key minted for name is the one in Vault or is named in report (as
// lost), and that Vault holds the provider's active key.
func assertEveryKeyAccounted(t *testing.T, s *stack, name, report string) {
	t.Helper()
	if n := s.em.Overlaps(); n != 0 {
		t.Errorf("%d rotates reached the provider while an earlier one of the destination could still commit", n)
	}
	s.assertVaultHoldsActive(t, name)
	sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/"+name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.em.Minted() {
		if m.DestinationID == s.dests[name] && m.KeyID != sec.Data["key_id"] && !strings.Contains(report, m.KeyID) {
			t.Errorf("key %s was minted, is not in Vault, and nobody reported it lost", m.KeyID)
		}
	}
}

// TestLateCommitWithTheRotateCommand: `rotatord rotate` times out on a rotate the provider
// commits 3 s later. It sends no second rotate before the late key shows, reports that key
// lost, recovers it, and Vault ends with the provider's active key.
func TestLateCommitWithTheRotateCommand(t *testing.T) {
	s := newStack(t, "billing-prod")
	lateCommit(s, "billing-prod")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "rotate", "--config", cfg, "billing-prod")
	if code != 0 || !strings.Contains(stdout, "billing-prod: rotated, key ") || !strings.Contains(stdout, "recovered from lost key ") {
		t.Errorf("rotate: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := len(s.em.Minted()); n != 2 {
		t.Errorf("%d keys minted, want 2 (the late one and the recovery)", n)
	}
	assertEveryKeyAccounted(t, s, "billing-prod", stdout+stderr)
}

// TestLateCommitWithReplicas: the same through two `rotatord run` replicas with Vault
// leases: the holder keeps its lease while it settles, so its peer never rotates beside it.
func TestLateCommitWithReplicas(t *testing.T) {
	longTest(t)
	s := newStack(t, "billing-prod")
	s.extraYAML = vaultCoordination
	lateCommit(s, "billing-prod")
	a := startReplica(t, s, "@every 10s")
	b := startReplica(t, s, "@every 10s")
	waitFor(t, 40*time.Second, "a replica to report the late key lost and store another", func() bool {
		log := a.log() + b.log()
		return strings.Contains(log, "signing secret lost") && strings.Contains(log, `"rotation succeeded"`)
	})
	// Two more slots of ordinary rotations.
	time.Sleep(20 * time.Second)
	for _, r := range []*replica{a, b} {
		if r.cmd.ProcessState != nil {
			t.Fatalf("replica pid %d exited early", r.cmd.Process.Pid)
		}
	}
	assertEveryKeyAccounted(t, s, "billing-prod", a.log()+b.log())
}

// TestBadWatchdogValueKeepsRunning: WATCHDOG_USEC of 0 or not a number is logged and
// ignored; the daemon keeps running (it used to end with exit 0, so Restart=on-failure
// never brought it back).
func TestBadWatchdogValueKeepsRunning(t *testing.T) {
	for _, v := range []string{"0", "soon"} {
		t.Run(v, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", v)
			s := newStack(t, "billing-prod")
			addr := freeAddr(t)
			_, stop := startRun(t, s.env, "--config", s.writeConfig(t, "@daily", addr))
			waitFor(t, 20*time.Second, "/readyz", func() bool { return tryScrape("http://"+addr+"/readyz") != "" })
			time.Sleep(time.Second)
			if body := tryScrape("http://" + addr + "/healthz"); body == "" {
				code, log := stop()
				t.Fatalf("the daemon stopped with WATCHDOG_USEC=%s: exit %d\n%s", v, code, tail(log, 2000))
			}
			code, log := stop()
			if code != 0 || !strings.Contains(log, "systemd watchdog settings unreadable; running without the watchdog") {
				t.Errorf("exit %d; log:\n%s", code, tail(log, 2000))
			}
		})
	}
}

// TestRotateANameGivenTwiceOnce: `rotate alpha alpha` is one rotation (two would revoke
// the key the receivers got a moment before).
func TestRotateANameGivenTwiceOnce(t *testing.T) {
	s := newStack(t, "alpha")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "rotate", "--config", cfg, "alpha", "alpha")
	if code != 0 || strings.Count(stdout, "alpha: rotated, key ") != 1 {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, "")); n != 1 {
		t.Errorf("%d rotate requests, want 1", n)
	}
}

// TestCoverageWithoutRules: with no discovery rules, the daemon still lists the account
// when its key may (endpoints:read): destinations it does not cover count as uncovered
// (so the alert can fire in the most common setup), and a configured destination the
// provider does not have is missing_at_provider: never sent a rotate, checked again at
// each discovery.interval, alerted on.
func TestCoverageWithoutRules(t *testing.T) {
	s := newStack(t, "billing", "orders")
	s.em.AddDestination("someone-elses-1")
	s.em.AddDestination("someone-elses-2")
	s.dests["ghost"] = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b" // in the file, not at the provider
	addr := freeAddr(t)
	_, stop := startRun(t, s.env, "--config", s.writeConfig(t, "@every 1s", addr))
	waitFor(t, 20*time.Second, "both real destinations to rotate", func() bool {
		return len(s.em.RequestsFor(emulator.OpRotate, s.dests["billing"])) > 0 && len(s.em.RequestsFor(emulator.OpRotate, s.dests["orders"])) > 0
	})
	time.Sleep(2 * time.Second)
	metrics := tryScrape("http://" + addr + "/metrics")
	code, log := stop()
	for state, want := range map[string]string{"covered": "2", "uncovered": "2", "missing_at_provider": "1"} {
		if !strings.Contains(metrics, `rotatord_destinations{state="`+state+`"} `+want+"\n") {
			t.Errorf("rotatord_destinations{state=%q} is not %s:\n%s", state, want, grepLines(metrics, "rotatord_destinations{"))
		}
	}
	if n := len(s.em.RequestsFor(emulator.OpRotate, s.dests["ghost"])) + len(s.em.RequestsFor(emulator.OpListSigningSecrets, s.dests["ghost"])); n != 0 {
		t.Errorf("%d requests about the destination the provider does not have, want 0", n)
	}
	if code != 0 || !strings.Contains(log, `"state":"missing_at_provider"`) {
		t.Errorf("exit %d; the log does not name the missing destination:\n%s", code, tail(log, 3000))
	}
}

// grepLines returns the lines of text that contain part.
func grepLines(text, part string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, part) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestProviderStringsCannotDriveTheTerminal: labels and URLs from the account's listing
// (anyone in the organisation can set them) reach the terminal with control, C1 and bidi
// characters escaped in status, check and plan: a label cannot set the window title, clear
// the screen or print a fake "all destinations covered".
func TestProviderStringsCannotDriveTheTerminal(t *testing.T) {
	s := newStack(t, "billing")
	hostile := "x\x1b]0;pwned\x07\x1b[2J\x1b[Hall destinations covered\u202e\u009b31m"
	s.em.AddDestinationAt(&hostile, "https://evil.example.com/\x1b[2Jhook")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	for _, args := range [][]string{{"status", "--online"}, {"check", "--online"}, {"plan", "--online"}} {
		_, stdout, stderr := runMain(context.Background(), s.env, append(args, "--config", cfg)...)
		out := stdout + stderr
		if strings.ContainsAny(out, "\x1b\x07\u202e\u009b") {
			t.Errorf("%v printed a control character: %q", args, out)
		}
		if !strings.Contains(stdout, `\x1b]0;pwned`) {
			t.Errorf("%v does not show the label, escaped:\n%s", args, stdout)
		}
	}
}

// TestCheckNamesRulesThatCouldCollide: check warns for each include rule whose name and
// vault_path have no {id} (two destinations with one label would share them).
func TestCheckNamesRulesThatCouldCollide(t *testing.T) {
	s := newStack(t)
	s.extraYAML = "discovery:\n  rules:\n    - {url_host: \"*.hooks.example.com\"}\n    - {url_host: \"billing.example.com\", name: \"billing-{id}\"}\n    - {url_host: \"legacy.example.com\", exclude: true}\n"
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "check", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, `warning: discovery.rules[0]: name "{label}" and vault_path "webhookco/{name}" have no {id}`) ||
		strings.Contains(stdout, "discovery.rules[1]:") || strings.Contains(stdout, "discovery.rules[2]:") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestCheckOnlineIsPaced: check --online goes through api.rate_limit like the daemon (it
// used to list 10,000 keys in 2.8 s against a limit of 10/s), waits out a 429 as the
// daemon does, and says on stderr what it waits for.
func TestCheckOnlineIsPaced(t *testing.T) {
	s := newStack(t, "d1", "d2", "d3", "d4", "d5", "d6")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	editConfig(t, cfg, "  timeout: 5s\n", "  timeout: 5s\n  rate_limit: 5\n  rate_burst: 1\n")
	s.em.InjectFaults(emulator.OpListSigningSecrets, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"})
	code, stdout, stderr := runMain(context.Background(), s.env, "check", "--online", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "online check: ok") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "answered 429 (rate limited); waiting 1s") {
		t.Errorf("check did not say it waited on a 429:\n%s", stderr)
	}
	lists := s.em.RequestsFor(emulator.OpListSigningSecrets, "")
	if len(lists) != 7 {
		t.Fatalf("%d key listings, want 7 (6 and the one answered 429)", len(lists))
	}
	// Seven calls at 5/s with a burst of 1, and a 1 s wait: at least 1.2 s + 1 s apart.
	if span := lists[len(lists)-1].At.Sub(lists[0].At); span < 2*time.Second {
		t.Errorf("7 key listings within %s: api.rate_limit 5/s and the 429's Retry-After were not honoured", span)
	}
}

// TestStatusSaysWhatIsTrue: status --online says "nothing stored" (not DRIFT) for a
// destination never rotated, gives no next time for one the provider does not have, and
// never a negative age (a secret stored by a host whose clock is ahead); with a key that may
// not list, status and plan name the missing scope instead of printing a raw 403.
func TestStatusSaysWhatIsTrue(t *testing.T) {
	s := newStack(t, "fresh", "ahead")
	s.dests["ghost"] = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b" // in the file, not at the provider
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	// "ahead" was stored by a host whose clock runs a minute ahead.
	active := s.em.ActiveKeys(s.dests["ahead"])[0]
	if _, err := s.vault.Client(t).KVv2("secret-v2").Put(context.Background(), "webhookco/ahead", map[string]any{
		"signing_secret": active.Secret, "key_id": active.ID, "destination_id": s.dests["ahead"],
		"rotated_at": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	_, stdout, stderr := runMain(context.Background(), s.env, "status", "--online", "--config", cfg)
	rows := tableRows(stdout)
	if row := rows["fresh"]; strings.Contains(row, "DRIFT") || !strings.Contains(row, "nothing stored; active ") {
		t.Errorf("never rotated: %q\n%s%s", row, stdout, stderr)
	}
	if row := rows["ghost"]; !strings.Contains(row, "not at webhook.co") || strings.Contains(row, "UTC") && strings.Contains(row, "next") {
		t.Errorf("not at the provider: %q", row)
	}
	if row := rows["ahead"]; strings.Contains(row, "UTC -") || !strings.Contains(row, "clocks differ") {
		t.Errorf("stored with a clock ahead: %q", row)
	}

	writeOnly := map[string]string{"WEBHOOKCO_API_KEY": s.em.AddKey(emulator.ScopeEndpointsWrite), "VAULT_TOKEN": s.vault.RootToken}
	for _, cmd := range []string{"status", "plan"} {
		code, stdout, stderr := runMain(context.Background(), writeOnly, cmd, "--online", "--config", cfg)
		if code == 0 || !strings.Contains(stdout+stderr, "lacks the scope endpoints:read") || strings.Contains(stdout+stderr, "\n\t") {
			t.Errorf("%s --online with a write-only key: exit %d\n%s%s", cmd, code, stdout, stderr)
		}
	}
}

// TestRotateSaysWhyNotAtTheProvider: `rotate beta` for a destination in the file that the
// provider's list does not have says so, instead of "no destination named".
func TestRotateSaysWhyNotAtTheProvider(t *testing.T) {
	s := newStack(t, "alpha")
	s.dests["beta"] = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b"
	s.extraYAML = "discovery:\n  rules:\n    - {url_host: \"nothing.example.com\"}\n"
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	code, stdout, stderr := runMain(context.Background(), s.env, "rotate", "--config", cfg, "beta")
	if code == 0 || strings.Contains(stderr, `no destination named "beta"`) || !strings.Contains(stderr, "beta is in "+cfg+" but not in webhook.co's list") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestFirstStartIsNotADowntime: a secret older than its last slot found at rotatord's first
// start with a state_dir (a migration from another tool) is caught up without the claim that
// a rotation was "missed while rotatord was down"; at a later start it is that claim.
func TestFirstStartIsNotADowntime(t *testing.T) {
	s := newStack(t, "billing")
	storeOld := func() {
		active := s.em.ActiveKeys(s.dests["billing"])[0]
		if _, err := s.vault.Client(t).KVv2("secret-v2").Put(context.Background(), "webhookco/billing", map[string]any{
			"signing_secret": active.Secret, "key_id": active.ID, "destination_id": s.dests["billing"],
			"rotated_at": time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	start := func() string {
		_, stop := startRun(t, s.env, "--config", cfg)
		waitFor(t, 20*time.Second, "the catch-up", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, s.dests["billing"])) > 0 })
		_, log := stop()
		return log
	}
	storeOld()
	if log := start(); strings.Contains(log, "missed while rotatord was down") || !strings.Contains(log, "first start with this state_dir") {
		t.Errorf("first start:\n%s", tail(log, 2000))
	}
	storeOld()
	n := len(s.em.RequestsFor(emulator.OpRotate, s.dests["billing"]))
	_, stop := startRun(t, s.env, "--config", cfg)
	waitFor(t, 20*time.Second, "the second catch-up", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, s.dests["billing"])) > n })
	if _, log := stop(); !strings.Contains(log, "missed while rotatord was down") {
		t.Errorf("a later start:\n%s", tail(log, 2000))
	}
}

// TestCheckWithATokenWithoutRights: a Vault token that may do nothing rotatord needs makes
// check --online fail naming the missing grants, in short lines, and no destination's row
// says ok.
func TestCheckWithATokenWithoutRights(t *testing.T) {
	s := newStack(t, "billing")
	cfg := s.writeConfig(t, "@daily", "127.0.0.1:0")
	env := map[string]string{"WEBHOOKCO_API_KEY": s.apiKey, "VAULT_TOKEN": s.vault.Token(t, "default")}
	code, stdout, stderr := runMain(context.Background(), env, "check", "--online", "--config", cfg)
	if code != 1 || !strings.Contains(stdout, "the Vault token lacks") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	if row := tableRows(stdout)["billing"]; strings.HasSuffix(strings.TrimSpace(row), " ok") {
		t.Errorf("the destination's row says ok: %q", row)
	}
	if strings.Contains(stdout+stderr, "\n\t") || strings.Contains(stdout+stderr, "* permission denied\n") {
		t.Errorf("a raw multi-line Vault error:\n%s%s", stdout, stderr)
	}
}

// TestDeletedDestinationIsMarkedNotTouched: a destination rotatord covered, deleted at
// webhook.co (gone from its list), is reported deleted (metric, status) and no longer
// called; its secret in Vault is left as it was, and its KV v2 metadata says since when.
func TestDeletedDestinationIsMarkedNotTouched(t *testing.T) {
	s := newStack(t, "billing", "orders")
	s.extraYAML = "discovery:\n  interval: 1s\n"
	addr := freeAddr(t)
	cfg := s.writeConfig(t, "@every 2s", addr)
	_, stop := startRun(t, s.env, "--config", cfg)
	defer stop()
	waitFor(t, 20*time.Second, "billing to rotate", func() bool { return len(s.em.RequestsFor(emulator.OpRotate, s.dests["billing"])) > 0 })
	s.em.DeleteDestination(s.dests["billing"])
	deletedAt := time.Now()
	waitFor(t, 20*time.Second, "the deletion to be reported", func() bool {
		return strings.Contains(tryScrape("http://"+addr+"/metrics"), `rotatord_destinations{state="revoked"} 1`)
	})
	var meta *vaultapi.KVMetadata
	waitFor(t, 10*time.Second, "the secret's metadata to say so", func() bool {
		m, err := s.vault.Client(t).KVv2("secret-v2").GetMetadata(context.Background(), "webhookco/billing")
		meta = m
		return err == nil && m.CustomMetadata["deleted_at_provider"] != nil
	})
	sec, err := s.vault.Client(t).KVv2("secret-v2").Get(context.Background(), "webhookco/billing")
	if err != nil || sec.Data["key_id"] == nil || sec.VersionMetadata.Version != meta.CurrentVersion {
		t.Errorf("the stored secret changed: %v %v", sec, err)
	}
	time.Sleep(3 * time.Second)
	for _, r := range s.em.Requests() {
		if r.DestinationID == s.dests["billing"] && r.At.After(deletedAt.Add(3*time.Second)) {
			t.Errorf("%s of the deleted destination at %s", r.Operation, r.At.Format(time.TimeOnly))
		}
	}
	code, stdout, _ := runMain(context.Background(), s.env, "status", "--online", "--config", cfg)
	if row := tableRows(stdout)["billing"]; code != 1 || !strings.Contains(row, "not at webhook.co (revoked)") {
		t.Errorf("status --online: exit %d, row %q\n%s", code, row, stdout)
	}
}

// TestHelpIsCompleteAndOnStdout: each command's --help goes to stdout, exits 0 and names
// its arguments; and the top-level usage lists every flag each command has (it used to miss
// status --at, plan --from, reload --timeout and demo flags).
func TestHelpIsCompleteAndOnStdout(t *testing.T) {
	_, top, _ := runMain(context.Background(), nil, "help")
	flagLine := regexp.MustCompile(`(?m)^  -(\S+)`)
	for cmd, arg := range map[string]string{"run": "", "rotate": "NAME...", "check": "", "plan": "", "status": "", "reload": "PID", "demo": "", "spool list": ""} {
		args := append(strings.Fields(cmd), "--help")
		code, stdout, stderr := runMain(context.Background(), nil, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: rotatord "+cmd) || (arg != "" && !strings.Contains(stdout, arg)) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, stdout, stderr)
		}
		line := ""
		for _, l := range strings.Split(top, "\n") {
			if strings.HasPrefix(l, "  rotatord "+cmd+" ") {
				line = l
			}
		}
		for _, m := range flagLine.FindAllStringSubmatch(stdout, -1) {
			if !strings.Contains(line, "--"+m[1]) {
				t.Errorf("the usage's line for %s lacks --%s: %q", cmd, m[1], line)
			}
		}
	}
}
