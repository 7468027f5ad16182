package rotate

import "github.com/rotatord/rotatord/internal/sink"

// Recalled is what the rotator remembers of a destination's stored record, for the tests.
func (r *Rotator) Recalled(id string) *sink.Record { return r.recall(id) }
