package emulator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"

	"github.com/rotatord/rotatord/internal/emulator"
)

// TestDeliveriesAsTheOpenAPIDocumentSays: deliveries are signed with every honoured key,
// newest first; GET /v1/deliveries needs events:read and answers the Delivery shape with
// every required field, newest first, paginated by nextCursor.
func TestDeliveriesAsTheOpenAPIDocumentSays(t *testing.T) {
	em := emulator.New(emulator.Options{})
	url, err := em.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	id := em.AddDestination("billing")
	if _, err := em.RotateDirect(id); err != nil {
		t.Fatal(err)
	}
	codes := []int{204, 401, 204}
	n := 0
	var sigs []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sigs = append(sigs, r.Header.Get("webhook-signature"))
		w.WriteHeader(codes[n%len(codes)])
		n++
	}))
	defer recv.Close()
	var last emulator.Delivery
	for range 3 {
		last = em.DeliverOnce(recv.Client(), id, recv.URL)
	}
	keys := em.Keys(id)
	if len(last.KeyIDs) != 2 || last.KeyIDs[0] != keys[0].ID || last.KeyIDs[1] != keys[1].ID || len(sigs) != 3 {
		t.Fatalf("signed with %v, want the active and the retiring key %s %s", last.KeyIDs, keys[0].ID, keys[1].ID)
	}
	get := func(key, query string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/deliveries?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get(em.AddKey(emulator.ScopeEndpointsRead), "destinationId="+id); code != http.StatusForbidden {
		t.Errorf("without events:read: %d, want 403", code)
	}
	key := em.AddKey(emulator.ScopeEventsRead)
	code, page := get(key, "limit=2&destinationId="+id)
	items, _ := page["items"].([]any)
	if code != 200 || len(items) != 2 || page["nextCursor"] == nil {
		t.Fatalf("first page: %d %v", code, page)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Required []string `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	b, err := os.ReadFile("../../../shared/webhookco/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	first := items[0].(map[string]any)
	for _, f := range spec.Components.Schemas["Delivery"].Required {
		if _, ok := first[f]; !ok {
			t.Errorf("a listed delivery lacks the required field %q", f)
		}
	}
	if first["id"] != last.ID || first["statusCode"].(float64) != 204 || items[1].(map[string]any)["statusCode"].(float64) != 401 {
		t.Errorf("not newest first with the receiver's answers: %v", items)
	}
	_, page2 := get(key, "limit=2&destinationId="+id+"&cursor="+page["nextCursor"].(string))
	items2, _ := page2["items"].([]any)
	if len(items2) != 1 || page2["nextCursor"] != nil || slices.ContainsFunc(items, func(x any) bool { return x.(map[string]any)["id"] == items2[0].(map[string]any)["id"] }) {
		t.Errorf("second page: %v", page2)
	}
}
