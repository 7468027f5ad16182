package config

import (
	"strings"
	"testing"
)

// TestExpandAsAReplacer: Expand (by hand, for speed) fills a template exactly as
// strings.Replacer would.
func TestExpandAsAReplacer(t *testing.T) {
	id, label, host, name := "0193A5B2-7C4D-7E8F-9A0B-1C2D3E4F5A6B", "shop-eu", "a.hooks.example.com", "shop"
	for _, tmpl := range []string{"", "plain", "{id}", "{label}-{host}/{name}", "{{id}}", "{unknown}/{id", "}{id}{", "x{label}{label}y", "{nam{name}e}", "{"} {
		want := strings.NewReplacer("{id}", strings.ToLower(id), "{label}", label, "{host}", host, "{name}", name).Replace(tmpl)
		if got := Expand(tmpl, id, label, host, name); got != want {
			t.Errorf("Expand(%q) = %q, want %q", tmpl, got, want)
		}
	}
}
