package webhookco_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/rotatord/rotatord/internal/webhookco"
)

// BenchmarkDecodeListing100k decodes the listing of a 100,000-destination account, as the
// start of a daemon with one large account (or one rule over it) reads it.
func BenchmarkDecodeListing100k(b *testing.B) {
	var body bytes.Buffer
	body.WriteString(`{"items":[`)
	for i := range 100_000 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"id":"0193a5b2-7c4d-7e8f-9a0b-%012x","orgId":"00000000-0000-4000-8000-00000000d0e5","url":"https://d%d.hooks.example.com/hook","label":"destination-%d","status":"active","createdAt":"2026-01-01T00:00:00.000Z","lastValidatedAt":null,"ordered":false,"disabledAt":null}`, i, i, i)
	}
	body.WriteString(`]}`)
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		l, err := webhookco.DecodeDestinations(bytes.NewReader(body.Bytes()))
		if err != nil || len(l.Destinations) != 100_000 {
			b.Fatal(len(l.Destinations), err)
		}
	}
}
