package receivers

// The delivery watch (api.delivery_watch_interval, scope events:read): after a rotation,
// webhook.co's delivery log of the destination says whether its receivers accept deliveries
// signed with the new keys. Answers 401 or 403 that began after the rotation mean a receiver
// did not load the key: counted (rotatord_deliveries_rejected), logged, alerted on
// (RotatordDeliveriesRejected), and the destination's next rotation is held until a
// delivery is accepted again.

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// watchWindow is how long after a rotation its deliveries are watched.
const watchWindow = time.Hour

// watched is a destination whose deliveries are watched: since at, the first rotation that
// no accepted delivery has confirmed yet (a rotation every second must not push the window
// past the rejections it caused), up to last, the newest.
type watched struct {
	name, keyID string
	at, last    time.Time
	rejected    int
}

// noteRotation starts watching a destination's deliveries after a store.
func (m *Manager) noteRotation(ev rotate.Stored) {
	if m.opts.Deliveries == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.watch[ev.DestinationID]; ok {
		w.keyID, w.last = ev.KeyID, ev.RotatedAt
		return
	}
	m.watch[ev.DestinationID] = &watched{name: ev.Destination, keyID: ev.KeyID, at: ev.RotatedAt, last: ev.RotatedAt}
	m.opts.Metrics.SetDeliveriesRejected(ev.Destination, 0)
}

// watchOnce reads the delivery log of each destination rotated within the window.
func (m *Manager) watchOnce(ctx context.Context) {
	now := m.opts.Now()
	m.mu.Lock()
	var ids []string
	for id, w := range m.watch {
		if now.Sub(w.at) > watchWindow && w.rejected == 0 {
			delete(m.watch, id)
			m.opts.Metrics.DeliveriesRejected.DeleteLabelValues(w.name)
			continue
		}
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for i, id := range ids {
		if m.watchOff.Load() {
			return
		}
		items, o := m.opts.Deliveries(ctx, id)
		switch {
		case o.Class == rotate.Success:
			m.judge(id, items)
		case o.Reason == rotate.ReasonForbidden:
			m.watchOff.Store(true)
			m.log.Error("delivery watch off: the API key lacks events:read, which reading webhook.co's delivery log needs", zap.Error(o.Err))
			return
		case o.Reason == rotate.ReasonRateLimited:
			// The budget is closed for every caller; the rest of the pass waits for the next.
			m.log.Warn("delivery watch: webhook.co answered 429; the other destinations' logs are read at the next pass",
				zap.String("destination_id", id), zap.Int("not_read", len(ids)-i-1), zap.Error(o.Err))
			return
		case o.Reason == rotate.ReasonCanceled:
			return
		default:
			m.log.Warn("delivery watch: webhook.co's delivery log could not be read", zap.String("destination_id", id), zap.Error(o.Err))
		}
	}
}

// judge counts the 401/403 answers since the rotation, newest first, until an accepted
// delivery: one accepted since means the receivers have the key again.
func (m *Manager) judge(id string, items []webhookco.Delivery) {
	m.mu.Lock()
	w, ok := m.watch[id]
	if !ok {
		m.mu.Unlock()
		return
	}
	rejected := 0
	for _, d := range items { // newest first
		if d.CreatedAt.Before(w.at) || d.StatusCode == nil {
			continue
		}
		if c := *d.StatusCode; c == 401 || c == 403 {
			rejected++
			continue
		}
		if *d.StatusCode >= 200 && *d.StatusCode < 300 {
			if !d.CreatedAt.Before(w.last) {
				w.at = w.last // accepted after the newest rotation: all confirmed
			}
			break
		}
	}
	was := w.rejected
	w.rejected = rejected
	name, key, at := w.name, w.keyID, w.at
	m.mu.Unlock()
	m.opts.Metrics.SetDeliveriesRejected(name, rejected)
	switch {
	case rejected > 0 && was == 0:
		m.log.Error("receivers reject deliveries since a rotation: the next rotation of the destination is held until they accept again",
			zap.String("destination", name), zap.String("key_id", key), zap.Time("rotated_at", at), zap.Int("rejected", rejected))
	case rejected == 0 && was > 0:
		m.log.Info("receivers accept deliveries again", zap.String("destination", name))
	}
}

// rejecting says why a destination's next rotation is held by the delivery watch ("" if not).
func (m *Manager) rejecting(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.watch[id]
	if !ok || w.rejected == 0 {
		return ""
	}
	return fmt.Sprintf("receivers reject deliveries since the rotation to key %s at %s (%d answers 401/403 in webhook.co's delivery log)", w.keyID, w.at.UTC().Format(time.RFC3339), w.rejected)
}
