package bintest

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// WaitFor polls ok every 100 ms until it holds, or fails the test after limit.
func WaitFor(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Buffer is an io.Writer safe for a daemon's goroutines or a child's output, read while written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *Buffer) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
