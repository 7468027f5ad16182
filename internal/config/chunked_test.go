package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const chunkHead = "state_dir: /tmp/x\napi:\n  token_file: /tmp/k\nvault:\n  address: http://127.0.0.1:8200\n  token_file: /tmp/t\n"

// TestChunkedDecodeMatchesWhole: where the destinations can be parsed per chunk, the
// config decoded is the one a whole parse gives, at every chunk size, whatever the
// entries look like.
func TestChunkedDecodeMatchesWhole(t *testing.T) {
	cases := map[string]string{
		"flow entries": chunkHead + "destinations:\n" +
			"  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70, name: a, vault_path: w/a}\n" +
			"  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b, vault_path: w/b, window: 0, enabled: false}\n" +
			"  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e72, name: c, path: w/c, schedule: \"@daily\"}\n",
		"block entries at the key's column, comments, blank lines, keys after": chunkHead +
			"# the fleet\ndestinations: # every one\n" +
			"- id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70\n  name: a\n  vault_path: w/a\n  consumers:\n    - {name: app, notify: {url: \"https://a.example/keys\", timeout: 0}}\n\n" +
			"# between\n" +
			"- id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71\n  # inside\n  name: b\n  vault_path: w/b\n  max_age: 0\n  jitter: 5m\n" +
			"-\n  id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e72\n  name: c\n  vault_path: w/c\n" +
			"metrics:\n  listen: 127.0.0.1:9999\n",
		"a block scalar holding text like an entry, a merge of an inline mapping": chunkHead + "defaults: {schedule: \"@weekly\"}\ndestinations:\n" +
			"    - id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70\n      name: >-\n        a\n        - not an entry\n      vault_path: w/a\n" +
			"    - <<: {schedule: \"@daily\", time_zone: Europe/Berlin}\n      id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71\n      name: b\n      vault_path: w/b\n" +
			"    - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e72,\n       name: c, vault_path: w/c}\n" +
			"log: {level: debug}\n",
		"CRLF line ends": strings.ReplaceAll(chunkHead+"destinations:\n  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70, name: a, vault_path: w/a}\n  - id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71\n    name: b\n    vault_path: w/b\n  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e72, name: c, vault_path: w/c}\nscheduler: {max_concurrent: 2}\n", "\n", "\r\n"),
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			data := []byte(text)
			want := Default()
			if err := decodeWhole(data, &want); err != nil {
				t.Fatalf("the whole parse fails: %v", err)
			}
			l, ok := findDestinations(data)
			if !ok {
				t.Fatal("findDestinations: no; want the entries found")
			}
			if len(l.entryLines) != 3 {
				t.Fatalf("found entries at lines %v, want 3", l.entryLines)
			}
			for _, size := range []int{1, 2, 3, chunkEntries} {
				got := Default()
				if err := decodeChunked(data, l, size, 1+size%2, &got, nil); err != nil {
					t.Fatalf("chunks of %d: %v", size, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("chunks of %d: decoded\n%+v\nwant (whole)\n%+v", size, got.Destinations, want.Destinations)
				}
			}
		})
	}
}

// TestChunkedDecodeDeclines: a document whose entries could mean something else apart is
// not split (anchors, aliases, tags, document markers, a flow list, a second key, content
// before the first entry); one whose entries are wrong in any way is parsed whole, and
// cfg is left alone.
func TestChunkedDecodeDeclines(t *testing.T) {
	entry := "  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70, name: a, vault_path: w/a}\n"
	notSplit := map[string]string{
		"an alias":         chunkHead + "x: &d {schedule: \"@daily\"}\ndestinations:\n" + entry + "  - {<<: *d, id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b, vault_path: w/b}\n",
		"an anchor":        chunkHead + "destinations:\n  - &e {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70, name: a, vault_path: w/a}\nx: *e\n",
		"a tag":            chunkHead + "destinations:\n" + entry + "  - {id: !!str 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b, vault_path: w/b}\n",
		"a document start": "---\n" + chunkHead + "destinations:\n" + entry,
		"two documents":    chunkHead + "destinations:\n" + entry + "...\n",
		"a directive":      "%YAML 1.1\n---\n" + chunkHead + "destinations:\n" + entry,
		"a flow list":      chunkHead + "destinations: [{id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70, name: a, vault_path: w/a}]\n",
		"two keys":         chunkHead + "destinations:\n" + entry + "destinations:\n" + entry,
		"not a list":       chunkHead + "destinations:\n  id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70\n",
		"no entries":       chunkHead + "destinations:\nmetrics: {listen: 127.0.0.1:1}\n",
		"a shallower line": chunkHead + "destinations:\n    - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70, name: a, vault_path: w/a}\n  - {name: b}\n",
	}
	for name, text := range notSplit {
		if l, ok := findDestinations([]byte(text)); ok {
			t.Errorf("%s: split at entries %v; want the document parsed whole", name, l.entryLines)
		}
	}
	parsedWhole := map[string]string{
		"an unknown key":               chunkHead + "destinations:\n" + entry + "  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b, vault_pth: w/b}\n",
		"a repeated key":               chunkHead + "destinations:\n" + entry + "  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b, name: c}\n",
		"a value of a bad type":        chunkHead + "destinations:\n" + entry + "  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b, enabled: maybe}\n",
		"a syntax error":               chunkHead + "destinations:\n" + entry + "  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71, name: b\n",
		"a dash inside a flow mapping": chunkHead + "destinations:\n  - {id: 3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70,\n  - name: a}\n",
		"an error after the list":      chunkHead + "destinations:\n" + entry + "metrics: {listn: x}\n",
		// Not YAML (a block list inside a flow mapping), though each part alone would be.
		"a flow mapping at the root": "{state_dir: /tmp/x,\ndestinations:\n" + entry + "}\n",
	}
	for name, text := range parsedWhole {
		data := []byte(text)
		l, ok := findDestinations(data)
		if !ok {
			continue // declined before parsing: parsed whole all the same
		}
		for _, size := range []int{1, 2} {
			cfg := Default()
			if err := decodeChunked(data, l, size, 2, &cfg, nil); !errors.Is(err, errWhole) {
				t.Errorf("%s, chunks of %d: %v; want errWhole", name, size, err)
			}
			if !reflect.DeepEqual(cfg, Default()) {
				t.Errorf("%s: cfg written though the chunked decode gave up", name)
			}
		}
	}
}

// TestLargeConfigParsesAsWhole: a fleet config over bigConfig (parsed per chunk) gives the
// config the same text parsed whole does (a document marker first makes Parse read it
// whole), and an error among its entries is reported in the whole parse's words, naming
// its line.
func TestLargeConfigParsesAsWhole(t *testing.T) {
	var b strings.Builder
	b.WriteString(chunkHead + "defaults: {schedule: \"@daily\", first_rotation: on_schedule}\ndestinations:\n")
	for i := range 20000 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - {id: %08x-0000-4000-8000-%012x, name: d%05d, vault_path: fleet/d%05d}\n", i, i, i, i)
		case 1:
			fmt.Fprintf(&b, "  - id: %08x-0000-4000-8000-%012x\n    name: d%05d\n    path: fleet/d%05d\n    window: 0\n", i, i, i, i)
		case 2:
			fmt.Fprintf(&b, "  # paused\n  - {id: %08x-0000-4000-8000-%012x, name: d%05d, vault_path: fleet/d%05d, enabled: false, schedule: \"@weekly\"}\n\n", i, i, i, i)
		default:
			fmt.Fprintf(&b, "  -\n    id: %08x-0000-4000-8000-%012X\n    name: d%05d\n    vault_path: fleet/d%05d\n    max_age: 192h\n", i, i, i, i)
		}
	}
	b.WriteString("metrics: {listen: \"127.0.0.1:9464\"}\n")
	data := []byte(b.String())
	if len(data) < bigConfig {
		t.Fatalf("the test's config is %d bytes, under bigConfig", len(data))
	}
	if _, ok := findDestinations(data); !ok {
		t.Fatal("the fleet config is not split")
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Parse(append([]byte("---\n"), data...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Destinations) != 20000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("per chunk: %d destinations, not the whole parse's %d (or they differ)", len(got.Destinations), len(want.Destinations))
	}

	bad := strings.Replace(b.String(), "name: d15001\n", "name: d15001\n    nmae: x\n", 1)
	_, err = Parse([]byte(bad))
	wantErr := decodeWhole([]byte(bad), &Config{})
	if err == nil || wantErr == nil || err.Error() != wantErr.Error() || !strings.Contains(err.Error(), `unknown key "nmae"`) {
		t.Fatalf("an unknown key among the entries: %v; want the whole parse's %v", err, wantErr)
	}
}
