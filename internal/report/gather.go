package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatord/rotatord/internal/sink"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Target is a destination the report covers, before anything is read about it.
type Target struct {
	Name, ID, Path, Source string
	Policy                 Policy
	// CreatedAt is the provider's createdAt from the listing (zero: not listed).
	CreatedAt time.Time
	// DeletedAt is when rotatord saw it gone from the provider's list (zero: not seen).
	DeletedAt time.Time
}

// Sources are where Gather reads: the provider's key lists (through Pace: the shared rate
// budget and its 429s), the sink, and with KV v2 its metadata.
type Sources struct {
	Keys func(ctx context.Context, destinationID string) ([]webhookco.SigningKey, error)
	Pace func(ctx context.Context, what string, call func(context.Context) error) error
	Sink interface {
		Get(ctx context.Context, path string) (sink.Record, error)
		Location(path string) string
	}
	// KV, when set, reads the KV v2 metadata of a path (nil, nil for KV v1).
	KV func(ctx context.Context, path string) (*sink.KVMetadata, error)
	// Concurrency bounds the destinations read at once (default 8).
	Concurrency int
	// Progress, when set, gets a line every few seconds while gathering takes long.
	Progress io.Writer
	// Every is how often progress is said (default 5 s).
	Every time.Duration
}

// Gather reads what each target's sources say and hands each to b as it is read. A source
// that cannot answer is recorded in the subject (a finding), never left out.
func Gather(ctx context.Context, src Sources, targets []Target, b *Builder) {
	n := src.Concurrency
	if n <= 0 {
		n = 8
	}
	var done atomic.Int64
	stop := src.progress(&done, len(targets))
	defer stop()
	var wg sync.WaitGroup
	slots := make(chan struct{}, n)
	for i, t := range targets {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			b.Add(i, src.one(ctx, t))
			done.Add(1)
		}()
	}
	wg.Wait()
}

func (src Sources) progress(done *atomic.Int64, total int) func() {
	if src.Progress == nil {
		return func() {}
	}
	every := src.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	start := time.Now()
	tick := time.NewTicker(every)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				fmt.Fprintf(src.Progress, "report: %d of %d destinations read (%s)\n", done.Load(), total, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { tick.Stop(); close(quit) }
}

func (src Sources) one(ctx context.Context, t Target) Subject {
	s := Subject{Name: t.Name, ID: t.ID, Location: src.Sink.Location(t.Path), Source: t.Source, Policy: t.Policy,
		CreatedAt: t.CreatedAt, DeletedAt: t.DeletedAt}
	err := src.Pace(ctx, "the key listing of "+t.Name, func(ctx context.Context) (err error) {
		s.Keys, err = src.Keys(ctx, t.ID)
		return err
	})
	var ae *webhookco.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == 404:
		s.Gone = true
	case err != nil:
		s.KeysErr = err.Error()
	}
	rec, err := src.Sink.Get(ctx, t.Path)
	switch {
	case err == nil:
		s.Stored = &rec
	case errors.Is(err, sink.ErrNotFound):
	default:
		s.StoredErr = err.Error()
	}
	if src.KV != nil && s.Stored != nil {
		md, err := src.KV(ctx, t.Path)
		switch {
		case err != nil:
			s.StoredErr = "KV v2 metadata: " + err.Error()
		case md != nil:
			s.KV = md
			if at, err := time.Parse(time.RFC3339, md.Custom["deleted_at_provider"]); err == nil && s.DeletedAt.IsZero() {
				s.DeletedAt = at
			}
		}
	}
	return s
}
