package app

import (
	"context"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/secret"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// AheadListing is the account's listing begun while the config's destinations are still
// being parsed: `rotatord run` with a large config begins it as soon as the api section
// is known (config.LoadFileAhead), and the start takes its answer instead of listing again.
// At 100,000 destinations the parse and the listing each take a second or more, of
// different work (this process's CPU, webhook.co's answer), so the start waits for the
// longer of the two instead of both in turn.
//
// The answer counts only for the config it was begun for: the start takes it when the
// config in force has the same api section and key, through the rotator's rate budget like
// any call (a 429 in it holds back every caller), and its request is counted in the API
// metrics then. Otherwise, or when the config is refused, it is cancelled and forgotten.
type AheadListing struct {
	api    config.API
	key    secret.Value
	cancel context.CancelFunc
	done   chan struct{}
	began  time.Time // when it was begun, for the start's steps

	listing webhookco.Listing // set before done closes
	err     error

	mu       sync.Mutex
	observed [][2]string // its request's (operation, code), until the metrics exist
}

// ListAhead begins the listing with api's key and client settings. It returns nil when the
// key cannot be read or the client not built: the start reads the key again and says why.
func ListAhead(ctx context.Context, api config.API, getenv func(string) string, version string) *AheadListing {
	key, err := api.LoadAPIKey(getenv)
	if err != nil {
		return nil
	}
	a := &AheadListing{api: api, key: key, done: make(chan struct{}), began: time.Now()}
	client, err := apiClient(api, 0, key, version, func(op, code string) {
		a.mu.Lock()
		a.observed = append(a.observed, [2]string{op, code})
		a.mu.Unlock()
	})
	if err != nil {
		return nil
	}
	ctx, a.cancel = context.WithCancel(ctx)
	go func() {
		defer close(a.done)
		ctx, cancel := context.WithTimeout(ctx, api.Timeout)
		defer cancel()
		a.listing, a.err = client.ListDestinations(ctx)
		client.CloseIdleConnections()
	}()
	return a
}

// Cancel stops the listing and lets its answer go (nil: nothing to stop).
func (a *AheadListing) Cancel() {
	if a != nil {
		a.cancel()
	}
}

// begunFor reports whether a was begun with the api section and key of the config in force.
func (a *AheadListing) begunFor(api config.API, key secret.Value) bool {
	return a.api == api && a.key.Equal(key)
}

// wait returns the listing's answer once it has come, and hands its request to observe
// (the API metrics).
func (a *AheadListing) wait(ctx context.Context, observe func(op, code string)) (webhookco.Listing, error) {
	select {
	case <-a.done:
	case <-ctx.Done():
		a.cancel()
		<-a.done
	}
	a.mu.Lock()
	for _, o := range a.observed {
		observe(o[0], o[1])
	}
	a.observed = nil
	a.mu.Unlock()
	listing := a.listing
	a.listing = webhookco.Listing{}
	return listing, a.err
}
