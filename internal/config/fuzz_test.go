package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse: no input makes Parse panic, and a config it accepts, written back as YAML,
// parses again to the same config (what Parse decides survives the round trip: defaults
// filled, ids lowercased, a bare 0 patched for a duration). Seeds: the example config and
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
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("an accepted config cannot be written back: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("an accepted config, written back, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(cfg, again) {
			a, b := reflect.ValueOf(*cfg), reflect.ValueOf(*again)
			for i := 0; i < a.NumField(); i++ {
				if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
					t.Errorf("%s parses differently once written back:\n%#v\n%#v", a.Type().Field(i).Name, a.Field(i).Interface(), b.Field(i).Interface())
				}
			}
		}
	})
}
