package config

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// fleetConfig is a config of n destinations, one flow mapping each (as a generated fleet
// config looks).
func fleetConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("state_dir: /tmp/x\napi:\n  token_file: /tmp/k\nvault:\n  address: http://127.0.0.1:8200\n  token_file: /tmp/t\n  kv: {mount: kv, version: 2}\ndefaults: {schedule: \"@daily\", first_rotation: on_schedule}\ndestinations:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {id: %08x-0000-4000-8000-%012x, name: d%05d, vault_path: fleet/d%05d}\n", i, i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkParse100k: a config of 100,000 destinations, read and validated (the start of a
// fleet of that size begins with it, and so does each SIGHUP reload). "chunked" is the
// config as written; "whole" is the same config with a document marker (`---`) first,
// which makes Parse read the document whole, as it did before the destinations were
// parsed per chunk. peak-heap-MB is the most the heap held during a parse (dead objects not
// yet collected included: what the process's RSS follows).
func BenchmarkParse100k(b *testing.B) {
	for _, form := range []struct{ name, prefix string }{{"chunked", ""}, {"whole", "---\n"}} {
		b.Run(form.name, func(b *testing.B) {
			data := append([]byte(form.prefix), fleetConfig(100000)...)
			b.SetBytes(int64(len(data)))
			runtime.GC()
			peak := watchHeap()
			for b.Loop() {
				if _, err := Parse(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(peak()/(1<<20), "peak-heap-MB")
		})
	}
}

// watchHeap samples the heap's objects every 100 µs until the returned function is called,
// which returns the most seen.
func watchHeap() func() float64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	stop, done := make(chan struct{}), make(chan float64)
	go func() {
		most := 0.0
		for {
			metrics.Read(sample)
			most = max(most, float64(sample[0].Value.Uint64()))
			select {
			case <-stop:
				done <- most
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	return func() float64 { close(stop); return <-done }
}

// TestLargeParseRestoresTheCollector: a large config is parsed with the collector at
// parseGC, and the operator's setting is back afterwards, whether it was looser (the
// default) or tighter (then it is left alone throughout).
func TestLargeParseRestoresTheCollector(t *testing.T) {
	data := fleetConfig(20000)
	if len(data) < bigConfig {
		t.Fatalf("the test's config is %d bytes, under bigConfig", len(data))
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, before := range []int{100, 20, -1} {
		debug.SetGCPercent(before)
		if _, err := Parse(data); err != nil {
			t.Fatal(err)
		}
		if after := debug.SetGCPercent(before); after != before {
			t.Errorf("GOGC %d before a large parse, %d after", before, after)
		}
	}
}
