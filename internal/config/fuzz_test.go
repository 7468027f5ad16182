package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic, and a config it accepts parses again the same way
// (a bare 0 patched for a duration stays a valid config). Seeds: the example config and
// every invalid config of testdata/.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../config.example.yaml"); err == nil {
		f.Add(b)
	}
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("scheduler:\n  drift_check_interval: 0\napi:\n  token_env: K\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("an accepted config no longer validates: %v", err)
		}
	})
}
