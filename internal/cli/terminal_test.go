package cli

import (
	"strings"
	"testing"
)

// TestPlainText: what plainText escapes, and that it reports every byte written.
func TestPlainText(t *testing.T) {
	for in, want := range map[string]string{
		"ok\tline\n":        "ok\tline\n",
		"a\x1b[2Jb":         `a\x1b[2Jb`,
		"bell\x07 del\x7f":  `bell\x07 del\x7f`,
		"c1 \u009b31m":      `c1 \u009b31m`,
		"bidi \u202eabc":    `bidi \u202eabc`,
		"bad \xff utf8":     `bad \xff utf8`,
		"Grüße, 東京 ✓ label": "Grüße, 東京 ✓ label",
	} {
		var b strings.Builder
		n, err := plainText{&b}.Write([]byte(in))
		if err != nil || n != len(in) || b.String() != want {
			t.Errorf("Write(%q) = %d, %v, wrote %q; want %d and %q", in, n, err, b.String(), len(in), want)
		}
	}
}
