package config

// A fleet's config is mostly its destinations: 100,000 of them are about 9 MB of YAML, and
// yaml.v3 holds the whole parsed document (about 1.5 KB of nodes a destination) until it is
// decoded. Parsed whole, that document is the largest thing a daemon's start or SIGHUP
// reload holds, beside everything the running daemon already keeps. Where the
// `destinations:` list is an ordinary block sequence, its entries are parsed a chunk at a
// time instead, each chunk decoded and dropped before the next; the result is the one a
// whole parse gives, or the whole parse runs (see decodeChunked).

import (
	"bytes"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

// chunkEntries is how many destinations one chunk holds: its nodes are about 1.5 MB.
const chunkEntries = 1024

// destinationList is where a top-level `destinations:` block sequence lies in a config's
// text.
type destinationList struct {
	keyLine    int   // 1-based line of the `destinations:` key
	from, to   int   // byte offsets of the entries' lines: data[from:to]
	entryLines []int // 1-based line of each entry's `-`
	entryAt    []int // byte offset of each entry's line
}

// findDestinations finds the `destinations:` block sequence of data, when its entries can be
// parsed apart from the rest of the document and from each other with the same meaning:
// the key at the start of a line with nothing after it but a comment, one such key, no
// directive or document marker in the file (each chunk is a document of its own), and no
// anchor, alias or tag among the entries (an entry could then depend on text outside its
// chunk). ok false: parse the document whole.
func findDestinations(data []byte) (l destinationList, ok bool) {
	line, key := 0, -1
	indent := -1 // the entries' indentation, once the first is seen
	for at := 0; at < len(data); {
		line++
		end := bytes.IndexByte(data[at:], '\n')
		next := len(data)
		if end >= 0 {
			next = at + end + 1
		}
		text := bytes.TrimRight(data[at:next], "\r\n")
		switch {
		case bytes.HasPrefix(text, []byte("---")), bytes.HasPrefix(text, []byte("...")), bytes.HasPrefix(text, []byte("%")):
			return l, false
		case isDestinationsKey(text):
			if key >= 0 {
				return l, false // a second key: yaml.v3 reports it
			}
			key, l.keyLine, l.from = line, line, next
		case key >= 0 && l.to == 0:
			spaces := len(text) - len(bytes.TrimLeft(text, " "))
			rest := text[spaces:]
			switch {
			case len(rest) == 0 || rest[0] == '#':
				// blank or a comment (inside an entry's block scalar, text like it at a
				// deeper indentation is that scalar's and changes no boundary)
			case spaces == 0 && rest[0] != '-':
				l.to = at // the next top-level key: the list ended
			case indent < 0 && isEntry(rest):
				indent = spaces
				l.entryLines, l.entryAt = append(l.entryLines, line), append(l.entryAt, at)
			case indent < 0:
				return l, false // content before any entry: not a block sequence
			case spaces == indent && isEntry(rest):
				l.entryLines, l.entryAt = append(l.entryLines, line), append(l.entryAt, at)
			case spaces <= indent:
				return l, false // shallower than the entries: leave it to the parser
			}
		}
		at = next
	}
	if key < 0 || len(l.entryLines) == 0 {
		return l, false
	}
	if l.to == 0 {
		l.to = len(data)
	}
	if bytes.ContainsAny(data[l.from:l.to], "&*!") {
		return l, false
	}
	return l, true
}

// isDestinationsKey: the line is the top-level key `destinations:` with no value on it.
func isDestinationsKey(text []byte) bool {
	rest, ok := bytes.CutPrefix(text, []byte("destinations:"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " ")
	return len(rest) == 0 || rest[0] == '#'
}

// isEntry: the text (indentation removed) begins a block sequence entry.
func isEntry(rest []byte) bool {
	return len(rest) == 1 && rest[0] == '-' || len(rest) > 1 && rest[0] == '-' && rest[1] == ' '
}

// errWhole says the chunked parse gave up: the document is parsed whole, which says what
// is wrong in the words a whole parse uses.
var errWhole = errors.New("parse the document whole")

// decodeChunked decodes data into cfg with the destinations parsed per chunk of size
// entries. Everything that could make the result differ from a whole parse is checked:
// the rest of the document (the entries' lines left blank, so every line keeps its number)
// must hold the key at its line with no value, and each chunk must parse into exactly the
// entries found, each at its line. Any problem at all (a syntax error, an unknown key, a
// value of the wrong type) returns errWhole, and the caller parses the document whole for
// its error. cfg is written only on success. Before the destinations are parsed, ahead (when
// not nil) is given the api section, if it and the credential settings check out.
func decodeChunked(data []byte, l destinationList, size, workers int, cfg *Config, ahead func(API)) error {
	rest := make([]byte, 0, len(data)-(l.to-l.from))
	rest = append(rest, data[:l.from]...)
	for _, c := range data[l.from:l.to] {
		if c == '\n' {
			rest = append(rest, '\n')
		}
	}
	rest = append(rest, data[l.to:]...)
	doc, unknown, err := parseNodes(rest, configType)
	if err != nil || len(unknown) > 0 || !emptyDestinationsAt(doc, l.keyLine) {
		return errWhole
	}
	out := Default()
	if err := doc.Decode(&out); err != nil {
		return errWhole
	}
	doc, rest = nil, nil
	if ahead != nil {
		// The checks Validate makes of these sections: no key goes to a base URL that
		// Validate would refuse (plain http off loopback), nor is read from a setting that
		// holds the key itself.
		var p problems
		out.validateCredentialFiles(&p)
		out.validateAPI(&p)
		if len(p.errs) == 0 {
			ahead(out.API)
		}
	}

	dests, ok := decodeEntries(data, l, size, workers)
	if !ok {
		return errWhole
	}
	out.Destinations = dests
	*cfg = out
	return nil
}

// decodeEntries decodes l's entries a chunk of size at a time, each chunk into its own place
// in the list, on up to workers goroutines: the chunks do not depend on each other (at a
// start of 100,000 destinations, with nothing else running yet, two took the parse from
// 1.15-1.26 to 0.81-0.93 s). ok false: a chunk is not exactly its entries, or does not
// decode (the document is then parsed whole for the error, so which chunk failed first
// does not matter).
func decodeEntries(data []byte, l destinationList, size, workers int) (dests []Destination, ok bool) {
	dests = make([]Destination, len(l.entryLines))
	chunks := (len(l.entryLines) + size - 1) / size
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range max(1, min(workers, chunks)) {
		wg.Go(func() {
			for !failed.Load() {
				k := int(next.Add(1) - 1)
				if k >= chunks {
					return
				}
				if !decodeChunk(data, l, k*size, min(k*size+size, len(l.entryLines)), dests) {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return dests, !failed.Load()
}

// decodeChunk decodes entries first to last (exclusive) of l into dests[first:last].
func decodeChunk(data []byte, l destinationList, first, last int, dests []Destination) bool {
	end := l.to
	if last < len(l.entryLines) {
		end = l.entryAt[last]
	}
	chunk, unknown, err := parseNodes(data[l.entryAt[first]:end], destinationListType)
	if err != nil || len(unknown) > 0 {
		return false
	}
	shiftLines(chunk, l.entryLines[first]-1)
	if !entriesAt(chunk, l.entryLines[first:last]) {
		return false
	}
	var part []Destination
	if err := chunk.Decode(&part); err != nil || len(part) != last-first {
		return false
	}
	copy(dests[first:last], part)
	return true
}

var destinationListType = reflect.TypeOf([]Destination(nil))

// emptyDestinationsAt: doc's top-level mapping, a block mapping, has the key destinations
// at line, with no value (the entries were left out). A flow mapping could not have held
// the block list the entries make.
func emptyDestinationsAt(doc *yaml.Node, line int) bool {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode ||
		doc.Content[0].Style&yaml.FlowStyle != 0 {
		return false
	}
	m := doc.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		if m[i].Kind == yaml.ScalarNode && m[i].Value == "destinations" {
			return m[i].Line == line && m[i+1].Kind == yaml.ScalarNode && m[i+1].Tag == "!!null"
		}
	}
	return false
}

// entriesAt: the chunk is one block sequence whose entries begin at lines.
func entriesAt(chunk *yaml.Node, lines []int) bool {
	if chunk.Kind != yaml.DocumentNode || len(chunk.Content) != 1 {
		return false
	}
	seq := chunk.Content[0]
	if seq.Kind != yaml.SequenceNode || seq.Style&yaml.FlowStyle != 0 || len(seq.Content) != len(lines) {
		return false
	}
	for i, n := range seq.Content {
		// An entry's node begins after its `- `: on its line, or (a block mapping written
		// below the dash) on a later line before the next entry.
		if n.Line < lines[i] || i+1 < len(lines) && n.Line >= lines[i+1] {
			return false
		}
	}
	return true
}

// shiftLines moves every node of a chunk by the lines before it, so that errors and checks
// name the config's own lines.
func shiftLines(n *yaml.Node, by int) {
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by)
	}
}
