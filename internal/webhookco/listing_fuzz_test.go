package webhookco_test

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/rotatord/rotatord/internal/webhookco"
)

// FuzzDecodeDestinations: the listing read in one pass gives what reading each item's bytes
// and then decoding them gave (the reader before session 16, kept here as the oracle): the
// same destinations, the same items skipped for the same reasons, and an error for the
// same documents.
func FuzzDecodeDestinations(f *testing.F) {
	const a, b = "0193a5b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b", "0193A5B2-7C4D-7E8F-9A0B-1C2D3E4F5A6C"
	f.Add(`{"items":[{"id":"` + a + `","status":"active","createdAt":"2026-12-01T03:00:00Z","label":null}]}`)
	f.Add(`{"items":[null,"x",1,[],{"id":"` + b + `","status":"revoked","createdAt":"2026-12-01T03:00:00Z","label":"l","disabledAt":"2026-12-02T03:00:00Z"}]}`)
	f.Add(`{"items":[{"id":5},{"id":"` + a + `","status":"active","createdAt":"yesterday"},{"id":"` + a + `","status":"active","createdAt":"2026-12-01T03:00:00Z","label":{"x":1}}]}`)
	f.Add(`{"items":[{"id":"` + a + `","status":"paused"},{"id":"` + a + `","status":"active","createdAt":"2026-12-01T03:00:00Z"},{"id":"` + a + `","status":"active","createdAt":"2026-12-01T03:00:00Z"}]}`)
	f.Add(`{"items":[{"id":"x"},{"id":}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		got, err := webhookco.DecodeDestinations(strings.NewReader(body))
		want, wantErr := decodeEachItemTwice(body)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("error %v, the oracle's %v", err, wantErr)
		}
		for i, s := range got.Skipped {
			got.Skipped[i] = reasonClass(s)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("listing\n%+v\nthe oracle's\n%+v", got, want)
		}
	})
}

// decodeEachItemTwice is the listing's former reader: each item's bytes first, then decoded.
func decodeEachItemTwice(body string) (webhookco.Listing, error) {
	dec := json.NewDecoder(strings.NewReader(body))
	delim := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil || tok != want {
			return fmt.Errorf("want %v", want)
		}
		return nil
	}
	if err := delim('{'); err != nil {
		return webhookco.Listing{}, err
	}
	var out webhookco.Listing
	seenItems, seen := false, map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if key, _ := tok.(string); err != nil || key != "items" || seenItems {
			return webhookco.Listing{}, fmt.Errorf("not one items array")
		}
		seenItems = true
		if err := delim('['); err != nil {
			return webhookco.Listing{}, err
		}
		var raw json.RawMessage
		for i := 0; dec.More(); i++ {
			if err := dec.Decode(&raw); err != nil {
				return webhookco.Listing{}, err
			}
			var d webhookco.ReplayDestination
			why := ""
			switch err := json.Unmarshal(raw, &d); {
			case len(raw) > webhookco.MaxListingItemBytes:
				why = fmt.Sprintf("%d bytes, more than %d", len(raw), webhookco.MaxListingItemBytes)
			case raw[0] != '{':
				why = "not an object"
			case err != nil:
				why = "not a destination"
			case !webhookco.IsUUID(d.ID):
				why = "id "
			case d.Status != "active" && d.Status != "revoked":
				why = "status "
			}
			d.ID = strings.ToLower(d.ID)
			if why == "" && seen[d.ID] {
				why = "a second item with id " + d.ID
			}
			if why != "" {
				out.Skipped = append(out.Skipped, fmt.Sprintf("items[%d]: %s", i, why))
				continue
			}
			seen[d.ID] = true
			out.Destinations = append(out.Destinations, d)
		}
		if err := delim(']'); err != nil {
			return webhookco.Listing{}, err
		}
	}
	if err := delim('}'); err != nil || !seenItems {
		return webhookco.Listing{}, fmt.Errorf("want }")
	}
	if _, err := dec.Token(); err != io.EOF {
		return webhookco.Listing{}, fmt.Errorf("trailing data")
	}
	if out.Destinations == nil {
		out.Destinations = []webhookco.ReplayDestination{}
	}
	return out, nil
}

// reasonClass keeps of a skipped item's reason what the oracle words: the quoted id or
// status, and the decoder's words, are left out.
func reasonClass(s string) string {
	at, reason, _ := strings.Cut(s, ": ")
	for _, class := range []string{"id ", "status ", "not a destination"} {
		if strings.HasPrefix(reason, class) {
			reason = class
		}
	}
	return at + ": " + reason
}
