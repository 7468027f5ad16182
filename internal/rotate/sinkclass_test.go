package rotate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/vaulttest"
	"github.com/rotatord/rotatord/internal/webhookco"
)

func TestClassifySink(t *testing.T) {
	for _, tt := range []struct {
		err    error
		class  rotate.Class
		reason string
	}{
		{nil, rotate.Success, ""},
		{sink.ErrPartial, rotate.Success, rotate.WarningMetadataRefused},
		{sink.ErrConflict, rotate.Retryable, rotate.ReasonSink},
		{errors.New("Code: 503. Vault is sealed"), rotate.Retryable, rotate.ReasonSink},
		{sink.ErrDenied, rotate.Refused, rotate.ReasonSinkDenied},
		{sink.ErrMisconfigured, rotate.Refused, rotate.ReasonSinkMisconfigured},
	} {
		got := rotate.ClassifySink(tt.err)
		if got.Class != tt.class || got.Reason != tt.reason {
			t.Errorf("ClassifySink(%v) = %s %q, want %s %q", tt.err, got.Class, got.Reason, tt.class, tt.reason)
		}
	}
}

// TestSinkRefusalStopsAtOnce: against a real Vault, a token without the right to write
// (after the one re-login) and a KV v2 sink on a KV v1 mount stop the store loop at once,
// without the retries of max_sink_wait: the secret stays in the spool and the rotation
// fails with its own reason. A refused custom_metadata is a success with a warning, counted.
func TestSinkRefusalStopsAtOnce(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv2", 2)
	v.EnableKV(t, "kv1", 1)
	root := v.Client(t)
	if err := root.Sys().PutPolicy("read-only", `path "kv2/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("data-only", `path "kv2/data/*" { capabilities = ["create", "update", "read"] }`); err != nil {
		t.Fatal(err)
	}
	readOnly, dataOnly := v.Client(t), v.Client(t)
	readOnly.SetToken(v.Token(t, "read-only"))
	dataOnly.SetToken(v.Token(t, "data-only"))
	recovered := 0
	for _, tt := range []struct {
		name   string
		sink   func() (*vaultkv.KV, error)
		reason string
	}{
		{"token may not write", func() (*vaultkv.KV, error) {
			return vaultkv.New(vaultkv.Options{Client: readOnly, Mount: "kv2", Version: 2,
				Recover: func(context.Context) error {
					recovered++
					return errors.New("the token is valid; it lacks the permission")
				}})
		}, rotate.ReasonSinkDenied},
		{"KV v2 configured on a KV v1 mount", func() (*vaultkv.KV, error) {
			return vaultkv.New(vaultkv.Options{Client: root, Mount: "kv1", Version: 2})
		}, rotate.ReasonSinkMisconfigured},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.sink()
			if err != nil {
				t.Fatal(err)
			}
			h, r := newHarness(t, harnessOpts{sink: s})
			res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
			if res.OK() || res.Reason != tt.reason || res.Status != rotate.Spooled {
				t.Fatalf("result = %+v, want reason %s with the secret spooled", res, tt.reason)
			}
			if tt.reason == rotate.ReasonSinkDenied && recovered != 1 {
				t.Errorf("re-login tried %d times on 403, want once (then the refusal stands)", recovered)
			}
			if got := testutil.ToFloat64(h.m.SinkRetries); got != 0 || len(h.waits) != 0 {
				t.Errorf("sink retries = %v, waits %v: a refusal must not be retried for max_sink_wait", got, h.waits)
			}
			if got := testutil.ToFloat64(h.m.RotationFailures.WithLabelValues(h.dest.Name, tt.reason)); got != 1 {
				t.Errorf("rotation_failures{reason=%s} = %v, want 1", tt.reason, got)
			}
			if n, _ := h.spool.Len(); n != 1 {
				t.Errorf("spool holds %d, want the secret", n)
			}
			// The next rotation is held back by the spooled secret, for the same reason.
			if res := r.Rotate(context.Background(), h.dest, rotate.TriggerSchedule); res.Reason != tt.reason || res.RotateCalls != 0 {
				t.Errorf("second rotation = %+v, want no rotate and reason %s", res, tt.reason)
			}
		})
	}

	t.Run("custom_metadata refused", func(t *testing.T) {
		s, _ := vaultkv.New(vaultkv.Options{Client: dataOnly, Mount: "kv2", Version: 2})
		h, r := newHarness(t, harnessOpts{sink: s})
		res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
		if !res.OK() || res.Warning != rotate.WarningMetadataRefused {
			t.Fatalf("result = %+v, want success with warning %s", res, rotate.WarningMetadataRefused)
		}
		if got := testutil.ToFloat64(h.m.SinkPartialWrites); got != 1 {
			t.Errorf("sink_partial_writes_total = %v, want 1", got)
		}
		h.assertStoredActive(t)
		if n, _ := h.spool.Len(); n != 0 {
			t.Errorf("spool holds %d after a stored secret", n)
		}
	})
}

// TestUnreachableHasItsOwnBound: a webhook.co that cannot be reached is waited for at most
// max_unreachable_wait, not max_rate_limit_wait (a bound for 429s), and every wait is
// announced to OnWait (what `rotatord rotate` prints).
func TestUnreachableHasItsOwnBound(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	down, err := webhookco.New(webhookco.Options{BaseURL: "http://127.0.0.1:1", APIKey: secret.New(h.apiKey), Version: "test", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	opts := h.opts
	opts.API = down
	opts.Policy.MaxRateLimitWait = 10 * time.Minute
	opts.Policy.MaxUnreachableWait = 20 * time.Second
	var announced []rotate.Wait
	opts.OnWait = func(w rotate.Wait) { announced = append(announced, w) }
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.storeCurrent(t, h.dest)
	res := r.Rotate(context.Background(), h.dest, rotate.TriggerManual)
	if res.OK() || res.Reason != rotate.ReasonUnreachable || res.RotateCalls == 0 {
		t.Fatalf("result = %+v, want reason unreachable after some attempts", res)
	}
	var total time.Duration
	for _, w := range h.waits {
		total += w
	}
	if total > 20*time.Second || total == 0 {
		t.Errorf("waited %s in all, want at most max_unreachable_wait (20s)", total)
	}
	if len(announced) != len(h.waits) || len(announced) == 0 || announced[0].Reason != rotate.ReasonUnreachable || announced[0].Max != 20*time.Second {
		t.Errorf("announced %+v for %d waits", announced, len(h.waits))
	}
	if !strings.Contains(res.Err.Error(), "max_unreachable_wait") {
		t.Errorf("error %v does not name the bound", res.Err)
	}
}

// TestReplayWritesTheConfiguredPath: a spool entry whose recorded path was rewritten on disk
// is stored at the path the config gives its destination; one whose destination left the
// config stays in the spool.
func TestReplayWritesTheConfiguredPath(t *testing.T) {
	h, _ := newHarness(t, harnessOpts{})
	opts := h.opts
	opts.Resolve = func(id string) (rotate.Destination, bool) {
		if id == h.dest.ID {
			return h.dest, true
		}
		return rotate.Destination{}, false
	}
	r, err := rotate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	keyID, err := h.em.RotateDirect(h.dest.ID)
	if err != nil {
		t.Fatal(err)
	}
	active := h.em.ActiveKeys(h.dest.ID)[0]
	now := time.Now().UTC()
	planted := spool.Entry{DestinationID: h.dest.ID, Destination: h.dest.Name, Path: "../planted", KeyID: keyID,
		Secret: secret.New(active.Secret), RotatedAt: now, SpooledAt: now}
	orphan := spool.Entry{DestinationID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", Destination: "gone", Path: "webhookco/gone", KeyID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c",
		Secret: secret.New("whsec_orphan"), RotatedAt: now, SpooledAt: now}
	for _, e := range []spool.Entry{planted, orphan} {
		if err := h.spool.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	left, err := r.Replay(context.Background())
	if left != 1 || err == nil || !strings.Contains(err.Error(), "is not in the config") {
		t.Errorf("Replay = %d, %v; want the orphan kept, saying why", left, err)
	}
	h.assertStoredActive(t) // at h.dest.Path, not at ../planted
}
