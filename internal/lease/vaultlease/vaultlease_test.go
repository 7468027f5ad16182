package vaultlease

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/lease"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/vaulttest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newVaultLease(t *testing.T, client *vaultapi.Client, holder string, now func() time.Time) *Lease {
	t.Helper()
	l, err := New(Options{Client: client, Mount: "kv", Path: "rotatord/leases", TTL: 30 * time.Second, Holder: holder, Now: now, PollGap: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestVaultLease walks one destination's lease through two processes against a real Vault:
// exclusive while held, fences that grow, a free release, the holder named, a waiter served,
// and an expired lease taken over as unsettled while its old holder finds it lost.
func TestVaultLease(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	clock := &fakeClock{now: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)}
	a := newVaultLease(t, v.Client(t), "rotatord run", clock.Now)
	b := newVaultLease(t, v.Client(t), "rotatord rotate", clock.Now)
	ctx := context.Background()
	const d = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"

	// Free at first, and a first holder leaves nothing unsettled.
	ca, err := a.Acquire(ctx, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Fence() != 1 || ca.Unsettled() || ca.TookOver() {
		t.Errorf("first claim: fence %d, unsettled %v, took over %v; want 1, false, false", ca.Fence(), ca.Unsettled(), ca.TookOver())
	}
	_, err = b.Acquire(ctx, d, 0)
	var held *lease.HeldError
	if !errors.As(err, &held) || !strings.Contains(held.Holder, "(rotatord run, instance "+a.InstanceID()+"), lease fence 1, expires in 30s") {
		t.Fatalf("second holder: %v; want a lease.HeldError naming the run process", err)
	}
	if h, err := b.Holder(ctx, d); err != nil || !strings.Contains(h, a.InstanceID()) {
		t.Errorf("Holder = %q, %v", h, err)
	}
	// Keep within the TTL costs nothing; Keep beyond what is left renews.
	if err := ca.Keep(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Add(20 * time.Second)
	if err := ca.Keep(ctx, 10*time.Second); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	clock.Add(20 * time.Second) // past the first expiry, inside the renewed one
	if _, err := b.Acquire(ctx, d, 0); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("after renewal: %v; want held", err)
	}
	// Released settled: the next holder starts clean, with a larger fence.
	if err := ca.Release(ctx, false); err != nil {
		t.Fatal(err)
	}
	if h, err := b.Holder(ctx, d); err != nil || h != "" {
		t.Errorf("Holder after release = %q, %v; want none", h, err)
	}
	cb, err := b.Acquire(ctx, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Fence() <= ca.Fence() || cb.Unsettled() || cb.TookOver() {
		t.Errorf("claim after release: fence %d (before %d), unsettled %v, took over %v", cb.Fence(), ca.Fence(), cb.Unsettled(), cb.TookOver())
	}
	// Released unsettled: the next holder is told to list first. A waiter gets it.
	go func() { time.Sleep(100 * time.Millisecond); _ = cb.Release(ctx, true) }()
	ca2, err := a.Acquire(ctx, d, 5*time.Second)
	if err != nil {
		t.Fatalf("waiting Acquire: %v", err)
	}
	if !ca2.Unsettled() || ca2.TookOver() || ca2.Fence() <= cb.Fence() {
		t.Errorf("claim after an unsettled release: unsettled %v, took over %v, fence %d", ca2.Unsettled(), ca2.TookOver(), ca2.Fence())
	}
	// The holder dies (never renews). Until TTL + lease.MaxClockSkew the lease is held...
	clock.Add(30 * time.Second)
	if _, err := b.Acquire(ctx, d, 0); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("at expiry, within the clock skew allowance: %v; want held", err)
	}
	// ...then it is taken over, as unsettled, with a larger fence.
	clock.Add(lease.MaxClockSkew + time.Second)
	cb2, err := b.Acquire(ctx, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !cb2.TookOver() || !cb2.Unsettled() || cb2.Fence() <= ca2.Fence() {
		t.Errorf("takeover: took over %v, unsettled %v, fence %d (dead holder's %d)", cb2.TookOver(), cb2.Unsettled(), cb2.Fence(), ca2.Fence())
	}
	// The old holder, back, finds its lease lost: it must not rotate, nor write.
	if err := ca2.Keep(ctx, 10*time.Second); !errors.Is(err, lease.ErrLost) {
		t.Errorf("old holder's Keep: %v; want ErrLost", err)
	}
	if err := ca2.Release(ctx, false); err != nil {
		t.Errorf("releasing a lost claim: %v; want nil (nothing to release)", err)
	}
	if h, err := a.Holder(ctx, d); err != nil || !strings.Contains(h, b.InstanceID()) {
		t.Errorf("after the old holder's release, Holder = %q, %v; want the new holder", h, err)
	}
	_ = cb2.Release(ctx, false)
}

// TestVaultLeaseRenewalFailsPastExpiry: a holder cut off from Lease past its expiry has
// lost the lease, even though nobody else took it.
func TestVaultLeaseRenewalFailsPastExpiry(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	clock := &fakeClock{now: time.Now()}
	client := v.Client(t)
	l := newVaultLease(t, client, "rotatord run", clock.Now)
	ctx := context.Background()
	c, err := l.Acquire(ctx, "d", 0)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("not-a-token") // every request now fails with 403
	clock.Add(25 * time.Second)
	if err := c.Keep(ctx, 10*time.Second); err == nil || errors.Is(err, lease.ErrLost) {
		t.Errorf("renewal failing before expiry: %v; want an error that is not ErrLost", err)
	}
	clock.Add(10 * time.Second)
	if err := c.Keep(ctx, 10*time.Second); !errors.Is(err, lease.ErrLost) {
		t.Errorf("renewal failing past expiry: %v; want ErrLost", err)
	}
}

// TestVaultLeaseReleasedTakeCostsOneWrite: a process taking again the lease it released
// writes once and reads nothing; when another process took it in between, it reads.
func TestVaultLeaseReleasedTakeCostsOneWrite(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	client, counter := v.CountingClient(t)
	l := newVaultLease(t, client, "rotatord run", nil)
	other := newVaultLease(t, v.Client(t), "rotatord run", nil)
	ctx := context.Background()
	cycle := func(l *Lease) {
		t.Helper()
		c, err := l.Acquire(ctx, "d", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Release(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	cycle(l)
	counter.Store(0)
	cycle(l)
	if got := counter.Load(); got != 2 {
		t.Errorf("take and release again: %d Lease requests, want 2 (one write each)", got)
	}
	cycle(other)
	counter.Store(0)
	cycle(l)
	if got := counter.Load(); got != 4 {
		t.Errorf("after another process held it: %d Lease requests, want 4 (a failed write, a read, a write, a release)", got)
	}
}

// TestGiveWayToTheLastHolder: replicas fire for the same slot at the same moment. A
// scheduled take with lease.GiveWay by a process that did not release the lease last writes
// nothing: it says who takes the slot first, so the last holder takes it with one write and
// nobody races it. Looked at again without lease.GiveWay (the last holder may be gone), the lease
// is taken as usual; the last holder itself takes it at once.
func TestGiveWayToTheLastHolder(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	client, counter := v.CountingClient(t)
	other := newVaultLease(t, client, "rotatord run", nil)
	last := newVaultLease(t, v.Client(t), "rotatord run", nil)
	ctx := context.Background()
	c, err := last.Acquire(ctx, "d", 0, lease.GiveWay())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, false); err != nil {
		t.Fatal(err)
	}
	counter.Store(0)
	_, err = other.Acquire(ctx, "d", 0, lease.GiveWay())
	var held *lease.HeldError
	if !errors.As(err, &held) || !held.GivingWay || !strings.Contains(err.Error(), "takes the next rotation first") {
		t.Fatalf("Acquire with lease.GiveWay after another process released it: %v, want a lease.HeldError giving way", err)
	}
	if got := counter.Load(); got != 1 {
		t.Errorf("giving way cost %d Lease requests, want 1 (a read, no write)", got)
	}
	// The last holder takes it back with lease.GiveWay: one write.
	c, err = last.Acquire(ctx, "d", 0, lease.GiveWay())
	if err != nil {
		t.Fatalf("the last holder's Acquire with lease.GiveWay: %v", err)
	}
	if err := c.Release(ctx, false); err != nil {
		t.Fatal(err)
	}
	// The next look, without lease.GiveWay, takes it (the last holder might be gone).
	c, err = other.Acquire(ctx, "d", 0)
	if err != nil {
		t.Fatalf("Acquire without lease.GiveWay: %v", err)
	}
	_ = c.Release(ctx, false)
	// A lease nobody released (a holder that died, now expired) is taken over with lease.GiveWay too.
	if _, err := last.Acquire(ctx, "e", 0, lease.GiveWay()); err != nil {
		t.Fatal(err)
	}
	later := newVaultLease(t, v.Client(t), "rotatord run", func() time.Time { return time.Now().Add(time.Hour) })
	if c, err := later.Acquire(ctx, "e", 0, lease.GiveWay()); err != nil || !c.TookOver() {
		t.Fatalf("Acquire with lease.GiveWay of an expired lease: %v", err)
	}
}

// contenderEnv makes the test binary a lease contender (see TestMain).
const contenderEnv = "ROTATORD_TEST_LEASE_CONTENDER"

func TestMain(m *testing.M) {
	if os.Getenv(contenderEnv) != "" {
		os.Exit(contend())
	}
	os.Exit(m.Run())
}

// contend is one contending process: for each "try <destination>" line on stdin it tries the lease once
// and answers "won <fence>" or "held"; a winner releases on "release" and answers "released".
func contend() int {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = os.Getenv("VAULT_ADDR")
	client, err := vaultapi.NewClient(cfg)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	client.SetToken(os.Getenv("VAULT_TOKEN"))
	l, err := New(Options{Client: client, Mount: "kv", Path: "rotatord/leases", TTL: time.Minute, Holder: "contender"})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	var claim lease.Claim
	for in.Scan() {
		cmd, dest, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "try":
			c, err := l.Acquire(ctx, dest, 0)
			switch {
			case errors.Is(err, lease.ErrHeld):
				fmt.Println("held")
			case err != nil:
				fmt.Println("error", err)
			default:
				claim = c
				fmt.Println("won", c.Fence())
			}
		case "release":
			if err := claim.Release(ctx, false); err != nil {
				fmt.Println("error", err)
				continue
			}
			fmt.Println("released")
		}
	}
	return 0
}

// TestThreeProcessesOneHolder: three OS processes, each with its own Lease client, try to
// take one lease at the same moment, 1,000 times. Each time exactly one wins, the other two
// are told it is held, and the fencing number grows from one winner to the next. Every
// 50 rounds they move to a lease never written, where the race is on its creation (this
// test found a second winner there once: a read between the data and metadata reads).
func TestThreeProcessesOneHolder(t *testing.T) {
	v := vaulttest.Start(t)
	v.EnableKV(t, "kv", 2)
	type contender struct {
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var cs []contender
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), contenderEnv+"=1", "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.RootToken)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
		cs = append(cs, contender{stdin: stdin, out: bufio.NewScanner(stdout)})
	}
	const rounds = 1000
	var lastFence int64
	wins := make([]int, len(cs))
	for round := range rounds {
		if round%50 == 0 {
			lastFence = 0 // a new lease starts from fence 1
		}
		for _, c := range cs {
			if _, err := fmt.Fprintf(c.stdin, "try contended-%d\n", round/50); err != nil {
				t.Fatal(err)
			}
		}
		winner := -1
		for i, c := range cs {
			if !c.out.Scan() {
				t.Fatalf("round %d: contender %d stopped: %v", round, i, c.out.Err())
			}
			var fence int64
			switch line := c.out.Text(); {
			case line == "held":
			case strings.HasPrefix(line, "won "):
				if winner >= 0 {
					t.Fatalf("round %d: contenders %d and %d both hold the lease (%s)", round, winner, i, line)
				}
				winner = i
				if _, err := fmt.Sscan(strings.TrimPrefix(line, "won "), &fence); err != nil || fence <= lastFence {
					t.Fatalf("round %d: fence %q after %d; want a larger one", round, line, lastFence)
				}
				lastFence = fence
			default:
				t.Fatalf("round %d: contender %d: %s", round, i, line)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody holds the lease", round)
		}
		wins[winner]++
		if _, err := io.WriteString(cs[winner].stdin, "release\n"); err != nil {
			t.Fatal(err)
		}
		if !cs[winner].out.Scan() || cs[winner].out.Text() != "released" {
			t.Fatalf("round %d: release: %q", round, cs[winner].out.Text())
		}
	}
	t.Logf("wins per process over %d rounds: %v; last fence %d", rounds, wins, lastFence)
}
