package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/app"
	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/receivers"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink"
)

// verifyCommand is `rotatord verify --delivery FILE NAME`: which stored key of NAME
// verifies a captured delivery (Standard Webhooks v1), or why none does. Never the secret.
func verifyCommand(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("verify", env)
	path := fs.String("config", config.DefaultPath, "config file")
	file := fs.String("delivery", "", "the captured delivery: a raw HTTP request, or JSON {\"headers\": {...}, \"body\": \"...\"}")
	tolerance := fs.Duration("tolerance", 5*time.Minute, "how far the delivery's webhook-timestamp may be from --at")
	at := fs.String("at", "", "judge the timestamp as of this RFC 3339 time (default: now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *file == "" {
		return fmt.Errorf("%w: verify needs --delivery FILE and one destination NAME", errUsage)
	}
	now, err := timeFlag("--at", *at)
	if err != nil {
		return err
	}
	del, err := readDelivery(*file)
	if err != nil {
		return fmt.Errorf("--delivery %s: %w", *file, err)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	d, ok := cfg.Destination(fs.Arg(0))
	if !ok {
		return fmt.Errorf("%w: no destination named %q in %s", errUsage, fs.Arg(0), *path)
	}
	s, _, err := app.OpenSink(ctx, cfg, env.daemonEnv())
	if err != nil {
		return err
	}
	keys, note, err := storedKeys(ctx, s, d)
	if err != nil {
		return err
	}
	matched, err := del.verify(keys, now, *tolerance, note)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	for _, c := range matched {
		fmt.Fprintf(env.Stdout, "verified by the %s key %s (stored at %s, rotated %s)\n", c.role, c.rec.KeyID, s.Location(d.VaultPath), c.rec.RotatedAt.UTC().Format(time.RFC3339))
	}
	if note != "" {
		fmt.Fprintln(env.Stdout, "note: "+note)
	}
	return nil
}

// storedKey is a key the sink holds for a destination: the active one, or the retiring one.
type storedKey struct {
	role string
	rec  sink.Record
}

// storedKeys are d's active key and, when the sink still has its secret (the KV v2 version
// the history names), the retiring one; note says why the retiring one is missing.
func storedKeys(ctx context.Context, s rotate.Sink, d config.Destination) (keys []storedKey, note string, err error) {
	active, err := s.Get(ctx, d.VaultPath)
	if err != nil {
		return nil, "", fmt.Errorf("read the stored key of %s: %w", d.Name, err)
	}
	keys = []storedKey{{"active", active}}
	h := active.History.Entries
	if len(h) == 0 {
		return keys, "", nil
	}
	prev := h[len(h)-1]
	v, isVault := s.(interface {
		GetVersion(ctx context.Context, path string, version sink.Version) (sink.Record, error)
	})
	switch {
	case prev.Lost:
		return keys, fmt.Sprintf("the retiring key %s was lost (its secret never reached rotatord)", prev.KeyID), nil
	case isVault && prev.Version != "":
		rec, err := v.GetVersion(ctx, d.VaultPath, prev.Version)
		if err == nil && rec.KeyID == prev.KeyID {
			return append(keys, storedKey{"retiring", rec}), "", nil
		}
		return keys, fmt.Sprintf("the retiring key %s (version %s) could not be read: %v", prev.KeyID, prev.Version, err), nil
	}
	return keys, fmt.Sprintf("the retiring key %s is no longer stored (%s keeps only the latest secret)", prev.KeyID, s.Name()), nil
}

// verify checks the delivery's Standard Webhooks v1 signatures against keys (in constant
// time) and its timestamp against now; an error says why it is not verified.
func (del delivery) verify(keys []storedKey, now time.Time, tolerance time.Duration, note string) ([]storedKey, error) {
	id, ts, sigs := del.Header.Get("webhook-id"), del.Header.Get("webhook-timestamp"), del.Header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return nil, fmt.Errorf("NOT verified: the delivery lacks webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("NOT verified: webhook-timestamp %q is not Unix seconds", ts)
	}
	var matched []storedKey
	for _, c := range keys {
		if signedBy(c.rec, id, ts, sigs, del.Body) {
			matched = append(matched, c)
		}
	}
	sent := time.Unix(sec, 0)
	if skew := now.Sub(sent); skew > tolerance || skew < -tolerance {
		also := ""
		if len(matched) > 0 {
			also = fmt.Sprintf("; its signature matches the %s key %s", matched[0].role, matched[0].rec.KeyID)
		}
		return nil, fmt.Errorf("NOT verified: the timestamp %s is %s from %s, outside the tolerance of %s (a replay, or a clock off)%s",
			sent.UTC().Format(time.RFC3339), skew.Round(time.Second), now.UTC().Format(time.RFC3339), tolerance, also)
	}
	if len(matched) == 0 {
		var names []string
		for _, c := range keys {
			names = append(names, c.role+" "+c.rec.KeyID)
		}
		msg := fmt.Sprintf("NOT verified: none of the delivery's %d signatures matches the stored keys (%s): signed with a revoked key, another destination's, or the body changed", len(strings.Fields(sigs)), strings.Join(names, ", "))
		if note != "" {
			msg += "; " + note
		}
		return nil, errors.New(msg)
	}
	return matched, nil
}

// signedBy reports whether one of sigs is rec's key's v1 signature of the message.
func signedBy(rec sink.Record, id, ts, sigs string, body []byte) bool {
	key, err := receivers.DecodeKey(rec.Secret.Reveal())
	if err != nil {
		return false
	}
	want := []byte(receivers.Sign(key, id, ts, body))
	found := false
	for _, sg := range strings.Fields(sigs) {
		if v, sig, ok := strings.Cut(sg, ","); ok && v == "v1" && hmac.Equal([]byte(sig), want) {
			found = true
		}
	}
	return found
}

// delivery is a captured delivery's headers and body.
type delivery struct {
	Header http.Header
	Body   []byte
}

// readDelivery reads a raw HTTP request, or JSON {"headers": {...}, "body": "..."}.
func readDelivery(name string) (delivery, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return delivery{}, err
	}
	if len(b) > 16<<20 {
		return delivery{}, fmt.Errorf("larger than 16 MiB")
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var j struct {
			Headers map[string]string `json:"headers"`
			Body    *string           `json:"body"`
		}
		if err := json.Unmarshal(t, &j); err != nil || j.Body == nil {
			return delivery{}, fmt.Errorf("want JSON {\"headers\": {...}, \"body\": \"...\"}")
		}
		h := http.Header{}
		for k, v := range j.Headers {
			h.Set(k, v)
		}
		return delivery{Header: h, Body: []byte(*j.Body)}, nil
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return delivery{}, fmt.Errorf("neither JSON nor a raw HTTP request: %v", err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return delivery{}, err
	}
	return delivery{Header: req.Header, Body: body}, nil
}
