package account

import (
	"fmt"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// BenchmarkResolveDiscovery100k: an account of 100,000 destinations created in the same
// second (ties settled by id), one rule selecting them all, as a daemon's start resolves it.
func BenchmarkResolveDiscovery100k(b *testing.B) {
	cfg, err := config.Parse([]byte("api: {token_env: K}\ndiscovery:\n  rules:\n    - {label: \"*\", name: \"d-{id}\", vault_path: \"p/{id}\"}\n"))
	if err != nil {
		b.Fatal(err)
	}
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	listing := make([]webhookco.ReplayDestination, 100000)
	for i := range listing {
		label := fmt.Sprintf("l%d", i)
		// Ids not in the listing's order, as random UUIDs are.
		listing[i] = webhookco.ReplayDestination{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", (i*7919)%100000, i), Label: &label,
			URL: "https://receiver.example/" + label, Status: "active", CreatedAt: created}
	}
	for b.Loop() {
		if r := Resolve(cfg, listing); len(r.Destinations) != len(listing) {
			b.Fatalf("%d destinations in force, want %d", len(r.Destinations), len(listing))
		}
	}
}

// BenchmarkResolveConfigured100k: 100,000 destinations in the config, each in the account's
// listing (the daemon counts the account), as a start or a SIGHUP reload resolves them.
func BenchmarkResolveConfigured100k(b *testing.B) {
	var text []byte
	text = append(text, "api: {token_env: K}\ndefaults: {schedule: \"@daily\"}\ndestinations:\n"...)
	listing := make([]webhookco.ReplayDestination, 100000)
	for i := range listing {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		text = fmt.Appendf(text, "  - {id: %s, name: d%05d, vault_path: fleet/d%05d}\n", id, i, i)
		listing[i] = webhookco.ReplayDestination{ID: id, URL: fmt.Sprintf("https://receiver.example/%d", i), Status: "active"}
	}
	cfg, err := config.Parse(text)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := Resolve(cfg, listing); len(r.Destinations) != len(listing) || len(r.Items) != len(listing) {
			b.Fatalf("%d destinations in force and %d items, want %d", len(r.Destinations), len(r.Items), len(listing))
		}
	}
}
