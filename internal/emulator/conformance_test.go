package emulator

// The emulator's conformance to the provider's real server, one subtest per behaviour of
// ../shared/webhookco/API-NOTES.md, in its words and its order. This is the one place a
// reader checks the emulator against the real server (REAL-SERVER.md says how to run it):
// every test and the demo trust what is written here.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// uuidV7 is a UUID version 7, as the real server mints destination and key ids.
var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// apiTimeRE is JavaScript's toISOString: milliseconds and Z.
var apiTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: %d %s", resp.Request.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	e, url := start(t, Options{})
	full := e.AddKey(ScopeEndpointsRead, ScopeEndpointsWrite)
	dest := e.AddDestination("billing")
	rotateURL := url + "/v1/replay-destinations/" + dest + "/signing-secret"
	keysURL := url + "/v1/replay-destinations/" + dest + "/signing-secrets"

	t.Run("an API key is whk_ + 43 characters + a 6-character checksum", func(t *testing.T) {
		if !regexp.MustCompile(`^whk_[A-Za-z0-9]{43}[0-9a-f]{6}$`).MatchString(full) {
			t.Errorf("key of %d characters does not have the form", len(full))
		}
	})
	t.Run("401 and 403 from the bearer check: empty body, WWW-Authenticate names the error", func(t *testing.T) {
		for key, want := range map[string]struct {
			status int
			code   string
		}{
			"":                           {401, `error="invalid_token"`},
			"whk_unknown":                {401, `error="invalid_token"`},
			e.AddKey(ScopeEndpointsRead): {403, `error="insufficient_scope"`},
		} {
			resp := do(t, http.MethodPost, rotateURL, key)
			if b := body(t, resp); resp.StatusCode != want.status || b != "" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), want.code) ||
				!strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
				t.Errorf("%d %q, WWW-Authenticate %q; want %d, empty, %s", resp.StatusCode, b, resp.Header.Get("WWW-Authenticate"), want.status, want.code)
			}
		}
	})
	t.Run("a write-only key gets 403 on the listing: write does not imply read", func(t *testing.T) {
		if resp := do(t, http.MethodGet, keysURL, e.AddKey(ScopeEndpointsWrite)); resp.StatusCode != 403 {
			t.Errorf("%d", resp.StatusCode)
		}
	})
	t.Run("500 is text/plain internal error; an unknown path or method is a text/plain 404", func(t *testing.T) {
		e.InjectFaults(OpListSigningSecrets, Fault{Kind: InternalError})
		resp := do(t, http.MethodGet, keysURL, full)
		if b := body(t, resp); resp.StatusCode != 500 || b != "internal error" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("500: %d %q %s", resp.StatusCode, b, resp.Header.Get("Content-Type"))
		}
		for _, r := range [][2]string{{http.MethodGet, "/v1/nothing"}, {http.MethodPut, "/v1/replay-destinations/" + dest + "/signing-secret"}} {
			resp := do(t, r[0], url+r[1], full)
			if b := body(t, resp); resp.StatusCode != 404 || b != "not found" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("%s %s: %d %q", r[0], r[1], resp.StatusCode, b)
			}
		}
	})
	t.Run("an id that is not the API's UUID is 400 VALIDATION_ERROR", func(t *testing.T) {
		resp := do(t, http.MethodPost, url+"/v1/replay-destinations/not-a-uuid/signing-secret", full)
		var env map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&env)
		if resp.StatusCode != 400 || env["error"] != "VALIDATION_ERROR" {
			t.Errorf("%d %v", resp.StatusCode, env)
		}
	})
	t.Run("rotate answers exactly destinationId, keyId and signingSecret; whsec_ + base64 of 32 bytes", func(t *testing.T) {
		var got map[string]any
		decode(t, do(t, http.MethodPost, rotateURL, full), &got)
		secret, _ := got["signingSecret"].(string)
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if len(got) != 3 || got["destinationId"] != dest || !strings.HasPrefix(secret, "whsec_") || err != nil || len(raw) != 32 {
			t.Errorf("fields %d, destinationId %v, secret of %d bytes", len(got), got["destinationId"], len(raw))
		}
		if id, _ := got["keyId"].(string); !uuidV7.MatchString(id) {
			t.Errorf("keyId %q is not a UUIDv7", id)
		}
	})
	t.Run("ids are UUIDv7 and times are milliseconds with Z", func(t *testing.T) {
		if !uuidV7.MatchString(dest) {
			t.Errorf("destination id %s", dest)
		}
		var keys struct {
			Items []map[string]string `json:"items"`
		}
		decode(t, do(t, http.MethodGet, keysURL, full), &keys)
		for _, k := range keys.Items {
			if !uuidV7.MatchString(k["id"]) || !apiTimeRE.MatchString(k["createdAt"]) {
				t.Errorf("key %v", k)
			}
		}
	})
	t.Run("rotate: retiring becomes revoked, active becomes retiring, a new active; the listing is newest first and never shows a secret", func(t *testing.T) {
		var rotated map[string]string
		decode(t, do(t, http.MethodPost, rotateURL, full), &rotated)
		var keys struct {
			Items []map[string]string `json:"items"`
		}
		decode(t, do(t, http.MethodGet, keysURL, full), &keys)
		statuses := []string{}
		for _, k := range keys.Items {
			statuses = append(statuses, k["status"])
			if len(k) != 3 {
				t.Errorf("a listed key has fields %v", k)
			}
		}
		if keys.Items[0]["id"] != rotated["keyId"] || strings.Join(statuses, ",") != "active,retiring,revoked" {
			t.Errorf("after two rotations: %v, newest %s, rotated %s", statuses, keys.Items[0]["id"], rotated["keyId"])
		}
	})
	t.Run("the destination list: one document, every listed item active, a deleted one gone and 404 after", func(t *testing.T) {
		gone := e.AddDestination("gone")
		req, _ := http.NewRequest(http.MethodDelete, url+"/v1/replay-destinations/"+gone, nil)
		req.Header.Set("Authorization", "Bearer "+full)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("delete: %v", err)
		}
		var list struct {
			Items []map[string]any `json:"items"`
		}
		decode(t, do(t, http.MethodGet, url+"/v1/replay-destinations", full), &list)
		for _, it := range list.Items {
			if it["id"] == gone || it["status"] != "active" || !apiTimeRE.MatchString(fmt.Sprint(it["createdAt"])) {
				t.Errorf("listed: %v", it)
			}
			for _, field := range []string{"id", "orgId", "url", "label", "status", "createdAt", "lastValidatedAt", "ordered", "disabledAt"} {
				if _, ok := it[field]; !ok {
					t.Errorf("an item lacks %s", field)
				}
			}
		}
		for _, u := range []string{"/signing-secret", "/signing-secrets"} {
			method := http.MethodGet
			if u == "/signing-secret" {
				method = http.MethodPost
			}
			if resp := do(t, method, url+"/v1/replay-destinations/"+gone+u, full); resp.StatusCode != 404 {
				t.Errorf("%s after delete: %d", u, resp.StatusCode)
			}
		}
	})
	t.Run("disabledAt is set by the engine's auto-disable and cleared by POST enable", func(t *testing.T) {
		off := e.AddDestination("flaky")
		e.DisableDestination(off)
		listed := func() any {
			var list struct {
				Items []map[string]any `json:"items"`
			}
			decode(t, do(t, http.MethodGet, url+"/v1/replay-destinations", full), &list)
			for _, it := range list.Items {
				if it["id"] == off {
					return it["disabledAt"]
				}
			}
			return "not listed"
		}
		if at := listed(); !apiTimeRE.MatchString(fmt.Sprint(at)) {
			t.Errorf("disabled: disabledAt %v", at)
		}
		if resp := do(t, http.MethodPost, url+"/v1/replay-destinations/"+off+"/enable", full); resp.StatusCode != 200 {
			t.Errorf("enable: %d", resp.StatusCode)
		}
		if at := listed(); at != nil {
			t.Errorf("enabled: disabledAt %v", at)
		}
	})
	t.Run("the list has no pagination, whatever its size", func(t *testing.T) {
		for i := range 3000 {
			e.AddDestination(fmt.Sprintf("many-%d", i))
		}
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		decode(t, do(t, http.MethodGet, url+"/v1/replay-destinations", full), &list)
		if len(list.Items) < 3000 {
			t.Errorf("%d listed", len(list.Items))
		}
	})
	t.Run("a 429 carries no Retry-After, as the server's code sends it", func(t *testing.T) {
		e.InjectFaults(OpRotate, Fault{Kind: RateLimit})
		resp := do(t, http.MethodPost, rotateURL, full)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
			t.Errorf("%d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})
	t.Run("a rotate keeps running after its client gives up, and commits late", func(t *testing.T) {
		before := len(e.Keys(dest))
		e.InjectFaults(OpRotate, Fault{Kind: LateCommit, Delay: 1500 * time.Millisecond})
		c := &http.Client{Timeout: 300 * time.Millisecond}
		req, _ := http.NewRequest(http.MethodPost, rotateURL, nil)
		req.Header.Set("Authorization", "Bearer "+full)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("the client got an answer before the commit")
		}
		if n := len(e.Keys(dest)); n != before {
			t.Errorf("a listing right after the timeout shows %d keys, want %d (not committed yet)", n, before)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(e.Keys(dest)) == before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if len(e.Keys(dest)) != before+1 {
			t.Error("the abandoned rotate never committed")
		}
		m := e.Minted()
		if last := m[len(m)-1]; last.Delivered {
			t.Error("the late key is recorded as delivered to a client that had gone")
		}
	})
	t.Run("concurrent rotates of one destination race and can leave several active keys", func(t *testing.T) {
		slow, slowURL := start(t, Options{RotateLatency: 50 * time.Millisecond}) // about the real 36 ms
		key := slow.AddKey(ScopeEndpointsWrite)
		racy := slow.AddDestination("racy")
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(t, http.MethodPost, slowURL+"/v1/replay-destinations/"+racy+"/signing-secret", key)
			}()
		}
		wg.Wait()
		if len(slow.ActiveKeys(racy)) != 2 {
			t.Errorf("%d active keys after two rotates at once, want 2", len(slow.ActiveKeys(racy)))
		}
		if slow.Overlaps() == 0 {
			t.Error("two rotates in flight at once were not seen as overlapping")
		}
	})
	t.Run("whoami answers any valid key, never 403", func(t *testing.T) {
		resp := do(t, http.MethodGet, url+"/v1/whoami", e.AddKey())
		var who map[string]any
		decode(t, resp, &who)
		if who["orgId"] == nil || who["scopes"] == nil {
			t.Errorf("%v", who)
		}
	})
}
