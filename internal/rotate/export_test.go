package rotate

import "github.com/rotatord/rotatord/internal/sink"

// Recalled is what the rotator remembers of a destination's stored record, for the tests.
func (r *Rotator) Recalled(id string) *sink.Record { rec, _ := r.recall(id); return rec }

// HistoryKept is how many history entries the rotator keeps in memory, for the tests.
func (r *Rotator) HistoryKept() int64 { return r.historyKept.Load() }
