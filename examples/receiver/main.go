// Command receiver is the reference receiver of rotatord's stored signing secrets: a small
// webhook endpoint that verifies webhook.co deliveries (Standard Webhooks v1) with every key
// it holds, in constant time, and keeps its keys current the way rotatord expects:
//
//   - it reads its key from rotatord's file sink (-file) or from Vault KV v2 (-vault-addr,
//     -vault-mount, -vault-path, token in VAULT_TOKEN), and keeps the key it had before
//     each reload, so deliveries signed with the retiring key still verify;
//   - POST /rotatord/notify reloads it (rotatord's HTTP notification, its Standard Webhooks
//     signature checked with -notify-key-file);
//   - GET /rotatord/keys answers which keys it holds ({"key_ids": [...]}): rotatord's
//     adoption check, so a rotation is held while this receiver lags;
//   - a delivery no held key verifies makes it read its key source again, for up to
//     -refresh-for, before it answers 401: after a lost secret or a rotation made outside
//     rotatord the new key is stored moments after webhook.co starts signing with it.
//
// It prints one JSON line when it listens: {"addr": "127.0.0.1:PORT"}. It exists for the
// README's worked example and for rotatord's tests; copy what you need.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type key struct {
	id     string
	secret []byte
}

type receiver struct {
	load       func(ctx context.Context) (key, error)
	notifyKey  []byte
	tolerance  time.Duration
	refreshFor time.Duration
	pauseFile  string

	mu   sync.Mutex
	keys []key // newest first, at most two
	// stats
	accepted, rejected, reloads int
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	file := flag.String("file", "", "rotatord's file sink record to read the key from (<dir>/<vault_path>.json)")
	vaultAddr := flag.String("vault-addr", "", "Vault address, to read the key from KV v2 (token in VAULT_TOKEN)")
	vaultMount := flag.String("vault-mount", "secret", "the KV v2 mount")
	vaultPath := flag.String("vault-path", "", "the destination's vault_path")
	notifyKeyFile := flag.String("notify-key-file", "", "the key (whsec_…) rotatord signs its notifications with; empty: notifications are not checked")
	tolerance := flag.Duration("tolerance", 5*time.Minute, "how far a delivery's timestamp may be from now")
	refreshFor := flag.Duration("refresh-for", 3*time.Second, "how long an unverifiable delivery waits for a newer key before 401")
	pauseFile := flag.String("pause-file", "", "while this file exists the receiver ignores reloads (to show a receiver that lags)")
	flag.Parse()
	r := &receiver{tolerance: *tolerance, refreshFor: *refreshFor, pauseFile: *pauseFile}
	switch {
	case *file != "":
		r.load = func(context.Context) (key, error) { return fromFile(*file) }
	case *vaultAddr != "" && *vaultPath != "":
		r.load = func(ctx context.Context) (key, error) {
			return fromVault(ctx, *vaultAddr, *vaultMount, *vaultPath, os.Getenv("VAULT_TOKEN"))
		}
	default:
		log.Fatal("receiver: give -file, or -vault-addr and -vault-path")
	}
	if *notifyKeyFile != "" {
		b, err := os.ReadFile(*notifyKeyFile)
		if err != nil {
			log.Fatal(err)
		}
		if r.notifyKey, err = decodeKey(strings.TrimSpace(string(b))); err != nil {
			log.Fatal(err)
		}
	}
	if err := r.reload(context.Background(), true); err != nil {
		log.Fatalf("receiver: first key: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	out, _ := json.Marshal(map[string]string{"addr": ln.Addr().String()})
	fmt.Println(string(out))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhook", r.webhook)
	mux.HandleFunc("POST /rotatord/notify", r.notify)
	mux.HandleFunc("GET /rotatord/keys", r.keyIDs)
	mux.HandleFunc("GET /stats", r.stats)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// reload reads the key source; a new key goes first and the one before it is kept.
func (r *receiver) reload(ctx context.Context, force bool) error {
	if !force && r.pauseFile != "" {
		if _, err := os.Stat(r.pauseFile); err == nil {
			return errors.New("paused")
		}
	}
	k, err := r.load(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloads++
	if len(r.keys) > 0 && r.keys[0].id == k.id {
		return nil
	}
	r.keys = append([]key{k}, r.keys...)
	if len(r.keys) > 2 {
		r.keys = r.keys[:2]
	}
	return nil
}

func (r *receiver) held() []key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]key(nil), r.keys...)
}

// webhook verifies a delivery: 204 when a held key made one of its signatures, else 401.
func (r *receiver) webhook(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	id, ts, sigs := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	deadline := time.Now().Add(r.refreshFor)
	for {
		err = verify(r.held(), id, ts, sigs, body, r.tolerance, time.Now())
		if err == nil || !errors.Is(err, errNoMatch) || time.Now().After(deadline) {
			break
		}
		// A key this receiver has not loaded yet signed it: read the source again.
		_ = r.reload(req.Context(), false)
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	if err != nil {
		r.rejected++
	} else {
		r.accepted++
	}
	r.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errNoMatch = errors.New("no signature matches a held key")

// verify checks a Standard Webhooks v1 delivery against every held key, comparing in
// constant time.
func verify(keys []key, id, ts, sigs string, body []byte, tolerance time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a number")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %s is outside the tolerance of %s", ts, tolerance)
	}
	match := false
	for _, k := range keys {
		want := []byte(sign(k.secret, id, ts, body))
		for _, s := range strings.Fields(sigs) {
			v, sig, ok := strings.Cut(s, ",")
			if ok && v == "v1" && hmac.Equal([]byte(sig), want) {
				match = true // keep comparing: the time taken does not say which key matched
			}
		}
	}
	if !match {
		return errNoMatch
	}
	return nil
}

func sign(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// notify is rotatord's notification: checked, then the key is reloaded.
func (r *receiver) notify(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if r.notifyKey != nil {
		if err := verify([]key{{secret: r.notifyKey}}, req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"), body, r.tolerance, time.Now()); err != nil {
			http.Error(w, "notification signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
	}
	if err := r.reload(req.Context(), false); err != nil {
		http.Error(w, "reload: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// keyIDs answers rotatord's adoption question.
func (r *receiver) keyIDs(w http.ResponseWriter, _ *http.Request) {
	var ids []string
	for _, k := range r.held() {
		ids = append(ids, k.id)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string][]string{"key_ids": ids})
}

func (r *receiver) stats(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]int{"accepted": r.accepted, "rejected": r.rejected, "reloads": r.reloads})
}

func fromFile(path string) (key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return key{}, err
	}
	var rec struct {
		KeyID  string `json:"key_id"`
		Secret string `json:"signing_secret"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return key{}, fmt.Errorf("%s: %w", path, err)
	}
	return parsed(rec.KeyID, rec.Secret)
}

func fromVault(ctx context.Context, addr, mount, path, token string) (key, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(addr, "/")+"/v1/"+mount+"/data/"+path, nil)
	if err != nil {
		return key{}, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return key{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return key{}, fmt.Errorf("vault: HTTP %d", resp.StatusCode)
	}
	var out struct {
		Data struct {
			Data struct {
				KeyID  string `json:"key_id"`
				Secret string `json:"signing_secret"`
			} `json:"data"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return key{}, err
	}
	return parsed(out.Data.Data.KeyID, out.Data.Data.Secret)
}

func parsed(id, secret string) (key, error) {
	k, err := decodeKey(secret)
	if err != nil || id == "" {
		return key{}, fmt.Errorf("stored record: want key_id and a whsec_ signing_secret")
	}
	return key{id: id, secret: k}, nil
}

func decodeKey(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("want whsec_<base64>")
	}
	return base64.StdEncoding.DecodeString(b64)
}
