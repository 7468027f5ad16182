package rotate_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/rotatord/rotatord/internal/sink/vaultkv"

	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/spool"
	"github.com/rotatord/rotatord/internal/vaulttest"
)

// TestFourHundredDueAtOnce rotates 400 destinations falling due together, 8 at a time, into
// a real Vault KV v2, while the replayer lists the spool beside them: every one is stored,
// none fails (one rotation's stored-and-removed spool entry is never another's "corrupt"
// entry). With the spool plain and sealed.
func TestFourHundredDueAtOnce(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "secret-v2", 2)
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain spool", true: "sealed spool"}[sealed], func(t *testing.T) {
			s, err := vaultkv.New(vaultkv.Options{Client: v.Client(t), Mount: "secret-v2", Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			h, _ := newHarness(t, harnessOpts{sink: s})
			opts := h.opts
			if sealed {
				if opts.Spool, err = spool.Open(t.TempDir(), bytes.Repeat([]byte{9}, 32)); err != nil {
					t.Fatal(err)
				}
			}
			r, err := rotate.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			const n, concurrency = 400, 8
			prefix := map[bool]string{false: "plain", true: "sealed"}[sealed]
			dests := make(chan rotate.Destination, n)
			for i := range n {
				name := fmt.Sprintf("%s-%03d", prefix, i)
				dests <- rotate.Destination{ID: h.em.AddDestination(name), Name: name, Path: "webhookco/" + name}
			}
			close(dests)

			ctx, cancel := context.WithCancel(context.Background())
			replayed := make(chan struct{})
			go func() { // the replayer, listing the whole spool as rotations write and remove
				defer close(replayed)
				for ctx.Err() == nil {
					_, _ = r.Replay(ctx)
				}
			}()
			var mu sync.Mutex
			var failed []string
			var wg sync.WaitGroup
			for range concurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for d := range dests {
						if res := r.Rotate(ctx, d, rotate.TriggerSchedule); !res.OK() {
							mu.Lock()
							failed = append(failed, fmt.Sprintf("%s: %s: %v", d.Name, res.Reason, res.Err))
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			cancel()
			<-replayed
			if len(failed) > 0 {
				t.Errorf("%d of %d rotations failed, e.g. %s", len(failed), n, failed[0])
			}
			if files, _ := opts.Spool.CorruptFiles(); len(files) > 0 {
				t.Errorf("%d spool entries moved aside as corrupt", len(files))
			}
			if left, _ := opts.Spool.Len(); left != 0 {
				t.Errorf("%d secrets left in the spool", left)
			}
			stored := 0
			for i := range n {
				name := fmt.Sprintf("%s-%03d", prefix, i)
				if rec, err := s.Get(context.Background(), "webhookco/"+name); err == nil && rec.KeyID != "" {
					stored++
				}
			}
			if stored != n {
				t.Errorf("Vault holds %d of %d secrets", stored, n)
			}
		})
	}
}
