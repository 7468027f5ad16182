package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, opts Options) (*Emulator, string) {
	t.Helper()
	e := New(opts)
	url, err := e.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, url
}

func do(t *testing.T, method, url, key string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestRotationStates: each rotate makes the active key retiring, the retiring one revoked.
func TestRotationStates(t *testing.T) {
	e, url := start(t, Options{})
	key := e.AddKey(ScopeEndpointsRead, ScopeEndpointsWrite)
	if !strings.HasPrefix(key, "whk_") || len(key) != 53 {
		t.Errorf("key %q: want whk_ and 53 characters", key)
	}
	id := e.AddDestination("a")
	first := e.Keys(id)[0].ID
	for range 3 {
		if resp := do(t, "POST", url+"/v1/replay-destinations/"+id+"/signing-secret", key); resp.StatusCode != 200 {
			t.Fatalf("rotate: %d", resp.StatusCode)
		}
	}
	var got []string
	for _, k := range e.Keys(id) {
		got = append(got, k.Status)
	}
	if strings.Join(got, ",") != "active,retiring,revoked,revoked" || e.Keys(id)[3].ID != first {
		t.Errorf("states newest first = %v", got)
	}

	resp := do(t, "GET", url+"/v1/replay-destinations/"+id+"/signing-secrets", key)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Items) != 4 {
		t.Fatalf("listing: %v %v", list, err)
	}
	for _, item := range list.Items {
		if _, has := item["secret"]; has || len(item) != 3 {
			t.Errorf("listing item %v: want exactly id, status, createdAt", item)
		}
	}
}

// TestAuthAndErrors: the bearer check's empty bodies and challenges, validation and 404s.
func TestAuthAndErrors(t *testing.T) {
	e, url := start(t, Options{})
	read := e.AddKey(ScopeEndpointsRead)
	id := e.AddDestination("a")
	tests := []struct {
		method, path, key string
		status            int
		ctype, challenge  string
	}{
		{"POST", "/v1/replay-destinations/" + id + "/signing-secret", "", 401, "", `error="invalid_token"`},
		{"POST", "/v1/replay-destinations/" + id + "/signing-secret", read, 403, "", `error="insufficient_scope"`},
		{"GET", "/v1/whoami", read, 200, "application/json", ""},
		{"GET", "/v1/replay-destinations/not-a-uuid/signing-secrets", read, 400, "application/json", ""},
		{"GET", "/v1/replay-destinations/9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b/signing-secrets", read, 404, "application/json", ""},
		{"DELETE", "/v1/whoami", read, 404, "text/plain; charset=utf-8", ""},
		{"GET", "/v2/anything", read, 404, "text/plain; charset=utf-8", ""},
	}
	for _, tt := range tests {
		resp := do(t, tt.method, url+tt.path, tt.key)
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.ctype || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.challenge) {
			t.Errorf("%s %s: %d %q %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("WWW-Authenticate"))
		}
		if tt.status == 401 || tt.status == 403 {
			var b [1]byte
			if n, _ := resp.Body.Read(b[:]); n != 0 {
				t.Errorf("%d has a body", tt.status)
			}
		}
	}
}

// TestOverlapsAreCounted: rotates of one destination in flight at once are detected, and
// leave several active keys, as API-NOTES describes.
func TestOverlapsAreCounted(t *testing.T) {
	e, url := start(t, Options{RotateLatency: 50 * time.Millisecond})
	key := e.AddKey(ScopeEndpointsWrite)
	id := e.AddDestination("a")
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, "POST", url+"/v1/replay-destinations/"+id+"/signing-secret", key) }()
	}
	wg.Wait()
	if e.Overlaps() == 0 {
		t.Error("no overlap counted for three concurrent rotates")
	}
}

// TestRecordKeepsArrivalOrder: a request recorded while another is still running keeps its place.
func TestRecordKeepsArrivalOrder(t *testing.T) {
	e, url := start(t, Options{})
	key := e.AddKey(ScopeEndpointsRead, ScopeEndpointsWrite)
	id := e.AddDestination("a")
	e.InjectFaults(OpRotate, Fault{Kind: Latency, Delay: 200 * time.Millisecond})
	done := make(chan struct{})
	go func() { do(t, "POST", url+"/v1/replay-destinations/"+id+"/signing-secret", key); close(done) }()
	time.Sleep(50 * time.Millisecond)
	do(t, "GET", url+"/v1/whoami", key)
	<-done
	reqs := e.Requests()
	if len(reqs) != 2 || reqs[0].Operation != OpRotate || reqs[1].Operation != OpWhoami || reqs[0].Status != 200 {
		t.Errorf("record = %+v", reqs)
	}
}

// TestUnknownPathIsPlainText: a path the API does not have is a plain-text 404, as the real
// server's router answers (not the JSON error envelope).
func TestUnknownPathIsPlainText(t *testing.T) {
	_, url := start(t, Options{})
	resp, err := http.Get(url + "/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("unknown path: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
