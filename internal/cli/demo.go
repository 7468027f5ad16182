package cli

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/emulator"
	"github.com/rotatord/rotatord/internal/rotate"
)

//go:embed demo.yaml
var demoConfig string

// demoHooks print one line per rotation, and where things are once the daemon is ready,
// with the commands to try against it.
func demoHooks(env Env, baseURL, where, configPath string) app.Options {
	var mu sync.Mutex
	return app.Options{Version: version,
		Command: "rotatord demo",
		OnResult: func(r rotate.Result) {
			mu.Lock()
			defer mu.Unlock()
			ts := time.Now().Format("15:04:05")
			switch {
			case r.Reason == rotate.ReasonCanceled:
				fmt.Fprintf(env.Stdout, "%s  %-14s stopped  (Ctrl-C came first; nothing was minted that is not accounted for)\n", ts, r.Destination)
			case r.Status == rotate.Skipped:
				fmt.Fprintf(env.Stdout, "%s  %-14s skipped  %v\n", ts, r.Destination, r.Err)
			case r.OK():
				fmt.Fprintf(env.Stdout, "%s  %-14s rotated  key %s  %-14s  %6s  -> %s\n", ts, r.Destination, r.KeyID, plural(r.RotateCalls, "rotate call"), r.Duration.Round(time.Millisecond), r.Location)
			default:
				fmt.Fprintf(env.Stdout, "%s  %-14s FAILED   %s: %v\n", ts, r.Destination, r.Reason, r.Err)
			}
		},
		OnReady: func(addr string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(env.Stdout, "rotatord demo: emulator at %s, secrets to %s\nmetrics at http://%s/metrics; press Ctrl-C to stop\n\n", baseURL, where, addr)
			fmt.Fprintf(env.Stdout, "While it runs, try these in another terminal (its config and API key are in %s, removed when it stops):\n", filepath.Dir(configPath))
			self := selfName()
			for _, c := range []string{"status --online", "plan", "rotate --wait 10s billing-demo orders-demo", "check --online", "spool list"} {
				fmt.Fprintf(env.Stdout, "  %s %s --config %s\n", self, c, configPath)
			}
			fmt.Fprintf(env.Stdout, "  curl -s http://%s/metrics | grep '^rotatord_rotations_total'\n\n", addr)
		},
	}
}

// DefaultDemoListen is the demo's metrics address unless --metrics-listen says otherwise.
const DefaultDemoListen = "127.0.0.1:9464"

// demoCommand is `rotatord demo`: the daemon on an embedded config, against the in-repo
// webhook.co emulator on loopback, storing into files (or Vault when VAULT_ADDR is set),
// printing one line per rotation, until Ctrl-C.
func demoCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("demo", env)
	listen := fs.String("metrics-listen", DefaultDemoListen, "address of /metrics, /healthz and /readyz (the default, when taken, becomes any free port)")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	rateLimits := fs.Float64("rate-limit-share", 0.1, "share of rotate requests the emulator answers with 429, to show the backoff")
	mount := fs.String("kv-mount", "secret", "with VAULT_ADDR set: the KV v2 mount to write to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	// The emulator, with a key and three destinations.
	em := emulator.New(emulator.Options{RotateLatency: 5 * time.Millisecond})
	baseURL, err := em.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer em.Close()
	apiKey := em.AddKey(emulator.ScopeEndpointsRead, emulator.ScopeEndpointsWrite)
	if *rateLimits > 0 {
		em.SetRandomFaults(*rateLimits, []string{emulator.OpRotate}, emulator.Fault{Kind: emulator.RateLimit, RetryAfter: "1"}, emulator.Fault{Kind: emulator.RateLimit})
	}

	// The embedded config, filled in: state and file sink under a temporary directory,
	// removed when the demo ends (it holds the demo's secrets).
	dir, err := os.MkdirTemp("", "rotatord-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The default port may be taken (another rotatord): then any free one, said at start.
	if *listen == DefaultDemoListen {
		if ln, err := net.Listen("tcp", *listen); err == nil {
			_ = ln.Close()
		} else {
			*listen = "127.0.0.1:0"
		}
	}
	sinkType, sinkDir, where := config.SinkFile, "  dir: "+filepath.Join(dir, "secrets"), "files under "+filepath.Join(dir, "secrets")
	if env.Getenv("VAULT_ADDR") != "" {
		sinkType, sinkDir, where = config.SinkVault, "", "Vault "+env.Getenv("VAULT_ADDR")+" (KV v2 mount "+*mount+")"
	}
	// The API key as a file of the demo's (0600), so other commands can use the config too.
	keyFile := filepath.Join(dir, "webhookco-api-key")
	if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
		return err
	}
	yaml := strings.NewReplacer(
		"KEY_FILE", keyFile, "STATE_DIR", filepath.Join(dir, "state"), "BASE_URL", baseURL, "SINK_TYPE", sinkType, "SINK_DIR", sinkDir, "KV_MOUNT", *mount, "METRICS_LISTEN", *listen,
		"DEST_BILLING", em.AddDestination("billing"), "DEST_ORDERS", em.AddDestination("orders"), "DEST_PAYMENTS", em.AddDestination("payments"),
	).Replace(demoConfig)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		return fmt.Errorf("embedded demo config: %w", err)
	}
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(yaml), 0o600); err != nil {
		return err
	}

	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	// The same start as run: with VAULT_ADDR set, a mount of the wrong KV version or a
	// token that may not write stops the demo here, naming what is wrong.
	return app.Start(ctx, cfg, env.daemonEnv(), demoHooks(env, baseURL, where, configPath), false,
		"with VAULT_ADDR set the demo writes to a KV v2 mount: name one with --kv-mount")
}

// selfName is how to call this rotatord from a shell: "rotatord" when that is on PATH and is
// this binary, else this binary's path (`go run` builds one that lives as long as it runs).
func selfName() string {
	self, err := os.Executable()
	if err != nil {
		return "rotatord"
	}
	if onPath, err := exec.LookPath("rotatord"); err == nil {
		if a, err1 := os.Stat(onPath); err1 == nil {
			if b, err2 := os.Stat(self); err2 == nil && os.SameFile(a, b) {
				return "rotatord"
			}
		}
	}
	return self
}
