// Package receivers looks after the consumers of the stored secrets: it tells each one,
// once per burst, that new keys are stored (exec or a signed HTTP POST), asks the ones with
// adoption which keys they hold, and holds a rotation that would revoke the only key a
// consumer has (Gate). Nothing here can undo or delay a store: notifications run after it,
// on their own goroutine, and their outcome is a metric, an audit line and an alert.
package receivers

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatord/rotatord/internal/backoff"

	"go.uber.org/zap"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/durable"
	"github.com/rotatord/rotatord/internal/metrics"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// HeldFile is where the daemon writes which rotations it holds, under state_dir, for
// `rotatord status`.
const HeldFile = "held.json"

// Options configure a Manager.
type Options struct {
	Logger  *zap.Logger
	Metrics *metrics.Metrics
	// Lookup is the configured destination of an id (the config in force).
	Lookup func(destinationID string) (config.Destination, bool)
	// Sink reads a stored record for a consumer that takes the secret on stdin.
	Sink interface {
		Get(ctx context.Context, path string) (sink.Record, error)
	}
	// Acks reads a consumer's acknowledgement beside the secret at path (adoption ack).
	Acks Acks
	// Deliveries, when set, reads a destination's delivery log, newest first (the delivery
	// watch), through the API key's rate budget, and says how the read went; WatchEvery is
	// how often (api.delivery_watch_interval).
	Deliveries func(ctx context.Context, destinationID string) ([]webhookco.Delivery, rotate.Outcome)
	WatchEvery time.Duration
	// ReadKeyFile reads a notify key file (secret.ReadPrivateFile).
	ReadKeyFile func(path string) ([]byte, error)
	// StateDir, when set, gets HeldFile.
	StateDir string
	// Retry is the backoff between a notification's attempts.
	Retry backoff.Policy
	// Attempts bounds a notification's attempts (default 5).
	Attempts int
	Now      func() time.Time
}

// Manager notifies consumers and gates rotations. Its methods are safe for concurrent use.
type Manager struct {
	opts Options
	log  *zap.Logger

	mu      sync.Mutex
	batches map[string]*batch // waiting to be sent, by consumer name
	sending map[string]bool   // a notification of the consumer is on its way
	kick    chan struct{}
	// behind: consumer → destination id → what it held when last asked.
	behind map[string]map[string]Hold
	// seen: consumer → destination id → the keys it held when last asked.
	seen map[string]map[string][]string
	// watch: destination id → its last rotation, while its deliveries are watched.
	watch    map[string]*watched
	watchOff atomic.Bool // the key may not read the delivery log
	watching atomic.Bool // a pass of the watch is running
}

// Hold is a rotation held for a consumer.
type Hold struct {
	Destination string    `json:"destination"`
	Consumer    string    `json:"consumer"`
	StoredKeyID string    `json:"stored_key_id"`
	Holds       []string  `json:"holds_key_ids"`
	Since       time.Time `json:"since"`
	Why         string    `json:"why,omitempty"`
}

type batch struct {
	consumer config.Consumer
	events   map[string]rotate.Stored // by destination id: the newest store of each
	first    time.Time
	last     time.Time
}

// New returns a Manager; Run sends its notifications.
func New(opts Options) *Manager {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Retry.Initial <= 0 {
		opts.Retry = backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second}
	}
	return &Manager{opts: opts, log: opts.Logger.Named("receivers"), batches: map[string]*batch{}, sending: map[string]bool{}, kick: make(chan struct{}, 1),
		behind: map[string]map[string]Hold{}, seen: map[string]map[string][]string{}, watch: map[string]*watched{}}
}

// Stored is the rotator's OnStored hook: each consumer of the destination gets the store
// in its next notification, and a revocation is said out loud.
func (m *Manager) Stored(ev rotate.Stored) {
	d, ok := m.opts.Lookup(ev.DestinationID)
	if !ok {
		return
	}
	if ev.Revoked != "" {
		m.revoked(d, ev)
	}
	m.noteRotation(ev)
	for _, c := range d.Consumers {
		m.enqueue(c, ev)
	}
}

// revoked counts and logs the key a rotation revoked, and whether a consumer was last
// seen holding it and nothing newer: that consumer was cut off.
func (m *Manager) revoked(d config.Destination, ev rotate.Stored) {
	m.mu.Lock()
	var cut []string
	for _, c := range d.Consumers {
		keys := m.seen[c.Name][d.ID]
		if slices.Contains(keys, ev.Revoked) && !slices.Contains(keys, ev.KeyID) && len(keys) == 1 {
			cut = append(cut, c.Name)
		}
	}
	m.mu.Unlock()
	held := len(cut) > 0
	m.opts.Metrics.KeysRevoked.WithLabelValues(fmt.Sprint(held)).Inc()
	// The rotation's audit line names the revoked key (revoked_key_id); a cut-off is said
	// again, as an error naming the consumers.
	if held {
		m.log.Error("key revoked while a consumer still held only it: that consumer rejects deliveries until it loads the new key",
			zap.String("destination", d.Name), zap.String("revoked_key_id", ev.Revoked), zap.String("key_id", ev.KeyID), zap.Strings("consumers", cut))
	}
}

func (m *Manager) enqueue(c config.Consumer, ev rotate.Stored) {
	if len(c.Notify.Exec) == 0 && c.Notify.URL == "" {
		return
	}
	now := m.opts.Now()
	m.mu.Lock()
	b, ok := m.batches[c.Name]
	if !ok {
		b = &batch{consumer: c, events: map[string]rotate.Stored{}, first: now}
		m.batches[c.Name] = b
	}
	b.events[ev.DestinationID] = ev
	b.last = now
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// due reports whether b should be sent at now: quiet for the debounce, or waited six times it.
func (b *batch) due(now time.Time) bool { return !now.Before(b.dueAt()) }

// dueAt is when b is due: the debounce after its last store, at the latest six times it
// after its first.
func (b *batch) dueAt() time.Time {
	deb := b.consumer.Notify.EffectiveDebounce()
	quiet, latest := b.last.Add(deb), b.first.Add(6*deb)
	if latest.Before(quiet) {
		return latest
	}
	return quiet
}

// Run sends the notifications that are due until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	var watchTick <-chan time.Time
	if m.opts.Deliveries != nil && m.opts.WatchEvery > 0 {
		wt := time.NewTicker(m.opts.WatchEvery)
		defer wt.Stop()
		watchTick = wt.C
	}
	// A timer for the next batch due, none while nothing waits: idle, Run costs nothing.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			m.stopping()
			return nil
		case <-timer.C:
		case <-m.kick:
		case <-watchTick:
			// One pass at a time: a pass the rate budget paces may outlast the interval.
			if m.watching.CompareAndSwap(false, true) {
				wg.Add(1)
				go func() { defer wg.Done(); defer m.watching.Store(false); m.watchOnce(ctx) }()
			}
			continue
		}
		if next, ok := m.startDue(ctx, &wg); ok {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// startDue starts the notifications that are due, one per consumer at a time, and returns
// when the next waiting one is due (ok false: none waits).
func (m *Manager) startDue(ctx context.Context, wg *sync.WaitGroup) (next time.Time, ok bool) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, b := range m.batches {
		// One notification of a consumer at a time; stores meanwhile wait for the next.
		if m.sending[name] {
			continue
		}
		if !b.due(now) {
			if at := b.dueAt(); !ok || at.Before(next) {
				next, ok = at, true
			}
			continue
		}
		delete(m.batches, name)
		m.sending[name] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.send(ctx, b)
			m.mu.Lock()
			delete(m.sending, name)
			m.mu.Unlock()
			select {
			case m.kick <- struct{}{}:
			default:
			}
		}()
	}
	return next, ok
}

// stopping says how many stores were not notified at shutdown.
func (m *Manager) stopping() {
	m.mu.Lock()
	n := 0
	for _, b := range m.batches {
		n += len(b.events)
	}
	m.mu.Unlock()
	if n > 0 {
		m.log.Warn("stopping with notifications not sent; the consumers learn of these stores at their next notification or reload", zap.Int("stores", n))
	}
}

// events returns b's stores, by destination name.
func (b *batch) sorted() []rotate.Stored {
	out := make([]rotate.Stored, 0, len(b.events))
	for _, e := range b.events {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// send delivers one notification, retrying with backoff.
func (m *Manager) send(ctx context.Context, b *batch) {
	c := b.consumer
	events := b.sorted()
	var err error
	step := 0
	attempt := 1
	for ; attempt <= m.opts.Attempts; attempt++ {
		if len(c.Notify.Exec) > 0 {
			err = m.execNotify(ctx, c, events)
		} else {
			err = m.postNotify(ctx, c, events)
		}
		if err == nil || ctx.Err() != nil || attempt == m.opts.Attempts {
			break
		}
		wait := m.opts.Retry.Next(&step, rand.Float64)
		m.log.Warn("consumer notification failed; retrying", zap.String("consumer", c.Name), zap.Int("attempt", attempt), zap.Duration("retrying_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = e.Destination
	}
	if err != nil {
		m.opts.Metrics.ConsumerNotifications.WithLabelValues(c.Name, "failed").Inc()
		m.log.Error("consumer not notified of new keys", zap.String("consumer", c.Name), zap.Strings("destinations", names), zap.Int("attempts", attempt), zap.Error(err))
		return
	}
	m.opts.Metrics.ConsumerNotifications.WithLabelValues(c.Name, "delivered").Inc()
	m.log.Info("consumer notified of new keys", zap.String("consumer", c.Name), zap.Strings("destinations", names), zap.Int("attempts", attempt))
	m.askAfterNotify(ctx, c, events)
}

// askAfterNotify asks a consumer with adoption, once notified, whether it holds the keys it
// was told of: rotatord_consumer_behind and a hold follow it between rotations, not only at
// the next one.
func (m *Manager) askAfterNotify(ctx context.Context, c config.Consumer, events []rotate.Stored) {
	if c.Adoption == nil {
		return
	}
	for _, e := range events {
		d, ok := m.opts.Lookup(e.DestinationID)
		if !ok {
			continue
		}
		keys, err := m.Adopted(ctx, c, d)
		if err != nil {
			continue
		}
		m.mu.Lock()
		if m.seen[c.Name] == nil {
			m.seen[c.Name] = map[string][]string{}
		}
		m.seen[c.Name][d.ID] = keys
		m.mu.Unlock()
		if slices.Contains(keys, e.KeyID) {
			m.caughtUp(c.Name, d)
		}
	}
}

// Flush sends every waiting notification now, without waiting for its debounce, and
// returns once they are sent (or ctx is done): `rotatord rotate` before it exits.
func (m *Manager) Flush(ctx context.Context) {
	m.mu.Lock()
	pending := m.batches
	m.batches = map[string]*batch{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range pending {
		wg.Add(1)
		go func() { defer wg.Done(); m.send(ctx, b) }()
	}
	wg.Wait()
}

// Holds returns the rotations held now.
func (m *Manager) Holds() []Hold {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Hold
	for _, ds := range m.behind {
		for _, h := range ds {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Destination < out[j].Destination || out[i].Destination == out[j].Destination && out[i].Consumer < out[j].Consumer
	})
	return out
}

// writeHolds keeps HeldFile current; m.mu is not held.
func (m *Manager) writeHolds() {
	if m.opts.StateDir == "" {
		return
	}
	b, _ := json.MarshalIndent(m.Holds(), "", "  ")
	if err := durable.WriteFile(filepath.Join(m.opts.StateDir, HeldFile), append(b, '\n')); err != nil {
		m.log.Warn("could not write the held rotations for rotatord status", zap.Error(err))
	}
}

// ReadHolds reads what a daemon on this host holds (status); nil when nothing is known.
func ReadHolds(stateDir string) []Hold {
	b, err := os.ReadFile(filepath.Join(stateDir, HeldFile))
	if err != nil || len(b) > 16<<20 {
		return nil
	}
	var out []Hold
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// Describe says a hold in one line.
func (h Hold) Describe() string {
	holds := "no key"
	if len(h.Holds) > 0 {
		holds = strings.Join(h.Holds, ", ")
	}
	// A hold seen by one question (status --online), with no daemon's record of when it
	// began, has no Since.
	when := "behind since " + h.Since.UTC().Format(time.RFC3339)
	if h.Since.IsZero() {
		when = "asked just now"
	}
	if h.Why != "" {
		return fmt.Sprintf("consumer %s could not say which key it holds (%s; %s)", h.Consumer, h.Why, when)
	}
	return fmt.Sprintf("consumer %s holds %s, not the stored key %s (%s)", h.Consumer, holds, h.StoredKeyID, when)
}
