package emulator

// Deliveries, as the provider's engine makes them: an event POSTed to the destination's
// receiver, signed Standard Webhooks v1 with every honoured key (active and retiring),
// space-separated, newest first; each attempt's status code recorded and listed by
// GET /v1/deliveries (scope events:read, newest first, keyset-paginated).

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ScopeEventsRead lets a key list deliveries.
const ScopeEventsRead = "events:read"

// OpListDeliveries is GET /v1/deliveries.
const OpListDeliveries = "list_deliveries"

// Delivery is one delivery attempt the emulator made.
type Delivery struct {
	ID, EventID, DestinationID string
	At                         time.Time
	// StatusCode is the receiver's answer (0: no answer; Err says why).
	StatusCode int
	Err        string
	// KeyIDs are the keys the delivery was signed with, newest first.
	KeyIDs []string
}

// Deliver POSTs an event to url for the destination every interval until stop is called,
// like the engine delivering replays to a receiver.
func (e *Emulator) Deliver(destinationID, url string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.DeliverOnce(client, destinationID, url)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// DeliverOnce makes one delivery attempt now and returns it.
func (e *Emulator) DeliverOnce(client *http.Client, destinationID, url string) Delivery {
	e.mu.Lock()
	d, ok := e.live(strings.ToLower(destinationID))
	var keys []*signingKey
	if ok {
		for _, k := range d.keys {
			if k.status == "active" || k.status == "retiring" {
				keys = append(keys, k)
			}
		}
	}
	e.mu.Unlock()
	del := Delivery{ID: newUUID(), EventID: newUUID(), DestinationID: strings.ToLower(destinationID), At: e.now().UTC()}
	if !ok {
		del.Err = "no such destination"
		return del
	}
	body := []byte(fmt.Sprintf(`{"type":"replay.event","eventId":%q,"data":{"n":%d}}`, del.EventID, time.Now().UnixNano()))
	ts := strconv.FormatInt(del.At.Unix(), 10)
	var sigs []string
	for _, k := range keys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(k.secret, "whsec_"))
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, raw)
		mac.Write([]byte(del.ID + "." + ts + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		del.KeyIDs = append(del.KeyIDs, k.id)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", del.ID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", strings.Join(sigs, " "))
	resp, err := client.Do(req)
	if err != nil {
		del.Err = err.Error()
	} else {
		del.StatusCode = resp.StatusCode
		resp.Body.Close()
	}
	e.mu.Lock()
	e.deliveries = append(e.deliveries, del)
	e.mu.Unlock()
	return del
}

// Deliveries returns the delivery attempts for a destination ("" = all), oldest first.
func (e *Emulator) Deliveries(destinationID string) []Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Delivery
	for _, d := range e.deliveries {
		if destinationID == "" || d.DestinationID == strings.ToLower(destinationID) {
			out = append(out, d)
		}
	}
	return out
}

// listDeliveries serves GET /v1/deliveries: newest first, limit 1-200 (default 50),
// cursor the last item's id of the page before.
func (e *Emulator) listDeliveries(r *http.Request) (map[string]any, int, string) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return nil, http.StatusBadRequest, "limit must be 1-200"
		}
		limit = n
	}
	dest := strings.ToLower(q.Get("destinationId"))
	all := e.Deliveries(dest)
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.After(all[j].At) || all[i].At.Equal(all[j].At) && i > j })
	start := 0
	if c := q.Get("cursor"); c != "" {
		start = -1
		for i, d := range all {
			if d.ID == c {
				start = i + 1
			}
		}
		if start < 0 {
			return nil, http.StatusBadRequest, "unknown cursor"
		}
	}
	items := []map[string]any{}
	var next any
	for i := start; i < len(all) && len(items) < limit; i++ {
		d := all[i]
		status, code, errText := "delivered", any(d.StatusCode), any(nil)
		if d.StatusCode == 0 {
			code, errText = nil, d.Err
		}
		if d.StatusCode < 200 || d.StatusCode > 299 {
			status = "failed"
		}
		items = append(items, map[string]any{"id": d.ID, "eventId": d.EventID, "destinationId": d.DestinationID, "subscriptionId": nil,
			"status": status, "statusCode": code, "attempt": 1, "error": errText, "nextRetryAt": nil, "createdAt": d.At.Format(apiTime),
			"sourceVerificationState": "unattempted"})
		if len(items) == limit && i+1 < len(all) {
			next = d.ID
		}
	}
	return map[string]any{"items": items, "nextCursor": next}, http.StatusOK, ""
}
