// Command fleetbench measures rotatord at fleet scale: the real `rotatord run` binary, as a
// child process, against the in-repo webhook.co emulator and the real Vault test server,
// with a counting proxy in front of Vault. In the same run it measures a bare loop (rotate
// POST + one KV v2 write, nothing else) at the same concurrency, so each rate stands beside
// its ratio. `make bench-fleet` runs it; the README has its output.
//
//	go run ./tools/fleetbench -rotatord bin/rotatord -vaultdev bin/vaultdev -fleet 10000 -burst 400 -concurrency 1,8
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/sink/vaultkv"
)

func main() {
	do := run
	if len(os.Args) == 2 && os.Args[1] == bareClientArg {
		do = bareClient
	}
	if err := do(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

type options struct {
	rotatord, vaultdev string
	fleet, burst       int
	concurrency        []int
	flush              []string
	series             string
	memLimit           string // GOMEMLIMIT of the daemons ("": none)
	fleetStored        bool
	fleetHistory       int
	idle               time.Duration
	heap, cpuProfile   string
	trace              string
	replicas           int
	replicaDests       int
	replicaFor         time.Duration
	rotateLatency      time.Duration // the emulator's added time per rotate, in the burst
	rounds             int           // timed waves per concurrency and flush mode
	discover           int
	report             int
}

func run() error {
	var o options
	var conc string
	flag.StringVar(&o.rotatord, "rotatord", "bin/rotatord", "the rotatord binary to measure")
	flag.StringVar(&o.vaultdev, "vaultdev", "bin/vaultdev", "the Vault test server (make vaultdev)")
	flag.IntVar(&o.fleet, "fleet", 10000, "destinations for the start, idle, memory and series figures (0: skip)")
	flag.IntVar(&o.report, "report", 0, "destinations with a year of weekly keys each for the report figures (0: skip)")
	flag.IntVar(&o.discover, "discover", 0, "destinations in the account for the discovery figures: one rule selects them all (0: skip)")
	flag.IntVar(&o.burst, "burst", 400, "destinations due at once for the rate figures (0: skip)")
	flag.StringVar(&conc, "concurrency", "1,8,32", "scheduler.max_concurrent values for the burst, comma-separated")
	flag.StringVar(&o.memLimit, "gomemlimit", "", "GOMEMLIMIT of the daemons, as the deploy artefacts set it (e.g. 270MiB; empty: none)")
	flag.StringVar(&o.series, "series", "all", "metrics.destination_series of the daemons: all, or problems (a destination's series only while it is in trouble)")
	flag.BoolVar(&o.fleetStored, "fleet-stored", false, "store a secret (rotated an hour ago) for every destination of the fleet before its start: the steady state, nothing overdue")
	flag.IntVar(&o.fleetHistory, "fleet-history", 0, "with -fleet-stored, each stored record names this many earlier keys (64, sink.HistoryLength: a fleet that has rotated weekly for a year)")
	var flushModes string
	flag.StringVar(&flushModes, "flush", "each,group", "spool.flush values for the burst, comma-separated: each (one flush per write) and group (group commit), beside the same bare loop")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "how long idle CPU is sampled")
	flag.StringVar(&o.heap, "heap-profile", "", "write the idle fleet's heap profile here (go tool pprof -top FILE)")
	flag.StringVar(&o.cpuProfile, "cpu-profile", "", "write a CPU profile of the first burst here")
	flag.IntVar(&o.replicas, "replicas", 0, "replicas for the Vault-lease figures (0: skip); a single process is measured beside them")
	flag.IntVar(&o.replicaDests, "replica-destinations", 30, "destinations on @every 10s for the replica figures")
	flag.DurationVar(&o.replicaFor, "replica-duration", 3*time.Minute, "how long the replicas run")
	flag.DurationVar(&o.rotateLatency, "rotate-latency", 0, "time the emulator adds to each rotate in the burst, for rotatord and the bare loop alike (the provider's server takes about 36 ms: ../shared/webhookco/API-NOTES.md)")
	flag.IntVar(&o.rounds, "rounds", 1, "timed waves of rotatord's for each concurrency and flush mode, a minute apart, each followed by a round of the bare loop's; the ratio is the median round's")
	flag.StringVar(&o.trace, "trace", "", "write an execution trace of the first burst here (go tool trace -pprof=syscall FILE)")
	flag.Parse()
	for _, c := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-concurrency %q: want positive integers", conc)
		}
		o.concurrency = append(o.concurrency, n)
	}
	o.flush = strings.Split(flushModes, ",")
	if o.rounds < 1 || o.rounds > 50 {
		return fmt.Errorf("-rounds %d: want 1 to 50", o.rounds)
	}
	v, stop, err := startVault(o.vaultdev)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("fleetbench: rotatord %s, %s, Vault %s (real, in memory) behind a counting proxy, emulator on loopback\n", o.rotatord, cpuInfo(), v.addr)
	if o.fleet > 0 {
		if err := fleet(o, v); err != nil {
			return err
		}
	}
	if o.discover > 0 {
		if err := discover(o, v); err != nil {
			return err
		}
	}
	if o.report > 0 {
		if err := reportBench(o, v); err != nil {
			return err
		}
	}
	if o.replicas > 0 {
		if err := replicas(o, v); err != nil {
			return err
		}
	}
	for _, c := range o.concurrency {
		if o.burst > 0 {
			if err := burst(o, v, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// vault is the test server and a proxy that counts the requests rotatord sends it.
type vault struct {
	// token is the daemons' and the bare loop's: deploy/vault/rotatord-policy.hcl on this
	// Vault's paths (Vault checks a policy's rules on every request, and a root token skips
	// them); root seeds.
	addr, token, root string
	pid               int
	proxy             string
	requests          atomic.Int64
	// leaseWrites and leaseReads count the requests on lease entries (path rotatord/leases).
	leaseWrites, leaseReads atomic.Int64
}

func startVault(bin string) (*vault, func(), error) {
	cmd := exec.Command(bin, "-kv2", "kv")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s (make vaultdev): %w", bin, err)
	}
	var a struct {
		Addr      string `json:"addr"`
		RootToken string `json:"root_token"`
	}
	if err := json.NewDecoder(stdout).Decode(&a); err != nil {
		return nil, nil, fmt.Errorf("vaultdev: %w", err)
	}
	v := &vault{addr: a.Addr, root: a.RootToken, pid: cmd.Process.Pid}
	if v.token, err = leastPrivilege(v); err != nil {
		return nil, nil, err
	}
	target, _ := url.Parse(a.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	// As many kept connections to Vault as callers (the default keeps two, and closes and
	// dials the rest for each request).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rp.Transport = tr
	rp.ErrorLog = log.New(io.Discard, "", 0) // a daemon stopped with requests in flight
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.requests.Add(1)
		if strings.Contains(r.URL.Path, "/rotatord/leases/") {
			if r.Method == http.MethodGet {
				v.leaseReads.Add(1)
			} else {
				v.leaseWrites.Add(1)
			}
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	v.proxy = "http://" + ln.Addr().String()
	return v, func() { _ = srv.Close(); _ = stdin.Close(); _ = cmd.Wait() }, nil
}

var runs atomic.Int64

// daemon is one `rotatord run` child.
type daemon struct {
	cmd     *exec.Cmd
	dir     string
	metrics string
	logs    *lockedBuffer
	started time.Time
}

func startDaemon(o options, v *vault, apiURL, key string, dests []string, extra string) (*daemon, error) {
	return startDaemonIn(o, v, apiURL, key, dests, extra, runs.Add(1))
}

// startDaemonIn is startDaemon with the Vault folder of run: replicas share one.
func startDaemonIn(o options, v *vault, apiURL, key string, dests []string, extra string, run int64) (*daemon, error) {
	dir, err := os.MkdirTemp("", "fleetbench-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi:\n  base_url: %s\n  token_file: %s\n  timeout: 5s\n  rate_limit: 0\n  key_check_interval: 0\n", filepath.Join(dir, "state"), apiURL, filepath.Join(dir, "key"))
	fmt.Fprintf(&b, "vault:\n  address: %s\n  token_file: %s\n  kv: {mount: kv, version: 2}\nmetrics:\n  listen: %s\n  pprof: true\n  destination_series: %s\nlog: {level: info}\n%s", v.proxy, filepath.Join(dir, "token"), addr, o.series, extra)
	b.WriteString("destinations:\n")
	// Each daemon its own Vault folder (nothing stored from an earlier run), but replicas.
	for i, id := range dests {
		fmt.Fprintf(&b, "  - {id: %s, name: d%05d, vault_path: fleet%d/d%05d}\n", id, i, run, i)
	}
	for name, body := range map[string]string{"config.yaml": b.String(), "key": key + "\n", "token": v.token + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	d := &daemon{dir: dir, metrics: "http://" + addr, logs: &lockedBuffer{}}
	d.cmd = exec.Command(o.rotatord, "run", "--config", filepath.Join(dir, "config.yaml"))
	if wrap := strings.Fields(os.Getenv("FLEETBENCH_WRAP")); len(wrap) > 0 && len(dests) > 100 {
		// For profiling the start: FLEETBENCH_WRAP="perf record -g -o FILE --"
		d.cmd = exec.Command(wrap[0], append(wrap[1:], d.cmd.Args...)...)
	}
	if o.memLimit != "" {
		d.cmd.Env = append(os.Environ(), "GOMEMLIMIT="+o.memLimit)
	}
	d.cmd.Stderr = d.logs
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

// ready waits for /readyz and returns how long the start took.
func (d *daemon) ready(limit time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(d.metrics + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(d.started), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("not ready within %v:\n%s", limit, tail(d.logs.String(), 20))
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
	// FLEETBENCH_KEEPLOG=FILE keeps the last daemon's log (with GODEBUG=gctrace=1 in the
	// environment, its collections too).
	if f := os.Getenv("FLEETBENCH_KEEPLOG"); f != "" {
		_ = os.WriteFile(f, []byte(d.logs.String()), 0o600)
	}
	_ = os.RemoveAll(d.dir)
}

// cpu is the child's user+system CPU time so far.
func (d *daemon) cpu() time.Duration { return procCPU(d.cmd.Process.Pid) }

// printLog prints the lines of the daemon's log that keep says, cut to width (0: whole).
func (d *daemon) printLog(keep func(line string) bool, width int) {
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if line == "" || !keep(line) {
			continue
		}
		if width > 0 && len(line) > width {
			line = line[:width]
		}
		fmt.Println("  " + line)
	}
}

// scrapeCPU scrapes every 15 s for a minute, as Prometheus would, and returns the CPU of a
// scrape: what the daemon used while it answered (10 ms steps, so four summed), not the
// minute's less an idle rate measured apart.
func (d *daemon) scrapeCPU() (time.Duration, error) {
	const scrapes = 4
	var scraping time.Duration
	for i := 0; i < scrapes; i++ {
		time.Sleep(15 * time.Second)
		cpu1 := d.cpu()
		if _, _, err := d.series(); err != nil {
			return 0, err
		}
		scraping += d.cpu() - cpu1
	}
	return scraping / scrapes, nil
}

// waitQuiet waits (at most limit) until the daemon and Vault together have used under 2 %
// of a core over two seconds (the daemon alone is nearly idle while Vault answers its
// capabilities requests), and returns how long they were busy.
func (d *daemon) waitQuiet(v *vault, limit time.Duration) time.Duration {
	began := time.Now()
	for time.Since(began) < limit {
		cpu0 := d.cpu() + procCPU(v.pid)
		time.Sleep(2 * time.Second)
		if d.cpu()+procCPU(v.pid)-cpu0 < 40*time.Millisecond {
			return time.Since(began) - 2*time.Second
		}
	}
	return limit
}

// procCPU is a process's user+system CPU time so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// memory returns VmRSS and VmHWM (peak) in MiB.
func (d *daemon) memory() (rss, peak float64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// reload sends SIGHUP and waits until the daemon records the outcome (reload-status); it
// returns how long that took and the process's peak RSS while it ran (the peak is set back
// to the current RSS first: /proc/PID/clear_refs).
func (d *daemon) reload() (took time.Duration, peak float64, err error) {
	status := filepath.Join(d.dir, "state", "reload-status")
	prev, _ := os.ReadFile(status)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", d.cmd.Process.Pid), []byte("5"), 0); err != nil {
		return 0, 0, fmt.Errorf("reset the peak RSS before a reload: %w", err)
	}
	began := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	for time.Since(began) < 5*time.Minute {
		if now, _ := os.ReadFile(status); len(now) > 0 && !bytes.Equal(now, prev) {
			took = time.Since(began)
			if !bytes.Contains(now, []byte(" ok ")) {
				return took, 0, fmt.Errorf("the reload failed: %s", bytes.TrimSpace(now))
			}
			_, peak = d.memory()
			return took, peak, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, 0, errors.New("no reload outcome recorded in 5 minutes")
}

// series counts the exposition's series, and those with a destination label.
func (d *daemon) series() (total, perDestination int, err error) {
	resp, err := http.Get(d.metrics + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		total++
		if strings.Contains(line, `destination="`) {
			perDestination++
		}
	}
	return total, perDestination, sc.Err()
}

// startProfile fetches a CPU profile of the daemon's start into $FLEETBENCH_START_PROFILE
// (when set), from /healthz's listener, which is up first; the channel says how it went.
func startProfile(d *daemon, suffix string) chan error {
	profiled := make(chan error, 1)
	p := os.Getenv("FLEETBENCH_START_PROFILE")
	if p != "" {
		p += suffix
	}
	if p == "" {
		profiled <- nil
		return profiled
	}
	go func() {
		var err error
		for range 3000 {
			if err = fetch(d.metrics+"/debug/pprof/profile?seconds=10", p); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		profiled <- err
	}()
	return profiled
}

// kv is the KV v2 sink on the test Vault's kv mount, straight to Vault (not through the
// counting proxy), for seeding.
func (v *vault) kv() (*vaultkv.KV, error) {
	client, err := vaultapi.NewClient(&vaultapi.Config{Address: v.addr})
	if err != nil {
		return nil, err
	}
	client.SetToken(v.root)
	return vaultkv.New(vaultkv.Options{Client: client, Mount: "kv", Version: 2})
}

// leastPrivilege writes the project's least-privilege policy for this Vault's paths (mount
// kv; the benchmark's folders fleet<run>, bare) and returns a token that has only it.
func leastPrivilege(v *vault) (string, error) {
	text, err := os.ReadFile("deploy/vault/rotatord-policy.hcl")
	if err != nil {
		return "", fmt.Errorf("run fleetbench from the repository's root: %w", err)
	}
	policy := strings.NewReplacer(`"secret/data/webhookco/*"`, `"kv/data/*"`, `"secret/metadata/webhookco/*"`, `"kv/metadata/*"`,
		`"secret/metadata/webhookco"`, `"kv/metadata/+"`, `"secret/`, `"kv/`).Replace(string(text))
	client, err := vaultapi.NewClient(&vaultapi.Config{Address: v.addr})
	if err != nil {
		return "", err
	}
	client.SetToken(v.root)
	if err := client.Sys().PutPolicy("rotatord", policy); err != nil {
		return "", fmt.Errorf("vault policy write rotatord: %w", err)
	}
	s, err := client.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"rotatord"}, TTL: "24h"})
	if err != nil {
		return "", err
	}
	return s.Auth.ClientToken, nil
}

// seedFleet stores a secret rotated an hour ago at each destination's path of daemon run
// (fleet<run>/d%05d), 16 writes at a time, straight to Vault; each record's history names
// history earlier keys, a week apart.
func seedFleet(v *vault, run int64, ids []string, history int) error {
	kv, err := v.kv()
	if err != nil {
		return err
	}
	at := time.Now().Add(-time.Hour).UTC()
	var h sink.History
	for i := range history {
		h.Entries = append(h.Entries, sink.HistoryEntry{KeyID: fmt.Sprintf("0193a5b2-7c4d-7e8f-9a0b-%012x", i), At: at.AddDate(0, 0, 7*(i-history)), Version: sink.Version(fmt.Sprint(i + 1))})
	}
	return inParallel(len(ids), 16, func(i int) error {
		rec := sink.Record{DestinationID: ids[i], KeyID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5b00", Secret: secret.New("whsec_fleet"), RotatedAt: at, History: h}
		_, err := kv.Put(context.Background(), fmt.Sprintf("fleet%d/d%05d", run, i), rec, sink.NoCAS)
		return err
	})
}

// inParallel calls do(i) for each i below n, workers at a time, and returns their errors
// joined; once one has failed, the calls not yet begun are skipped.
func inParallel(n, workers int, do func(i int) error) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   error
		failed atomic.Bool
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if failed.Load() {
					continue
				}
				if err := do(i); err != nil {
					failed.Store(true)
					mu.Lock()
					errs = errors.Join(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// counter reads one unlabelled sample of the daemon's /metrics (-1 when it is not there).
func (d *daemon) counter(name string) float64 {
	resp, err := http.Get(d.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// startEmulator serves an emulator on loopback with one key that may read and rotate.
func startEmulator() (*emulator.Emulator, string, string, error) { return startEmulatorSlow(0) }

// startEmulatorSlow is startEmulator with rotateLatency added to each rotate.
func startEmulatorSlow(rotateLatency time.Duration) (*emulator.Emulator, string, string, error) {
	em := emulator.New(emulator.Options{RotateLatency: rotateLatency})
	apiURL, err := em.Start("127.0.0.1:0")
	if err != nil {
		return nil, "", "", err
	}
	return em, apiURL, em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite), nil
}

// discover: an account of o.discover destinations, all selected by one rule (nothing in the
// config's destinations): the listing's size and the daemon's start to /readyz and memory.
func discover(o options, v *vault) error {
	em, apiURL, key, err := startEmulator()
	if err != nil {
		return err
	}
	defer em.Close()
	for i := range o.discover {
		label := fmt.Sprintf("disc-%06d", i)
		em.AddDestinationAt(&label, fmt.Sprintf("https://%s.hooks.example.com/hook", label))
	}
	// The listing as the daemon reads it: its size, and how long it takes to come.
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/v1/replay-destinations", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	size, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fetched := time.Since(t0)
	run := runs.Add(1)
	d, err := startDaemonIn(o, v, apiURL, key, nil, fmt.Sprintf(
		"defaults: {schedule: \"@daily\", first_rotation: on_schedule}\ndiscovery:\n  interval: 0\n  rules:\n    - {label: \"disc-*\", vault_path: \"disc%d/{name}\"}\n", run), run)
	if err != nil {
		return err
	}
	defer d.stop()
	profiled := startProfile(d, ".discovery")
	start, err := d.ready(5 * time.Minute)
	if err != nil {
		return err
	}
	if perr := <-profiled; perr != nil {
		fmt.Fprintln(os.Stderr, "fleetbench: start profile:", perr)
	}
	time.Sleep(2 * time.Second)
	rss, peak := d.memory()
	covered := "?"
	if resp, err := http.Get(d.metrics + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, `rotatord_destinations{state="covered"} `); ok {
				covered = v
			}
		}
	}
	fmt.Printf("\ndiscovery of an account of %d destinations (one rule selects them all; @daily, nothing stored):\n", o.discover)
	fmt.Printf("  listing                 %8.1f MiB, fetched in %.0f ms\n", float64(size)/(1<<20), ms(fetched))
	fmt.Printf("  start to /readyz        %8.0f ms   (rotatord_destinations{state=\"covered\"} %s)\n", ms(start), covered)
	fmt.Printf("  its steps               %s\n", startSteps(d))
	fmt.Printf("  RSS                     %8.1f MiB after start (peak %.1f)\n", rss, peak)
	return nil
}

// fleet: start, idle CPU, memory, series and a reload, with `o.fleet` destinations on
// @daily, nothing stored, first rotation on schedule (nothing rotates while it is measured).
func fleet(o options, v *vault) error {
	em, apiURL, key, err := startEmulator()
	if err != nil {
		return err
	}
	defer em.Close()
	hour := fleetHour() // once: the label printed after the run says the hour the daemons used
	measure := func(n int) (time.Duration, *daemon, error) { return startFleet(o, v, em, apiURL, key, n, hour) }
	small, d10, err := measure(10)
	if err != nil {
		return err
	}
	d10.stop()
	start, d, err := measure(o.fleet)
	if err != nil {
		return err
	}
	defer d.stop()
	if os.Getenv("FLEETBENCH_START_LOG") != "" {
		fmt.Printf("start at %s; its log:\n", d.started.UTC().Format("15:04:05.000"))
		d.printLog(func(line string) bool { return !strings.Contains(line, "never rotated") }, 160)
	}
	time.Sleep(2 * time.Second)
	rss, startPeak := d.memory()
	if o.heap != "" {
		if err := fetch(d.metrics+"/debug/pprof/heap", o.heap+".ready"); err != nil {
			return err
		}
	}
	// What the daemon does after it is ready (the stored records read, the rights not asked
	// at the start), until it is quiet: the idle and scrape figures are of a quiet daemon.
	busy := d.waitQuiet(v, 5*time.Minute)
	quietRSS, _ := d.memory()
	d.printLog(func(line string) bool {
		return strings.Contains(line, "after the start") && !strings.Contains(line, `"level":"error"`)
	}, 0)
	total, perDest, err := d.series()
	if err != nil {
		return err
	}
	// Idle: no scrape for o.idle.
	cpu0, t0 := d.cpu(), time.Now()
	time.Sleep(o.idle)
	idle := float64(d.cpu()-cpu0) / float64(time.Since(t0)) * 100
	perScrape, err := d.scrapeCPU()
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	scraped, peak := d.memory()
	if o.heap != "" {
		if err := fetch(d.metrics+"/debug/pprof/heap", o.heap); err != nil {
			return err
		}
	}
	// Two reloads of the whole fleet: a SIGHUP with the file unchanged (since session 16 the
	// same bytes are not parsed again), then one after an edit (a comment added: the bytes
	// differ, so the whole config is parsed beside the one running).
	same, samePeak, err := d.reload()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(d.dir, "config.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("# edited\n")
		f.Close()
	}
	if err != nil {
		return err
	}
	edited, editedPeak, err := d.reload()
	if err != nil {
		return err
	}
	stored := "nothing stored, first rotation on schedule"
	if o.fleetStored {
		stored = "each rotated an hour ago, a secret in Vault"
		if o.fleetHistory > 0 {
			stored += fmt.Sprintf(" naming %d earlier keys", o.fleetHistory)
		}
	}
	limit := "no GOMEMLIMIT"
	if o.memLimit != "" {
		limit = "GOMEMLIMIT " + o.memLimit
	}
	fmt.Printf("\nfleet of %d destinations (daily at %02d:00 UTC, %s; metrics.destination_series: %s; %s):\n", o.fleet, hour, stored, o.series, limit)
	fmt.Printf("  start to /readyz        %8.0f ms   (10 destinations: %.0f ms; ratio %.1fx)\n", ms(start), ms(small), float64(start)/float64(small))
	fmt.Printf("  its steps               %s\n", startSteps(d))
	fmt.Printf("  SIGHUP reload           %8.0f ms with the file unchanged (peak %.1f MiB); %.0f ms after an edit, a comment added (peak %.1f MiB)\n", ms(same), samePeak, ms(edited), editedPeak)
	fmt.Printf("  after the start         %8.1f s of work once ready (stored records read, rights asked) before the daemon was quiet\n", busy.Seconds())
	fmt.Printf("  RSS idle                %8.1f MiB 2 s after ready, %.1f MiB once quiet, %.1f MiB after a minute of scrapes every 15 s (peak %.1f before the SIGHUP reloads; %.1f by 2 s after ready)\n", rss, quietRSS, scraped, peak, startPeak)
	fmt.Printf("  idle CPU                %8.3f %% of a core (over %v); a scrape of every series costs %.0f ms of CPU\n", idle, o.idle, ms(perScrape))
	fmt.Printf("  series                  %8d in all, %.1f per destination\n", total, float64(perDest)/float64(o.fleet))
	return nil
}

// fleetHour is the hour (UTC) of the fleet's daily rotation: twelve hours from now, so that
// a secret stored an hour ago is after the last slot and the next is hours away, whatever
// the time of day the benchmark runs (at 00:30 UTC an @daily fleet stored at 23:30 has
// missed its midnight slot, and the start queues a catch-up rotation for every destination).
func fleetHour() int { return (time.Now().UTC().Hour() + 12) % 24 }

// startFleet starts a daemon with n destinations of em rotating daily at hour (UTC; their
// secrets stored first with -fleet-stored, for the fleet itself) and returns its start to
// /readyz.
func startFleet(o options, v *vault, em *emulator.Emulator, apiURL, key string, n, hour int) (time.Duration, *daemon, error) {
	dests := make([]string, n)
	for i := range dests {
		dests[i] = em.AddDestination(fmt.Sprintf("f%d", i))
	}
	run := runs.Add(1)
	if o.fleetStored && n == o.fleet {
		// Steady state: every destination rotated an hour ago, nothing in trouble.
		seeded := time.Now()
		if err := seedFleet(v, run, dests, o.fleetHistory); err != nil {
			return 0, nil, err
		}
		fmt.Printf("(%d secrets stored in Vault first, in %s)\n", n, time.Since(seeded).Round(time.Second))
	}
	d, err := startDaemonIn(o, v, apiURL, key, dests, fmt.Sprintf("defaults: {schedule: \"0 %d * * *\", time_zone: UTC, first_rotation: on_schedule}\n", hour), run)
	if err != nil {
		return 0, nil, err
	}
	profiled := make(chan error, 1)
	if n == o.fleet {
		profiled = startProfile(d, "")
	} else {
		profiled <- nil
	}
	start, err := d.ready(5 * time.Minute)
	if perr := <-profiled; perr != nil {
		fmt.Fprintln(os.Stderr, "fleetbench: start profile:", perr)
	}
	return start, d, err
}

// burst: n destinations due at once at concurrency c, in steady state: a first wave rotates
// them all at start (nothing stored yet), then all n are due at the same minute (a cron
// time) and that wave is measured, o.rounds times a minute apart; after each, the bare loop
// on n fresh destinations at the same concurrency (burstRun), for each spool.flush mode.
func burst(o options, v *vault, c int) error {
	slow := ""
	if o.rotateLatency > 0 {
		slow = fmt.Sprintf(", the emulator taking %s more per rotate", o.rotateLatency)
	}
	rounds := ""
	if o.rounds > 1 {
		rounds = fmt.Sprintf("; %d rounds, each a wave of rotatord's and then one of the bare loop's", o.rounds)
	}
	fmt.Printf("\n%d destinations due at once, concurrency %d (flushes on, steady state: a secret stored for each%s%s):\n", o.burst, c, slow, rounds)
	for _, flush := range o.flush {
		waves, bares, err := burstRun(o, v, c, flush)
		if err != nil {
			return err
		}
		printBurst(waves, bares)
	}
	return nil
}

// printBurst writes the figures of one spool.flush mode's rounds: each round's rates and
// ratio when there are several, then the median rates, the median ratio with its range,
// and the other figures averaged over the rounds.
func printBurst(waves, bares []burstFigures) {
	ratios := make([]float64, len(waves))
	for i := range waves {
		ratios[i] = waves[i].rate / bares[i].rate
		if len(waves) > 1 {
			fmt.Printf("  round %d: bare loop %5.0f/s, rotatord %5.0f/s, ratio %.2f\n", i+1, bares[i].rate, waves[i].rate, ratios[i])
		}
	}
	bare, f := mergeBurst(bares), mergeBurst(waves)
	ratio := fmt.Sprintf("ratio %.2f", median(ratios))
	if len(ratios) > 1 {
		ratio = fmt.Sprintf("median ratio %.2f (%.2f-%.2f)", median(ratios), slices.Min(ratios), slices.Max(ratios))
	}
	fmt.Printf("  bare loop               %8.0f rotations/s   (its own process: rotate POST + one KV v2 write, nothing durable)\n", bare.rate)
	fmt.Printf("  rotatord, spool.flush: %-5s %6.0f rotations/s   %s   p50 %.1f ms, p99 %.1f ms   CPU %.2f ms, Vault %.2f requests, webhook.co %s, %.2f durable writes in %.2f flushes per rotation\n",
		f.flush, f.rate, ratio, ms(f.p50), ms(f.p99), ms(f.cpu), f.vault, perOperation(f.provider), f.writes, f.flushes)
	fmt.Printf("  machine CPU per rotation (ms): client (rotatord, or the bare loop's process), Vault, benchmark (emulator, proxy), whole machine\n")
	for _, f := range []burstFigures{bare, f} {
		fmt.Printf("    %-5s  %.3f  %.3f  %.3f  %.3f\n", f.flush, ms(f.split.client), ms(f.split.vault), ms(f.split.bench), ms(f.split.machine))
	}
}

// mergeBurst is one figure for several rounds: the median rate, and the percentiles and
// per-rotation figures averaged over the rounds (each round the same number of rotations).
func mergeBurst(rs []burstFigures) burstFigures {
	out := burstFigures{flush: rs[0].flush, provider: map[string]float64{}}
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.rate
		out.p50, out.p99, out.cpu = out.p50+r.p50, out.p99+r.p99, out.cpu+r.cpu
		out.vault, out.writes, out.flushes = out.vault+r.vault, out.writes+r.writes, out.flushes+r.flushes
		out.split = cpuSplit{out.split.client + r.split.client, out.split.vault + r.split.vault, out.split.bench + r.split.bench, out.split.machine + r.split.machine}
		for op, v := range r.provider {
			out.provider[op] += v
		}
	}
	n, d := float64(len(rs)), time.Duration(len(rs))
	out.p50, out.p99, out.cpu = out.p50/d, out.p99/d, out.cpu/d
	out.vault, out.writes, out.flushes = out.vault/n, out.writes/n, out.flushes/n
	out.split = cpuSplit{out.split.client / d, out.split.vault / d, out.split.bench / d, out.split.machine / d}
	for op := range out.provider {
		out.provider[op] /= n
	}
	out.rate = median(rates)
	return out
}

// median is the middle value of xs (the mean of the two middle ones for an even count).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// perOperation writes requests per rotation by operation: "rotate 1.00".
func perOperation(m map[string]float64) string {
	ops := slices.Sorted(maps.Keys(m))
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = fmt.Sprintf("%s %.2f", op, m[op])
	}
	return strings.Join(out, ", ")
}

// burstFigures is one burst of rotatord's, per rotation where it says so.
type burstFigures struct {
	flush                  string
	rate                   float64
	p50, p99, cpu          time.Duration
	vault, writes, flushes float64
	split                  cpuSplit
	provider               map[string]float64 // webhook.co requests per rotation, by operation
}

// burstRun times o.rounds waves of o.burst destinations due at once at concurrency c, with
// spool.flush set to flush, each after a first wave that stored a secret for each. After
// each of rotatord's waves, while the daemon waits for the next minute, the bare loop runs a
// round of its own (bareLoop), so each ratio compares two rates measured seconds apart.
func burstRun(o options, v *vault, c int, flush string) (waves, bares []burstFigures, err error) {
	em, apiURL, key, err := startEmulatorSlow(o.rotateLatency)
	if err != nil {
		return nil, nil, err
	}
	defer em.Close()
	bareEm, bareURL, bareKey, err := startEmulatorSlow(o.rotateLatency)
	if err != nil {
		return nil, nil, err
	}
	defer bareEm.Close()
	dests := make([]string, o.burst)
	for i := range dests {
		dests[i] = em.AddDestination(fmt.Sprintf("b%d", i))
	}
	// The waves: one a minute from the first minute at least 40 s away, so the first wave
	// is over by then; every hour at those minutes (the rounds stop long before the next).
	at := time.Now().UTC().Add(40 * time.Second).Truncate(time.Minute).Add(time.Minute)
	minutes := make([]string, o.rounds)
	for k := range minutes {
		minutes[k] = strconv.Itoa((at.Minute() + k) % 60)
	}
	extra := fmt.Sprintf("scheduler: {max_concurrent: %d}\nspool: {flush: %s}\ndefaults: {schedule: \"%s * * * *\", time_zone: UTC, first_rotation: at_start}\n", c, flush, strings.Join(minutes, ","))
	d, err := startDaemon(o, v, apiURL, key, dests, extra)
	if err != nil {
		return nil, nil, err
	}
	defer d.stop()
	if _, err := d.ready(5 * time.Minute); err != nil {
		return nil, nil, err
	}
	waitSuccesses := func(n int) error {
		deadline := time.Now().Add(10 * time.Minute)
		// The audit log says when (scraping /metrics this often would cost rotatord more CPU
		// than the rotations).
		for d.logs.count(`"outcome":"success"`) < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("burst: %d of %d rotated in 10 minutes:\n%s", d.logs.count(`"outcome":"success"`), n, tail(d.logs.String(), 20))
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	if err := waitSuccesses(o.burst); err != nil {
		return nil, nil, err
	}
	if time.Now().After(at) {
		return nil, nil, fmt.Errorf("burst: the first wave took longer than 40 s; use a smaller -burst")
	}
	for k := range o.rounds {
		f, err := burstWave(o, v, d, em, c, flush, k, at.Add(time.Duration(k)*time.Minute), waitSuccesses)
		if err != nil {
			return nil, nil, err
		}
		// The bare loop's timed wave half a minute after rotatord's: each follows as long an
		// idle spell of the machine's (a wave right after another runs on a warm machine:
		// threads awake, caches full, the collector's pace set).
		bare, err := bareLoop(v, bareURL, bareEm, bareKey, o.burst, c, at.Add(time.Duration(k)*time.Minute+30*time.Second))
		if err != nil {
			return nil, nil, err
		}
		waves, bares = append(waves, f), append(bares, bare)
	}
	return waves, bares, nil
}

// burstWave times rotatord's wave number k (from 0), due at at.
func burstWave(o options, v *vault, d *daemon, em *emulator.Emulator, c int, flush string, k int, at time.Time, waitSuccesses func(int) error) (burstFigures, error) {
	f := burstFigures{flush: flush}
	if time.Now().After(at.Add(-time.Second)) {
		return f, fmt.Errorf("burst: round %d: the bare loop's round ran past the next wave", k)
	}
	time.Sleep(time.Until(at) - time.Second)
	// The counters first: a scrape (and the memory it gives back) is not the wave's work.
	writes0, flushes0 := d.counter("rotatord_spool_durable_writes_total"), d.counter("rotatord_spool_flushes_total")
	requests0, cpu0 := v.requests.Load(), d.cpu()
	split0 := takeCPU(v, d.cmd.Process.Pid)
	provider0 := len(em.Requests())
	profiled := make(chan error, 1)
	if o.cpuProfile != "" && c == o.concurrency[0] && k == 0 {
		go func() { profiled <- fetch(d.metrics+"/debug/pprof/profile?seconds=3", o.cpuProfile+"."+flush) }()
		defer func() {
			if err := <-profiled; err != nil {
				fmt.Fprintln(os.Stderr, "fleetbench: cpu profile:", err)
			}
		}()
	}
	if o.trace != "" && c == o.concurrency[0] && k == 0 {
		go func() { _ = fetch(d.metrics+"/debug/pprof/trace?seconds=3", o.trace+"."+flush) }()
	}
	if err := waitSuccesses((k + 2) * o.burst); err != nil {
		return f, err
	}
	n := float64(o.burst)
	f.cpu = time.Duration(float64(d.cpu()-cpu0) / n)
	f.split = takeCPU(v, d.cmd.Process.Pid).since(split0, o.burst)
	f.provider = map[string]float64{}
	for _, r := range em.Requests()[provider0:] {
		f.provider[r.Operation] += 1 / n
	}
	f.vault = float64(v.requests.Load()-requests0) / n
	f.writes = (d.counter("rotatord_spool_durable_writes_total") - writes0) / n
	f.flushes = (d.counter("rotatord_spool_flushes_total") - flushes0) / n
	first, last, durations, err := rotationTimes(d.logs.String(), (k+1)*o.burst, o.burst)
	if err != nil {
		return f, err
	}
	f.rate = n / last.Sub(first).Seconds()
	f.p50, f.p99 = pct(durations, 50), pct(durations, 99)
	return f, nil
}

// rotationTimes reads take audit lines of successes after the first skip: the first
// start, the last end, and each duration.
func rotationTimes(logs string, skip, take int) (first, last time.Time, durations []time.Duration, err error) {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"outcome":"success"`) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if take == 0 {
			break
		}
		take--
		var rec struct {
			TS       string  `json:"ts"`
			Duration float64 `json:"duration"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		end, perr := time.Parse("2006-01-02T15:04:05.000Z0700", rec.TS)
		if perr != nil {
			continue
		}
		dur := time.Duration(rec.Duration * float64(time.Second))
		durations = append(durations, dur)
		if start := end.Add(-dur); first.IsZero() || start.Before(first) {
			first = start
		}
		if end.After(last) {
			last = end
		}
	}
	if len(durations) == 0 {
		return first, last, nil, errors.New("no successful rotation in the log")
	}
	return first, last, durations, nil
}

// bareJob is the bare loop's work: the servers, the credentials and the destinations. The
// bare client reads it on its standard input (a key never goes on a command line).
type bareJob struct {
	API, Key, Vault, Token string
	IDs                    []string
	Concurrency            int
}

// bareLoop rotates n destinations with c workers, the rotate POST and one KV v2 write of the
// secret, nothing else, in the same steady state as rotatord's burst: a first wave stores a
// secret for each, and the second wave is timed. It talks to Vault through the same counting
// proxy as rotatord does, and runs as a process of its own, as the cron job it stands for
// and as rotatord do, so that its CPU is its own (inside the benchmark's process it cost
// about the same: 1,244 against 1,229 rotations/s in one run of 3,000 at concurrency 8).
func bareLoop(v *vault, apiURL string, em *emulator.Emulator, key string, n, c int, goAt time.Time) (burstFigures, error) {
	f := burstFigures{flush: "bare"}
	job := bareJob{API: apiURL, Key: key, Vault: v.proxy, Token: v.token, Concurrency: c, IDs: make([]string, n)}
	for i := range job.IDs {
		job.IDs[i] = em.AddDestination(fmt.Sprintf("bare%d", i))
	}
	self, err := os.Executable()
	if err != nil {
		return f, err
	}
	cmd := exec.Command(self, bareClientArg)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return f, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return f, err
	}
	if err := cmd.Start(); err != nil {
		return f, err
	}
	defer func() { in.Close(); _ = cmd.Wait() }()
	out := bufio.NewReader(outPipe)
	if err := json.NewEncoder(in).Encode(job); err != nil {
		return f, err
	}
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		return f, fmt.Errorf("bare client: %q, %v", line, err)
	}
	time.Sleep(time.Until(goAt))
	before := takeCPU(v, cmd.Process.Pid)
	if _, err := io.WriteString(in, "go\n"); err != nil {
		return f, err
	}
	line, err := out.ReadString('\n')
	if err != nil {
		return f, fmt.Errorf("bare client: %w", err)
	}
	f.split = takeCPU(v, cmd.Process.Pid).since(before, n)
	if err := json.Unmarshal([]byte(line), &f.rate); err != nil {
		return f, fmt.Errorf("bare client: %q: %w", line, err)
	}
	return f, nil
}

// bareClientArg runs fleetbench as the bare loop's client (bareClient).
const bareClientArg = "-bare-client"

// bareClient is the bare loop's own process: it reads a bareJob (one JSON line), runs the
// first wave, says "ready", waits for "go", runs the timed wave, writes its rate (a JSON
// number) and waits for its input to close, so that its CPU can be read before it exits.
func bareClient() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadString('\n')
	if err != nil {
		return err
	}
	var job bareJob
	if err := json.Unmarshal([]byte(line), &job); err != nil {
		return err
	}
	rate, err := bareWaves(job, func() error {
		fmt.Println("ready")
		_, err := in.ReadString('\n')
		return err
	})
	if err != nil {
		return err
	}
	fmt.Println(rate)
	_, _ = io.Copy(io.Discard, in)
	return nil
}

// bareWaves runs the bare loop's two waves over job.IDs, calls between after the first,
// and returns the second's rate.
func bareWaves(job bareJob, between func() error) (float64, error) {
	c := job.Concurrency
	// The same connection reuse as rotatord: one kept connection per worker, to each server.
	conf := vaultapi.DefaultConfig()
	conf.Address = job.Vault
	conf.HttpClient.Transport.(*http.Transport).MaxIdleConnsPerHost = c + 4
	client, err := vaultapi.NewClient(conf)
	if err != nil {
		return 0, err
	}
	client.SetToken(job.Token)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c + 4
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	wave := func() error {
		return inParallel(len(job.IDs), c, func(i int) error { return bareRotate(hc, client, job.API, job.Key, job.IDs[i]) })
	}
	if err := wave(); err != nil {
		return 0, err
	}
	if err := between(); err != nil {
		return 0, err
	}
	began := time.Now()
	if err := wave(); err != nil {
		return 0, err
	}
	return float64(len(job.IDs)) / time.Since(began).Seconds(), nil
}

func bareRotate(hc *http.Client, client *vaultapi.Client, apiURL, key, id string) error {
	req, _ := http.NewRequest(http.MethodPost, apiURL+"/v1/replay-destinations/"+id+"/signing-secret", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	var rot struct {
		KeyID, SigningSecret string
	}
	err = json.NewDecoder(resp.Body).Decode(&rot)
	resp.Body.Close()
	if err != nil {
		return err
	}
	_, err = client.KVv2("kv").Put(context.Background(), "bare/"+id, map[string]any{"key_id": rot.KeyID, "signing_secret": rot.SigningSecret})
	return err
}

// cpuSplit is the machine's CPU per rotation, by where it was spent: the process measured
// (rotatord, or the bare loop's client), Vault, the benchmark (the emulator and the proxy in
// front of Vault), and all of the machine's (from /proc/stat: these, the kernel's own threads, and anything else running).
type cpuSplit struct {
	client, vault, bench, machine time.Duration
}

func (s cpuSplit) since(before cpuSplit, n int) cpuSplit {
	per := func(a, b time.Duration) time.Duration { return (a - b) / time.Duration(n) }
	return cpuSplit{per(s.client, before.client), per(s.vault, before.vault), per(s.bench, before.bench), per(s.machine, before.machine)}
}

func takeCPU(v *vault, pid int) cpuSplit {
	s := cpuSplit{vault: procCPU(v.pid), bench: procCPU(os.Getpid()), machine: machineCPU()}
	if pid != 0 {
		s.client = procCPU(pid)
	}
	return s
}

// machineCPU is the busy time of all CPUs so far (the first line of /proc/stat: all but
// idle and iowait).
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy int64
	for i, field := range strings.Fields(line)[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		t, _ := strconv.ParseInt(field, 10, 64)
		busy += t
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

func fetch(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func cpuInfo() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	n := strings.Count(string(b), "processor\t:")
	return fmt.Sprintf("%d CPUs", n)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startSteps is what the daemon's "rotatord starting" line says its start's steps took.
func startSteps(d *daemon) string {
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"rotatord starting"`) {
			var l struct {
				Steps string `json:"start_steps"`
			}
			_ = json.Unmarshal([]byte(line), &l)
			return l.Steps
		}
	}
	return "(no start line)"
}

// lockedBuffer keeps a child's log, and counts the outcomes of its complete lines as they
// arrive: the burst asks often, and scanning the whole log each time cost the benchmark's
// process (on rotatord's two cores) more CPU than the emulator.
type lockedBuffer struct {
	mu       sync.Mutex
	b        bytes.Buffer
	scanned  int
	outcomes map[string]int
}

var outcomes = [][]byte{[]byte(`"outcome":"success"`), []byte(`"outcome":"skipped"`)}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.b.Write(p)
	all := l.b.Bytes()
	end := bytes.LastIndexByte(all, '\n') + 1
	if end > l.scanned {
		if l.outcomes == nil {
			l.outcomes = map[string]int{}
		}
		for _, o := range outcomes {
			l.outcomes[string(o)] += bytes.Count(all[l.scanned:end], o)
		}
		l.scanned = end
	}
	return n, err
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// count is how many complete lines say outcome (one of outcomes).
func (l *lockedBuffer) count(outcome string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcomes[outcome]
}

// replicas runs o.replicas `rotatord run` processes (each its own state_dir, as on its own
// host) with Vault leases on o.replicaDests destinations due every 10 s, for
// o.replicaFor; then, as the baseline, one process alone on new destinations. It prints
// the lease requests per rotation, the skips, and checks the emulator's record: exactly one
// rotate per destination and slot, never two in flight.
func replicas(o options, v *vault) error {
	type figures struct {
		rotations, skips               int
		leaseWrites, leaseReads, other int64
		perSlotBad, overlaps           int
	}
	measure := func(n int, d time.Duration) (figures, error) {
		var f figures
		em := emulator.New(emulator.Options{})
		apiURL, err := em.Start("127.0.0.1:0")
		if err != nil {
			return f, err
		}
		defer em.Close()
		key := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
		dests := make([]string, o.replicaDests)
		for i := range dests {
			dests[i] = em.AddDestination(fmt.Sprintf("r%d", i))
		}
		extra := "coordination: {mode: vault, lease_ttl: 10s, vault: {mount: kv, path: rotatord/leases}}\n" +
			"defaults: {schedule: \"@every 10s\", first_rotation: at_start}\n"
		run := runs.Add(1)
		var ds []*daemon
		defer func() {
			for _, d := range ds {
				d.stop()
			}
		}()
		for range n {
			dm, err := startDaemonIn(o, v, apiURL, key, dests, extra, run)
			if err != nil {
				return f, err
			}
			ds = append(ds, dm)
		}
		for _, dm := range ds {
			if _, err := dm.ready(time.Minute); err != nil {
				return f, err
			}
		}
		// Steady state: from the first slot after the first rotations at start.
		time.Sleep(time.Until(time.Now().Truncate(10 * time.Second).Add(20 * time.Second)))
		from := time.Now()
		w0, r0, all0 := v.leaseWrites.Load(), v.leaseReads.Load(), v.requests.Load()
		counts := make([][2]int, len(ds))
		for i, dm := range ds {
			counts[i] = [2]int{dm.logs.count(`"outcome":"success"`), dm.logs.count(`"outcome":"skipped"`)}
		}
		time.Sleep(d)
		to := time.Now()
		f.leaseWrites, f.leaseReads = v.leaseWrites.Load()-w0, v.leaseReads.Load()-r0
		f.other = v.requests.Load() - all0 - f.leaseWrites - f.leaseReads
		for i, dm := range ds {
			f.rotations += dm.logs.count(`"outcome":"success"`) - counts[i][0]
			f.skips += dm.logs.count(`"outcome":"skipped"`) - counts[i][1]
		}
		f.perSlotBad = slotsOff(em, dests, from, to)
		f.overlaps = em.Overlaps()
		return f, nil
	}
	many, err := measure(o.replicas, o.replicaFor)
	if err != nil {
		return err
	}
	one, err := measure(1, o.replicaFor/3)
	if err != nil {
		return err
	}
	per := func(x int64, f figures) float64 { return float64(x) / float64(max(f.rotations, 1)) }
	fmt.Printf("\n%d replicas with Vault leases, %d destinations on @every 10s, %v (a single process alone for %v beside it):\n",
		o.replicas, o.replicaDests, o.replicaFor, o.replicaFor/3)
	fmt.Printf("  rotations               %8d   (%d skipped fires)\n", many.rotations, many.skips)
	fmt.Printf("  lease writes            %8.2f per rotation   (alone: %.2f; above it: %.2f)\n", per(many.leaseWrites, many), per(one.leaseWrites, one), per(many.leaseWrites, many)-per(one.leaseWrites, one))
	fmt.Printf("  lease reads             %8.2f per rotation   (alone: %.2f)\n", per(many.leaseReads, many), per(one.leaseReads, one))
	fmt.Printf("  other Vault requests    %8.2f per rotation   (alone: %.2f)\n", per(many.other, many), per(one.other, one))
	fmt.Printf("  slots not rotated once  %8d   (of destinations x whole slots; two in flight at once: %d)\n", many.perSlotBad, many.overlaps)
	return nil
}

// slotsOff counts the destinations' whole 10 s slots between from and to that did not get
// exactly one rotate (FLEETBENCH_SLOTS=1 prints each).
func slotsOff(em *emulator.Emulator, dests []string, from, to time.Time) int {
	bad := 0
	perSlot := map[string]map[time.Time]int{}
	for _, req := range em.RequestsFor(emulator.OpRotate, "") {
		if req.At.Before(from.Truncate(10*time.Second).Add(10*time.Second)) || !req.At.Before(to.Truncate(10*time.Second)) {
			continue
		}
		if perSlot[req.DestinationID] == nil {
			perSlot[req.DestinationID] = map[time.Time]int{}
		}
		perSlot[req.DestinationID][req.At.Truncate(10*time.Second)]++
	}
	slots := int(to.Truncate(10*time.Second).Sub(from.Truncate(10*time.Second).Add(10*time.Second)) / (10 * time.Second))
	for _, id := range dests {
		for k := range slots {
			at := from.Truncate(10 * time.Second).Add(time.Duration(k+1) * 10 * time.Second)
			if perSlot[id][at] != 1 {
				bad++
				if os.Getenv("FLEETBENCH_SLOTS") != "" {
					var times []string
					for _, req := range em.RequestsFor(emulator.OpRotate, id) {
						times = append(times, req.At.UTC().Format("15:04:05.000"))
					}
					fmt.Printf("  %s slot %s: %d rotates; all its rotates: %v\n", id, at.UTC().Format("15:04:05"), perSlot[id][at], times)
				}
			}
		}
	}
	return bad
}
