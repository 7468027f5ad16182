package receivers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Gate is the rotator's gate: before a rotation mints, every consumer of the destination
// with adoption must hold the stored key. The rotation would revoke the key stored before
// it; a consumer that holds only that one would reject every delivery. A consumer that
// cannot say counts as behind. When holding would let the stored secret pass max_age,
// on_hold_deadline decides: hold (default) or rotate.
func (m *Manager) Gate(ctx context.Context, rd rotate.Destination, stored sink.Record) error {
	d, ok := m.opts.Lookup(rd.ID)
	if !ok {
		return nil
	}
	if why := m.rejecting(d.ID); why != "" {
		return fmt.Errorf("held: %s; another rotation would revoke the key they still verify with", why)
	}
	now := m.opts.Now()
	var behind []Hold
	for _, c := range d.Consumers {
		if c.Adoption == nil {
			continue
		}
		keys, err := m.Adopted(ctx, c, d)
		m.mu.Lock()
		if err == nil {
			if m.seen[c.Name] == nil {
				m.seen[c.Name] = map[string][]string{}
			}
			m.seen[c.Name][d.ID] = keys
		}
		m.mu.Unlock()
		if err == nil && slices.Contains(keys, stored.KeyID) {
			m.caughtUp(c.Name, d)
			continue
		}
		h := Hold{Destination: d.Name, Consumer: c.Name, StoredKeyID: stored.KeyID, Holds: keys, Since: now}
		if err != nil {
			h.Why = err.Error()
		}
		behind = append(behind, m.hold(h, d))
	}
	if len(behind) == 0 {
		return nil
	}
	// Told again: the consumer may have missed the notification.
	ev := rotate.Stored{DestinationID: d.ID, Destination: d.Name, KeyID: stored.KeyID, Version: stored.Version, RotatedAt: stored.RotatedAt}
	for _, c := range d.Consumers {
		if slices.ContainsFunc(behind, func(h Hold) bool { return h.Consumer == c.Name }) {
			m.enqueue(c, ev)
		}
	}
	deadline := stored.RotatedAt.Add(d.EffectiveMaxAge(now))
	if d.OnHoldDeadline == config.HoldRotate && !now.Before(deadline) {
		m.log.Error("rotating although a consumer is behind: holding longer would break max_age (on_hold_deadline: rotate)",
			zap.String("destination", d.Name), zap.String("consumer", behind[0].Consumer), zap.Time("deadline", deadline))
		return nil
	}
	var why []string
	for _, h := range behind {
		why = append(why, h.Describe())
	}
	return fmt.Errorf("held: %s; rotating now would revoke the key it uses", strings.Join(why, "; "))
}

// hold records h (keeping the first time it was seen behind) and returns it.
func (m *Manager) hold(h Hold, d config.Destination) Hold {
	m.mu.Lock()
	ds := m.behind[h.Consumer]
	if ds == nil {
		ds = map[string]Hold{}
		m.behind[h.Consumer] = ds
	}
	if prev, ok := ds[d.ID]; ok && prev.StoredKeyID == h.StoredKeyID {
		h.Since = prev.Since
	}
	ds[d.ID] = h
	n := len(ds)
	m.mu.Unlock()
	m.opts.Metrics.ConsumerBehind.WithLabelValues(h.Consumer).Set(float64(n))
	m.opts.Metrics.RotationHeld.WithLabelValues(d.Name, h.Consumer).Set(float64(h.Since.Unix()))
	m.opts.Metrics.Fleet.Hold(d.Name, h.Consumer, true)
	m.writeHolds()
	return h
}

// caughtUp clears a hold of consumer on d.
func (m *Manager) caughtUp(consumer string, d config.Destination) {
	m.mu.Lock()
	ds := m.behind[consumer]
	_, was := ds[d.ID]
	delete(ds, d.ID)
	n := len(ds)
	m.mu.Unlock()
	m.opts.Metrics.ConsumerBehind.WithLabelValues(consumer).Set(float64(n))
	if was {
		m.opts.Metrics.RotationHeld.DeleteLabelValues(d.Name, consumer)
		m.opts.Metrics.Fleet.Hold(d.Name, consumer, false)
		m.log.Info("consumer caught up: rotations of the destination go on", zap.String("destination", d.Name), zap.String("consumer", consumer))
		m.writeHolds()
	}
}

// Adopted asks consumer c which keys of d it holds.
func (m *Manager) Adopted(ctx context.Context, c config.Consumer, d config.Destination) ([]string, error) {
	return Ask(ctx, m.opts.Acks, c, d)
}

// Acks reads the keys consumer acknowledged beside the secret at path (Options.Acks).
type Acks func(ctx context.Context, path, consumer string) ([]string, error)

// Ask asks consumer c, by its adoption (c.Adoption must be set), which keys of d it holds:
// the question the gate asks before each rotation, and `status --online` on any host. acks
// reads an acknowledgement (nil: the sink keeps none).
func Ask(ctx context.Context, acks Acks, c config.Consumer, d config.Destination) ([]string, error) {
	a := c.Adoption
	ctx, cancel := context.WithTimeout(ctx, a.EffectiveTimeout())
	defer cancel()
	expand := func(s string, escape func(string) string) string {
		return strings.NewReplacer("{id}", escape(d.ID), "{name}", escape(d.Name)).Replace(s)
	}
	if a.Ack {
		if acks == nil {
			return nil, fmt.Errorf("acknowledgements cannot be read from this sink")
		}
		keys, err := acks(ctx, d.VaultPath, c.Name)
		if err != nil {
			return nil, fmt.Errorf("its acknowledgement: %w", err)
		}
		return keys, nil
	}
	if len(a.Exec) > 0 {
		args := make([]string, len(a.Exec))
		for i, s := range a.Exec {
			args[i] = expand(s, func(s string) string { return s })
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "ROTATORD_CONSUMER=" + c.Name, "ROTATORD_DESTINATION_ID=" + d.ID, "ROTATORD_DESTINATION=" + d.Name}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &limited{w: &out, n: 64 << 10}, io.Discard
		cmd.WaitDelay = time.Second
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %w", args[0], err)
		}
		var keys []string
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			keys = append(keys, strings.Fields(sc.Text())...)
		}
		return keys, nil
	}
	u := expand(a.URL, url.PathEscape)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "rotatord")
	resp, err := notifyClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, webhookco.ScrubURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	var body struct {
		KeyIDs []string `json:"key_ids"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: want {\"key_ids\": [...]}: %v", u, err)
	}
	return body.KeyIDs, nil
}

type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > l.n {
		p = p[:l.n]
	}
	l.n -= len(p)
	_, _ = l.w.Write(p)
	return n, nil
}
