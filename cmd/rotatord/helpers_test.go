package main

// Helpers shared by the tests of this package, in one place.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rotatord/rotatord/internal/bintest"
	"github.com/rotatord/rotatord/internal/emulator"
)

// startRun runs `rotatord run` in-process with a SIGHUP channel; stop ends it and returns
// its exit code and log.
func startRun(t *testing.T, env map[string]string, args ...string) (hup chan os.Signal, stop func() (int, string)) {
	t.Helper()
	hup = make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var logs lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"run"}, args...), Env{Stdout: &logs, Stderr: &logs, Getenv: func(k string) string { return env[k] }, Reload: hup})
	}()
	var once bool
	var code int
	return hup, func() (int, string) {
		if !once {
			cancel()
			code, once = <-done, true
		}
		return code, logs.String()
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// vaultCoordination is the coordination section of the replica tests.
const vaultCoordination = "coordination:\n  mode: vault\n  lease_ttl: 10s\n  vault:\n    mount: secret-v2\n    path: rotatord/leases\n"

// editConfig applies a textual replacement to a config file, failing when old is absent.
func editConfig(t *testing.T, cfg, old, new string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("config has no %q:\n%s", old, b)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sumLines adds up the samples of the exposition lines that start with prefix and contain part.
func sumLines(t *testing.T, text, prefix, part string) float64 {
	t.Helper()
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, part) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
	}
	return total
}

// sumMetric adds up every sample of the series whose line starts with prefix.
func sumMetric(t *testing.T, text, prefix string) float64 {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\{[^}]*\})?\s+(\S+)$`)
	if strings.HasSuffix(prefix, "{") {
		re = regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `[^}]*\}\s+(\S+)$`)
	}
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[len(m)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
	}
	return total
}

// waitFor polls ok until it holds, or fails the test after limit; tryScrape fetches a URL
// ("": no answer); freeAddr is a free loopback address.
var (
	waitFor   = bintest.WaitFor
	tryScrape = bintest.Scrape
	freeAddr  = bintest.FreeAddr
)

// lockedBuffer is an io.Writer safe for the daemon's goroutines.
type lockedBuffer = bintest.Buffer

// runMain runs one rotatord command in-process.
func runMain(ctx context.Context, env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb lockedBuffer
	code = Main(ctx, args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// tableRows maps the first column of check's table to the row with spaces folded.
func tableRows(out string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]] = strings.Join(f, " ")
		}
	}
	return rows
}

// longTest marks a test that takes tens of seconds to minutes of wall clock (soaks, real
// outages, replicas over several schedule slots). `make test` (the CI's command) runs every
// one; `make test-quick` (go test -short) leaves them out, saying so, for quick feedback
// while working.
func longTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("long test: left out by -short (make test-quick); make test runs it")
	}
}

// buildBinary returns the rotatord binary the tests run.
func buildBinary(t *testing.T) string { return bintest.Rotatord(t) }

// fileStack is the emulator with one API key and the named destinations, and a config that
// stores into files: for command tests that need no Vault. api is YAML added under api:,
// top YAML added at the top level. It returns the config's path and the destinations' ids.
type fileStack struct {
	em  *emulator.Emulator
	key string
	cfg string
	dir string
	ids map[string]string
	env map[string]string
}

func newFileStack(t *testing.T, opts emulator.Options, api, top string, names ...string) *fileStack {
	t.Helper()
	fs := &fileStack{em: emulator.New(opts), dir: t.TempDir(), ids: map[string]string{}}
	apiURL, err := fs.em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.em.Close() })
	fs.key = fs.em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	fs.env = map[string]string{"K": fs.key}
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi:\n  base_url: %s\n  token_env: K\n%ssink:\n  type: file\n  dir: %s\n%sdestinations:\n",
		filepath.Join(fs.dir, "state"), apiURL, api, filepath.Join(fs.dir, "out"), top)
	for _, name := range names {
		fs.ids[name] = fs.em.AddDestination(name)
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n    vault_path: webhookco/%s\n", fs.ids[name], name, name)
	}
	fs.cfg = filepath.Join(fs.dir, "config.yaml")
	if err := os.WriteFile(fs.cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return fs
}
