package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/receivers"
)

// TestConsumersBehind: online, status asks each consumer with adoption and names those
// that do not hold the stored key, or cannot say; a hold this host's daemon recorded for the
// same stored key says since when; nothing stored, nothing to revoke, no question.
func TestConsumersBehind(t *testing.T) {
	const stored, older = "0193a5b2-0000-7000-8000-000000000002", "0193a5b2-0000-7000-8000-000000000001"
	echo := func(keys ...string) *config.Adoption {
		return &config.Adoption{Exec: append([]string{"/bin/echo"}, keys...), Timeout: 5 * time.Second}
	}
	d := config.Destination{ID: "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", Name: "billing-prod", VaultPath: "webhookco/billing-prod", Timing: config.Timing{Consumers: []config.Consumer{
		{Name: "current", Adoption: echo(older, stored)},
		{Name: "behind", Adoption: echo(older)},
		{Name: "silent", Adoption: &config.Adoption{Exec: []string{"/bin/false"}, Timeout: 5 * time.Second}},
		{Name: "acks", Adoption: &config.Adoption{Ack: true}},
		{Name: "not-asked"},
	}}}
	since := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	local := []receivers.Hold{
		{Destination: "billing-prod", Consumer: "behind", StoredKeyID: stored, Since: since},
		{Destination: "billing-prod", Consumer: "silent", StoredKeyID: older, Since: since}, // another stored key: not this hold
	}
	got := consumersBehind(context.Background(), d, stored, nil, local)
	want := []string{
		"consumer behind holds " + older + ", not the stored key " + stored + " (behind since 2026-12-01T09:00:00Z)",
		"consumer silent could not say which key it holds (/bin/false: exit status 1; asked just now)",
		"consumer acks could not say which key it holds (acknowledgements cannot be read from this sink; asked just now)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("consumersBehind:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := consumersBehind(context.Background(), d, "", nil, local); got != nil {
		t.Errorf("nothing stored: %q, want no question asked", got)
	}
}
