package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
)

// reportBench: o.report destinations, each with a year of weekly keys at the emulator and
// its stored record (with rotatord's history of the year) in Vault; `rotatord report` over
// the year, against a bare loop that makes the same reads (the key list, the KV data, the
// KV metadata) at the same concurrency, measured in the same run.
func reportBench(o options, v *vault) error {
	em, apiURL, key, err := startEmulator()
	if err != nil {
		return err
	}
	defer em.Close()
	now := time.Now().UTC()
	created := now.Add(-366 * 24 * time.Hour)
	var rotations []time.Time
	for at := created.Add(7 * 24 * time.Hour); at.Before(now); at = at.Add(7 * 24 * time.Hour) {
		rotations = append(rotations, at)
	}
	kv, err := v.kv()
	if err != nil {
		return err
	}
	seedStart := time.Now()
	ids, err := seedReport(em, kv, o.report, created, rotations)
	if err != nil {
		return err
	}
	keys := o.report * (len(rotations) + 1)
	fmt.Printf("\nreport: %d destinations, %d keys at the emulator (a year of weekly keys each), seeded in %s\n", o.report, keys, time.Since(seedStart).Round(time.Second))

	// The bare loop: the same three reads per destination, 8 at once, nothing else.
	bare, err := bareReads(v, apiURL, key, ids, 8)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fleetbench-report-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\napi:\n  base_url: %s\n  token_file: %s\n  timeout: 10s\n  rate_limit: 0\n", filepath.Join(dir, "state"), apiURL, filepath.Join(dir, "key"))
	fmt.Fprintf(&b, "vault:\n  address: %s\n  token_file: %s\n  kv: {mount: kv, version: 2}\ndefaults: {schedule: \"@weekly\", max_age: 192h}\ndestinations:\n", v.proxy, filepath.Join(dir, "token"))
	for i, id := range ids {
		fmt.Fprintf(&b, "  - {id: %s, name: r%05d, vault_path: report/r%05d}\n", id, i, i)
	}
	for name, body := range map[string]string{"config.yaml": b.String(), "key": key + "\n", "token": v.root + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	for _, format := range []string{"json", "text"} {
		out := filepath.Join(dir, "report."+format)
		cmd := exec.Command(o.rotatord, "report", "--config", filepath.Join(dir, "config.yaml"), "--from", created.Add(24*time.Hour).Format(time.DateOnly),
			"--to", now.Format(time.DateOnly), "--output", format, "--out", out, "--concurrency", "8")
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		// The child's own high-water mark, read while it runs (wait4's maxrss would count
		// this process's memory, which the child shares between fork and exec).
		hwm := watchHWM(cmd.Process.Pid)
		err := cmd.Wait()
		took := time.Since(start)
		rss := hwm()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
			return fmt.Errorf("rotatord report: %v\n%s", err, tail(stderr.String(), 2000))
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Printf("report --output %s: %.1f s (bare loop %.1f s: %.2f of its speed), peak RSS %.1f MiB, %.1f MiB written; %s", format, took.Seconds(), bare.Seconds(),
			bare.Seconds()/took.Seconds(), rss, float64(st.Size())/(1<<20), lastLine(stderr.String()))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1] + "\n"
}

// bareReads makes the report's reads with nothing around them: GET the key list at the
// emulator, GET the KV data and metadata in Vault, c at once.
func bareReads(v *vault, apiURL, key string, ids []string, c int) (time.Duration, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c * 2}, Timeout: 10 * time.Second}
	get := func(url, header, value string) error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set(header, value)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var sink [32 << 10]byte
		for {
			if _, err := resp.Body.Read(sink[:]); err != nil {
				break
			}
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
	start := time.Now()
	err := inParallel(len(ids), c, func(i int) error {
		return errors.Join(get(apiURL+"/v1/replay-destinations/"+ids[i]+"/signing-secrets", "Authorization", "Bearer "+key),
			get(fmt.Sprintf("%s/v1/kv/data/report/r%05d", v.proxy, i), "X-Vault-Token", v.root),
			get(fmt.Sprintf("%s/v1/kv/metadata/report/r%05d", v.proxy, i), "X-Vault-Token", v.root))
	})
	return time.Since(start), err
}

// watchHWM samples VmHWM of pid every 50 ms; the function it returns stops and gives the
// highest value seen, in MiB.
func watchHWM(pid int) func() float64 {
	var mu sync.Mutex
	var high float64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
						var kb float64
						fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
						mu.Lock()
						high = max(high, kb/1024)
						mu.Unlock()
					}
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return high
	}
}

// seedReport gives the emulator n destinations with a year of weekly keys each, and stores
// each one's newest key in Vault with rotatord's history of the others.
func seedReport(em *emulator.Emulator, kv *vaultkv.KV, n int, created time.Time, rotations []time.Time) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = em.AddDestination(fmt.Sprintf("r%05d", i))
	}
	err := inParallel(n, 16, func(i int) error {
		keys, err := em.Backdate(ids[i], created, rotations)
		if err != nil {
			return err
		}
		var h sink.History
		for _, k := range keys[1 : len(keys)-1] {
			h = h.With(sink.HistoryEntry{KeyID: k.ID, At: k.CreatedAt, Version: "1"})
		}
		last := keys[len(keys)-1]
		_, err = kv.Put(context.Background(), fmt.Sprintf("report/r%05d", i), sink.Record{DestinationID: ids[i], KeyID: last.ID, Secret: secret.New(last.Secret), RotatedAt: last.CreatedAt, History: h}, sink.NoCAS)
		return err
	})
	return ids, err
}
