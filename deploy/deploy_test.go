// Package deploy_test checks the files under deploy/ with the real tools: systemd-analyze
// for the unit, promtool for the alert rules and the live /metrics output, the rotatord
// binary under a notify socket of its own, and the registry for the dashboard's queries.
// A missing tool fails the test (make test and .ci/run install them); nothing is skipped.
package deploy_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/rotatord/rotatord/internal/account"
	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// tool returns the path of a required command, or fails saying how to get it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's %s package (make test and .ci/run do)", name, pkg)
	}
	return p
}

// rotatordBinary builds rotatord the way the Makefile does (static, version-stamped).
func rotatordBinary(t *testing.T) string { return bintest.Rotatord(t) }

// TestSystemdUnit: systemd-analyze verify accepts the unit with the binary path it names
// pointing at a real rotatord, and systemd-analyze security rates it OK or better.
func TestSystemdUnit(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("systemd/rotatord.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/rotatord run")) {
		t.Fatal("the unit no longer starts /usr/local/bin/rotatord run")
	}
	// The binary the unit names, placed where verify can find it.
	dir := t.TempDir()
	local := filepath.Join(dir, "rotatord.service")
	body := bytes.ReplaceAll(unit, []byte("/usr/local/bin/rotatord"), []byte(rotatordBinary(t)))
	if err := os.WriteFile(local, body, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", local).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("rotatord.service")) {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The Vault credential comes from a drop-in per auth method: the unit alone starts with
	// AppRole or Kubernetes auth, where no token file exists.
	if bytes.Contains(unit, []byte("vault-token")) && bytes.Contains(unit, []byte("\nLoadCredential=vault-token")) {
		t.Error("the unit itself loads the vault-token credential; it belongs in a drop-in")
	}
	dropins, err := filepath.Glob("systemd/rotatord.service.d/*.conf")
	if err != nil || len(dropins) < 2 {
		t.Fatalf("drop-ins: %v %v", dropins, err)
	}
	for _, d := range dropins {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "rotatord.service"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		conf, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "rotatord.service.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rotatord.service.d", filepath.Base(d)), conf, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", filepath.Join(dir, "rotatord.service")).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("rotatord.service")) {
			t.Errorf("systemd-analyze verify with %s: %v\n%s", d, err, out)
		}
	}

	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", local).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for rotatord\.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level := string(m[2]); level != "OK" && level != "SAFE" {
		t.Errorf("exposure %s %s, want OK or better", m[1], level)
	}
	t.Logf("systemd-analyze security: %s %s", m[1], m[2])
}

// TestNotifyWatchdogAndLiveMetrics runs the real binary (the demo) under a notify socket of
// its own with a watchdog: it must send READY=1, then WATCHDOG=1, survive SIGHUP, and send
// STOPPING=1 on SIGTERM and exit 0. Its live /metrics must pass promtool check metrics.
func TestNotifyWatchdogAndLiveMetrics(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	dir, err := os.MkdirTemp("", "sd") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	states := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(states)
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					states <- line
				}
			}
		}
	}()

	metricsAddr := freeAddr(t)
	cmd := exec.Command(rotatordBinary(t), "demo", "--metrics-listen", metricsAddr, "--rate-limit-share", "0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	expect := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s, ok := <-states:
				if !ok {
					t.Fatalf("notify socket closed before %s", want)
				}
				if s == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %s within 20s; stderr:\n%s", want, stderr.String())
			}
		}
	}
	expect("READY=1")
	expect("WATCHDOG=1")
	expect("WATCHDOG=1")

	// SIGHUP (ExecReload=) must not stop it.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	expect("WATCHDOG=1")

	// Live metrics, after a few rotations, through promtool.
	time.Sleep(3 * time.Second)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(exposition)
	if out, err := check.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if !bytes.Contains(exposition, []byte(`rotatord_build_info{version="`+bintest.Version+`"} 1`)) {
		t.Error("the version stamp is not in rotatord_build_info")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	// The demo has no config file to reload: the SIGHUP is reported, and it keeps running.
	if !strings.Contains(stderr.String(), "config reload rejected; the config in force is kept") {
		t.Error("SIGHUP was not reported in the log")
	}
}

func TestPromtoolRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "prometheus/rotatord-rules.yaml"},
		{"test", "rules", "prometheus/rotatord-rules.test.yaml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a runbook section.
	rules, _ := os.ReadFile("prometheus/rotatord-rules.yaml")
	runbook, _ := os.ReadFile("prometheus/RUNBOOK.md")
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\w+)`).FindAllSubmatch(rules, -1)
	if len(alerts) < 7 {
		t.Fatalf("%d alerts found", len(alerts))
	}
	for _, a := range alerts {
		if !bytes.Contains(runbook, []byte("## "+string(a[1]))) {
			t.Errorf("RUNBOOK.md has no section for %s", a[1])
		}
	}
}

// TestDashboardUsesExportedMetrics: every metric a dashboard query names is one rotatord exports.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("grafana/rotatord.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exported := exportedNames(t)
	used := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`\brotatord_[a-z_]+`).FindAllString(tg.Expr, -1) {
				used++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if !exported[name] && !exported[base] {
					t.Errorf("panel %q queries %s, which rotatord does not export", p.Title, name)
				}
			}
		}
	}
	if used < 10 {
		t.Errorf("only %d metric references in the dashboard", used)
	}
}

// exportedNames gathers the metric names of a registry built as the daemon builds it.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(metrics.Options{Registerer: reg, Version: "x", Destinations: []string{"d"}, FailureReasons: rotate.FailureReasons,
		Operations: webhookco.Operations, Codes: []string{"200"}, Sink: "vault_kv2", SkipProcessCollectors: true, CoverageStates: account.States})
	// The series that appear once something happened: a failure, a lost secret, a skip, drift.
	m.Failure("d", rotate.ReasonLost)
	m.LostSecrets.WithLabelValues("d").Inc()
	m.Skipped("d")
	m.Fleet.SetDrift("d", true)
	m.DriftDetected.WithLabelValues("d").Inc()
	m.RecordOutcome("d", false, rotate.ReasonLost)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

// TestKubernetesSidecar: the example parses, its embedded config passes `rotatord check`
// with the files the pod would have, and the rotatord sidecar is locked down, probed, and
// given a grace period that covers its shutdown timeout. (The strict decode against the
// k8s.io/api types is deploy/kubernetes/kubecheck, a module of its own.)
func TestKubernetesSidecar(t *testing.T) {
	f, err := os.Open("kubernetes/sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	kinds := map[string]map[string]any{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("sidecar.yaml: %v", err)
		}
		kinds[fmt.Sprint(doc["kind"])] = doc
	}
	cm := kinds["ConfigMap"]["data"].(map[string]any)["config.yaml"].(string)
	cfg, err := config.Parse([]byte(cm))
	if err != nil {
		t.Fatalf("the ConfigMap's config.yaml is invalid: %v", err)
	}
	checkAsInThePod(t, cm)

	spec := kinds["Deployment"]["spec"].(map[string]any)
	// Several replicas, or overlapping pods in a rollout, are safe only with Vault leases.
	several := spec["replicas"] != 1 || spec["strategy"].(map[string]any)["type"] != "Recreate"
	if several && cfg.Coordination.Mode != config.CoordinationVault {
		t.Errorf("replicas %v, strategy %v with coordination.mode %q: want mode vault (or one replica and Recreate)",
			spec["replicas"], spec["strategy"], cfg.Coordination.Mode)
	}
	podSpec := spec["template"].(map[string]any)["spec"].(map[string]any)
	var rot map[string]any
	all, _ := podSpec["containers"].([]any)
	inits, _ := podSpec["initContainers"].([]any)
	for _, c := range inits {
		if c.(map[string]any)["name"] == "rotatord" {
			rot = c.(map[string]any)
		}
	}
	all = append(all, inits...)
	if rot == nil || rot["restartPolicy"] != "Always" {
		t.Fatalf("rotatord is not a native sidecar (an init container with restartPolicy Always): %v", rot)
	}
	sc := rot["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["runAsNonRoot"] != true ||
		fmt.Sprint(sc["capabilities"].(map[string]any)["drop"]) != "[ALL]" {
		t.Errorf("securityContext = %v", sc)
	}
	for probe, path := range map[string]string{"startupProbe": "/readyz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		p, ok := rot[probe].(map[string]any)
		if !ok || p["httpGet"].(map[string]any)["path"] != path {
			t.Errorf("%s = %v, want httpGet %s", probe, rot[probe], path)
		}
	}
	// The startup probe waits longer than the longest start-up (two Vault steps at vault.timeout).
	if p, ok := rot["startupProbe"].(map[string]any); ok {
		period, _ := p["periodSeconds"].(int)
		failures, _ := p["failureThreshold"].(int)
		if allowed := time.Duration(period*failures) * time.Second; allowed < 2*cfg.Vault.Timeout {
			t.Errorf("the startup probe allows %v, want at least %v (2 x vault.timeout)", allowed, 2*cfg.Vault.Timeout)
		}
	}
	// The application stops first, then rotatord: the grace period must hold its shutdown timeout and more.
	if grace, _ := podSpec["terminationGracePeriodSeconds"].(int); time.Duration(grace)*time.Second < cfg.Scheduler.ShutdownTimeout+30*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d, want at least shutdown_timeout (%v) + 30 s for the application", grace, cfg.Scheduler.ShutdownTimeout)
	}
	if _, ok := rot["resources"].(map[string]any)["requests"]; !ok {
		t.Error("no resource requests")
	}
	// Applying the file must not overwrite the API key Secret the README creates first.
	if kinds["Secret"] != nil {
		t.Error("the example holds a Secret: applying it would replace the API key created with kubectl")
	}
	// The Vault role's credential reaches the rotatord container only.
	if podSpec["automountServiceAccountToken"] != false || kinds["ServiceAccount"] == nil {
		t.Errorf("automountServiceAccountToken = %v, ServiceAccount defined: %v; want false and defined", podSpec["automountServiceAccountToken"], kinds["ServiceAccount"] != nil)
	}
	tokenVolume := ""
	for _, v := range podSpec["volumes"].([]any) {
		v := v.(map[string]any)
		if p, ok := v["projected"].(map[string]any); ok && strings.Contains(fmt.Sprint(p["sources"]), "serviceAccountToken") {
			tokenVolume = fmt.Sprint(v["name"])
			// Bound to Vault: the token is no use to the API server or anyone else.
			if !strings.Contains(fmt.Sprint(p["sources"]), "audience:vault") {
				t.Errorf("the projected token has no audience vault: %v", p["sources"])
			}
		}
	}
	for _, c := range all {
		c := c.(map[string]any)
		mounted := strings.Contains(fmt.Sprint(c["volumeMounts"]), "name:"+tokenVolume)
		if tokenVolume == "" || mounted != (c["name"] == "rotatord") {
			t.Errorf("container %v: service account token mounted %v (volume %q); want rotatord alone", c["name"], mounted, tokenVolume)
		}
	}
	if !strings.HasPrefix(cfg.Vault.Auth.ServiceAccountTokenFile, "/var/run/secrets/rotatord/vault/") {
		t.Errorf("service_account_token_file = %s, want the projected token", cfg.Vault.Auth.ServiceAccountTokenFile)
	}
	np, ok := kinds["NetworkPolicy"]
	if !ok || !strings.Contains(fmt.Sprint(np["spec"]), "port:9464") || !strings.Contains(fmt.Sprint(np["spec"]), "monitoring") {
		t.Errorf("NetworkPolicy = %v; want the metrics port open to the monitoring namespace only", np)
	}
}

// checkAsInThePod runs `rotatord check` on the ConfigMap's config with the pod's paths moved
// under a temporary directory holding what the pod would: a real CA file (the ConfigMap
// created from vault-ca.crt), the API key and the projected token.
func checkAsInThePod(t *testing.T, config string) {
	t.Helper()
	root := t.TempDir()
	for _, p := range []string{"/etc/rotatord/", "/run/secrets/rotatord/", "/var/run/secrets/rotatord/vault/", "/var/lib/rotatord"} {
		config = strings.ReplaceAll(config, p, root+p)
	}
	caPEM, _ := selfSigned(t, net.IPv4(127, 0, 0, 1))
	files := map[string]string{
		"/etc/rotatord/config.yaml":               config,
		"/etc/rotatord/vault-ca.crt":              string(caPEM),
		"/run/secrets/rotatord/webhookco-api-key": "whk_" + strings.Repeat("k", 49) + "\n",
		"/var/run/secrets/rotatord/vault/token":   "eyJhbGciOiJSUzI1NiJ9.e30.sig\n",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(root+p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(rotatordBinary(t), "check", "--config", root+"/etc/rotatord/config.yaml").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok")) {
		t.Errorf("rotatord check on the ConfigMap's config: %v\n%s", err, out)
	}
}

// TestContainerBinaryIsStatic: the scratch image needs a binary without a dynamic loader.
func TestContainerBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(rotatordBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("rotatord has a dynamic loader (PT_INTERP); build with CGO_ENABLED=0")
		}
	}
	df, err := os.ReadFile("container/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM scratch", "USER 65532:65532", "COPY bin/ca-certificates.crt", "VOLUME [\"/var/lib/rotatord\"]", "THIRD_PARTY_NOTICES", "LICENSE"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The two-stage build's base image: fully qualified, and pinned to go.mod's toolchain.
	build, err := os.ReadFile("container/Dockerfile.build")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	// go.mod's go line requires the patched toolchain (a toolchain line is ignored under
	// GOTOOLCHAIN=local).
	toolchain := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if toolchain == nil {
		t.Fatal("go.mod names no go version")
	}
	if want := "FROM docker.io/library/golang:" + string(toolchain[1]) + "-bookworm AS build"; !bytes.Contains(build, []byte(want)) {
		t.Errorf("Dockerfile.build lacks %q", want)
	}
	for _, want := range []string{"THIRD_PARTY_NOTICES", "LICENSE"} {
		if !bytes.Contains(build, []byte(want)) {
			t.Errorf("Dockerfile.build lacks %q", want)
		}
	}
}

// freeAddr is a loopback address that was free a moment ago.
var freeAddr = bintest.FreeAddr
