package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// plainText writes what a command prints with every character that would act on a terminal
// instead of showing itself escaped: C0 controls but tab and newline, DEL, C1 controls,
// Unicode format characters (bidi overrides, zero-width ones) and bytes that are not UTF-8.
// Labels and URLs come from the provider's listing, which anyone in the organisation can
// write to; escaped, a label cannot set the window title, clear the screen or reorder a line.
type plainText struct{ w io.Writer }

// Write implements io.Writer; it reports len(p) when the escaped text was written.
func (t plainText) Write(p []byte) (int, error) {
	if !needsEscape(p) {
		return t.w.Write(p)
	}
	n := len(p)
	var b strings.Builder
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, p[0])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(p[:size])
		}
		p = p[size:]
	}
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return n, nil
}

// needsEscape reports whether p holds anything plainText changes (the common case is no).
func needsEscape(p []byte) bool {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return true
		}
		i += size
	}
	return false
}
