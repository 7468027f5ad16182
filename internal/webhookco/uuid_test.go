package webhookco_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/rotatord/rotatord/internal/webhookco"
)

// uuidOracle is the API's pattern as a regular expression: what IsUUID must agree with.
var uuidOracle = regexp.MustCompile(webhookco.UUIDPattern)

var uuidCases = []string{
	"0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
	"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
	"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "00000000-0000-0000-0000-000000000001",
	"0f8fad5b-d9cb-069f-a165-70867728950e", "0f8fad5b-d9cb-969f-a165-70867728950e",
	"0f8fad5b-d9cb-869f-b165-70867728950e", "0f8fad5b-d9cb-169f-c165-70867728950e",
	"0f8fad5b-d9cb-469f-A165-70867728950e", "0f8fad5b-d9cb-469f-7165-70867728950e",
	"0f8fad5bd9cb-469f-a165-70867728950e-", "0f8fad5b-d9cb-469f-a165-70867728950",
	"0f8fad5b-d9cb-469f-a165-70867728950e\n", " 0f8fad5b-d9cb-469f-a165-70867728950e",
	"0f8fad5g-d9cb-469f-a165-70867728950e", "0f8fad5b_d9cb-469f-a165-70867728950e",
	"0f8fad5b-d9cb-469f-a165-70867728950e0", "", "whsec_x", strings.Repeat("-", 36),
	"{0f8fad5b-d9cb-469f-a165-70867728950e}", "0f8fad5b-d9cb-469f-a165-70867728950é",
}

// TestIsUUIDIsThePattern: IsUUID answers as the API's pattern does, for ids of every shape
// near the edge (each version and variant digit, case, length, separators, nil and max).
func TestIsUUIDIsThePattern(t *testing.T) {
	for _, s := range uuidCases {
		if got, want := webhookco.IsUUID(s), uuidOracle.MatchString(s); got != want {
			t.Errorf("IsUUID(%q) = %v, the pattern says %v", s, got, want)
		}
	}
	if !webhookco.IsUUID("0f8fad5b-d9cb-469f-a165-70867728950e") || webhookco.IsUUID("0f8fad5b-d9cb-469f-7165-70867728950e") {
		t.Error("IsUUID accepts or refuses the wrong one of a valid id and a wrong variant")
	}
}

// FuzzIsUUID compares IsUUID with the pattern on any string.
func FuzzIsUUID(f *testing.F) {
	for _, s := range uuidCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := webhookco.IsUUID(s), uuidOracle.MatchString(s); got != want {
			t.Errorf("IsUUID(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}

// BenchmarkIsUUID: IsUUID beside the regular expression it replaced, in one run.
func BenchmarkIsUUID(b *testing.B) {
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			webhookco.IsUUID(id)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			uuidOracle.MatchString(id)
		}
	})
}
