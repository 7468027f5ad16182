package cli

import (
	"strings"
	"testing"
)

// TestUsageNamesEveryFlag: the top-level usage is generated from each command's own flags,
// so no flag is missing from it (the hand-written one missed status --at, plan --from,
// reload --timeout and three of demo's), and every command that takes arguments names them.
func TestUsageNamesEveryFlag(t *testing.T) {
	u := usage()
	for _, want := range []string{
		"rotatord status [--at TIME]", "[--from TIME]", "rotatord reload [--config PATH] [--timeout D] PID",
		"rotatord demo [--duration D] [--kv-mount MOUNT] [--metrics-listen ADDR] [--rate-limit-share F]",
		"rotatord spool list [--config PATH]", "rotatord report verify [--config PATH] [--key KEY] FILE",
		"[--force] [--wait D] NAME...", "rotatord verify [--at TIME] [--config PATH] [--delivery FILE] [--tolerance D] NAME",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %q:\n%s", want, u)
		}
	}
	for _, c := range commands {
		if c.run == nil {
			continue
		}
		flags := commandFlags(c)
		if len(flags) == 0 {
			t.Errorf("%s: no flags read from its function", c.name)
		}
		for _, f := range flags {
			if !strings.Contains(u, "rotatord "+c.name+" ") || !strings.Contains(u, "["+f+"]") {
				t.Errorf("usage lacks %s's %s", c.name, f)
			}
		}
	}
}
