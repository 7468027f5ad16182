package vaultlease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotatord/rotatord/internal/lease"
	"github.com/rotatord/rotatord/internal/preflight"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotatord/rotatord/internal/vault"
)

var (
	_ lease.Lease       = (*Lease)(nil)
	_ preflight.Checker = (*Lease)(nil)
)

// Options configure a Vault lease.
type Options struct {
	Client *vaultapi.Client
	// Mount is a KV v2 mount: check-and-set is what makes the lease exclusive.
	Mount string
	// Path is the folder of the lease entries: one per destination, named by its id.
	Path string
	// TTL is how long a lease lives without renewal: how long a dead holder blocks the
	// destination. It must exceed the longest rotate request plus lease.MaxClockSkew.
	TTL time.Duration
	// Holder describes this process in the lease, e.g. "rotatord run".
	Holder string
	// Recover, when set, is called once when Vault answers 403; if it returns nil (a new
	// token is in place) the request is retried once.
	Recover func(ctx context.Context) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PollGap is how often a waiting Acquire looks again; 0 means 250ms.
	PollGap time.Duration
}

// Lease keeps one lease per destination in a KV v2 entry <mount>/data/<path>/<id>:
//
//   - Acquire reads the entry and, when it is free (released, or expired for longer than
//     lease.MaxClockSkew), writes it with check-and-set against the version read: of several
//     processes that try at once, exactly one write succeeds. The version written is the
//     claim's fencing number; every later holder's is larger.
//   - Keep renews with check-and-set against the claim's last version: a renewal that
//     finds another version has lost the lease.
//   - Release writes the entry free with check-and-set, saying whether a rotate's outcome
//     is unknown. A holder that dies never releases: its lease expires after TTL, and the
//     next holder treats its rotation as unsettled.
//
// A process remembers the version of each lease it released, so taking it again costs one
// write and no read while nobody else took it in between.
type Lease struct {
	opts       Options
	kv         *vaultapi.KVv2
	path       string
	instanceID string
	host       string
	pid        int

	mu       sync.Mutex
	released map[string]releasedLease // by destination id: what this process last wrote
}

// releasedLease is the entry this process wrote when it released a lease.
type releasedLease struct {
	version   int
	unsettled bool
}

// New validates opts. It makes no request.
func New(opts Options) (*Lease, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("vault lease: no client")
	case strings.Trim(opts.Mount, "/") == "":
		return nil, errors.New("vault lease: no KV v2 mount")
	case strings.Trim(opts.Path, "/") == "":
		return nil, errors.New("vault lease: no path")
	case opts.TTL <= 2*lease.MaxClockSkew:
		return nil, fmt.Errorf("vault lease: TTL %s: want more than %s", opts.TTL, 2*lease.MaxClockSkew)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollGap <= 0 {
		opts.PollGap = 250 * time.Millisecond
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("vault lease: instance id: %w", err)
	}
	host, _ := os.Hostname()
	return &Lease{
		opts: opts, kv: opts.Client.KVv2(strings.Trim(opts.Mount, "/")), path: strings.Trim(opts.Path, "/"),
		instanceID: hex.EncodeToString(id), host: host, pid: os.Getpid(), released: map[string]releasedLease{},
	}, nil
}

// CheckMount checks that the lease mount is KV v2 (leases need check-and-set).
func (v *Lease) CheckMount(ctx context.Context) error {
	mount := strings.Trim(v.opts.Mount, "/")
	var version int
	err := v.call(ctx, func() (err error) { version, err = vault.DetectKVVersion(ctx, v.opts.Client, mount); return err })
	if err != nil {
		return fmt.Errorf("vault lease mount %s: %w", mount, err)
	}
	if version != 2 {
		return fmt.Errorf("vault lease mount %s is KV v%d; leases need KV v2 (check-and-set): set coordination.vault.mount to a KV v2 mount", mount, version)
	}
	return nil
}

// Needs lists the capabilities that destinationID's lease uses: create, update and read on
// its entry (take, renew, release; see who holds it), and read on its metadata (tell a
// deleted lease from one never written).
func (v *Lease) Needs(destinationID string) []vault.Need {
	data, meta := v.Location(destinationID), v.metadataLocation(destinationID)
	return []vault.Need{{Path: data, Capability: "create"}, {Path: data, Capability: "update"}, {Path: data, Capability: "read"}, {Path: meta, Capability: "read"}}
}

// InstanceID is the random id this process writes into its leases.
func (v *Lease) InstanceID() string { return v.instanceID }

// Location is the API path of destinationID's lease, for logs and policies.
func (v *Lease) Location(destinationID string) string {
	return strings.Trim(v.opts.Mount, "/") + "/data/" + v.entry(destinationID)
}

// metadataLocation is the API path of the lease entry's metadata.
func (v *Lease) metadataLocation(destinationID string) string {
	return strings.Trim(v.opts.Mount, "/") + "/metadata/" + v.entry(destinationID)
}

func (v *Lease) entry(destinationID string) string { return v.path + "/" + destinationID }

// record is one lease entry. Every field is stored as a string.
type record struct {
	Host       string
	PID        int
	Command    string
	InstanceID string
	Fence      int64
	AcquiredAt time.Time
	ExpiresAt  time.Time
	Released   bool
	Unsettled  bool
}

// Lease entry fields.
const (
	fieldHost       = "holder_host"
	fieldPID        = "holder_pid"
	fieldCommand    = "holder_command"
	fieldInstanceID = "holder_instance_id"
	fieldFence      = "fence"
	fieldAcquiredAt = "acquired_at"
	fieldExpiresAt  = "expires_at"
	fieldReleased   = "released"
	fieldUnsettled  = "unsettled"
)

func (r record) data() map[string]any {
	return map[string]any{
		fieldHost: r.Host, fieldPID: strconv.Itoa(r.PID), fieldCommand: r.Command, fieldInstanceID: r.InstanceID,
		fieldFence: strconv.FormatInt(r.Fence, 10), fieldAcquiredAt: r.AcquiredAt.UTC().Format(time.RFC3339Nano),
		fieldExpiresAt: r.ExpiresAt.UTC().Format(time.RFC3339Nano),
		fieldReleased:  strconv.FormatBool(r.Released), fieldUnsettled: strconv.FormatBool(r.Unsettled),
	}
}

func parseRecord(data map[string]any) (record, error) {
	str := func(k string) string { s, _ := data[k].(string); return s }
	var r record
	var errs []error
	parse := func(k string, f func(string) error) {
		if err := f(str(k)); err != nil {
			errs = append(errs, fmt.Errorf("field %s %q: %w", k, str(k), err))
		}
	}
	r.Host, r.Command, r.InstanceID = str(fieldHost), str(fieldCommand), str(fieldInstanceID)
	parse(fieldPID, func(s string) (err error) { r.PID, err = strconv.Atoi(s); return err })
	parse(fieldFence, func(s string) (err error) { r.Fence, err = strconv.ParseInt(s, 10, 64); return err })
	parse(fieldAcquiredAt, func(s string) (err error) { r.AcquiredAt, err = time.Parse(time.RFC3339Nano, s); return err })
	parse(fieldExpiresAt, func(s string) (err error) { r.ExpiresAt, err = time.Parse(time.RFC3339Nano, s); return err })
	parse(fieldReleased, func(s string) (err error) { r.Released, err = strconv.ParseBool(s); return err })
	parse(fieldUnsettled, func(s string) (err error) { r.Unsettled, err = strconv.ParseBool(s); return err })
	if len(errs) > 0 {
		return record{}, fmt.Errorf("not a rotatord lease: %w", errors.Join(errs...))
	}
	return r, nil
}

// held reports whether r keeps others out at now.
func (r record) held(now time.Time) bool {
	return !r.Released && !now.After(r.ExpiresAt.Add(lease.MaxClockSkew))
}

// describe names the holder for a lease.HeldError and for `rotatord status`.
func (r record) describe(now time.Time) string {
	return fmt.Sprintf("pid %d on %s (%s, instance %s), lease fence %d, expires in %s",
		r.PID, r.Host, r.Command, r.InstanceID, r.Fence, r.ExpiresAt.Sub(now).Round(time.Second))
}

// call runs op, and once more after Recover when Vault answered 403.
func (v *Lease) call(ctx context.Context, op func() error) error {
	return vault.RetryAfterRecover(ctx, v.opts.Recover, op)
}

// read returns destinationID's lease entry and its KV version; found is false when there
// is none (never written, or its latest version deleted: version is then the one a
// check-and-set must name).
func (v *Lease) read(ctx context.Context, destinationID string) (rec record, version int, found bool, err error) {
	path := v.entry(destinationID)
	var s *vaultapi.KVSecret
	err = v.call(ctx, func() (err error) { s, err = v.kv.Get(ctx, path); return err })
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		// Nothing readable; the metadata still knows the current version if it was deleted.
		var meta *vaultapi.KVMetadata
		err = v.call(ctx, func() (err error) { meta, err = v.kv.GetMetadata(ctx, path); return err })
		if errors.Is(err, vaultapi.ErrSecretNotFound) {
			return record{}, 0, false, nil
		}
		if err != nil {
			return record{}, 0, false, fmt.Errorf("vault lease %s: read metadata: %w", v.Location(destinationID), vault.Explain(err))
		}
		if cur, ok := meta.Versions[strconv.Itoa(meta.CurrentVersion)]; ok && !cur.Destroyed && cur.DeletionTime.IsZero() {
			// Written between the two reads, by a process taking the lease: read again.
			return record{}, 0, false, errRace
		}
		return record{}, meta.CurrentVersion, false, nil
	}
	if err != nil {
		return record{}, 0, false, fmt.Errorf("vault lease %s: read: %w", v.Location(destinationID), vault.Explain(err))
	}
	if s.VersionMetadata != nil {
		version = s.VersionMetadata.Version
	}
	rec, err = parseRecord(s.Data)
	if err != nil {
		return record{}, 0, false, fmt.Errorf("vault lease %s (version %d): %w; delete it to let rotatord start afresh", v.Location(destinationID), version, err)
	}
	return rec, version, true, nil
}

// errRace says another process wrote the lease entry between our read and our write.
var errRace = errors.New("lease entry changed since it was read")

// write puts rec with check-and-set against version and returns the version written.
func (v *Lease) write(ctx context.Context, destinationID string, rec record, version int) (int, error) {
	var s *vaultapi.KVSecret
	err := v.call(ctx, func() (err error) {
		s, err = v.kv.Put(ctx, v.entry(destinationID), rec.data(), vaultapi.WithCheckAndSet(version))
		return err
	})
	if err != nil {
		if vault.IsCASMismatch(err) {
			return 0, errRace
		}
		return 0, fmt.Errorf("vault lease %s: write: %w", v.Location(destinationID), vault.Explain(err))
	}
	if s == nil || s.VersionMetadata == nil {
		return 0, fmt.Errorf("vault lease %s: write: Vault returned no version (is the mount KV v2?)", v.Location(destinationID))
	}
	return s.VersionMetadata.Version, nil
}

// retake takes again, without reading, the entry as this process left it when it
// released it, if nobody wrote since (one write). Neither a claim nor an error: read first.
func (v *Lease) retake(ctx context.Context, destinationID string) (*vaultClaim, error) {
	v.mu.Lock()
	last, ok := v.released[destinationID]
	delete(v.released, destinationID)
	v.mu.Unlock()
	if !ok {
		return nil, nil
	}
	c, err := v.take(ctx, destinationID, last.version, last.unsettled, false)
	switch {
	case err == nil:
		c.continues = !last.unsettled // the entry was as this process left it
		return c, nil
	case errors.Is(err, errRace):
		return nil, nil
	}
	return nil, err
}

// pollGap waits PollGap before the next look at a held lease, or until ctx ends.
func (v *Lease) pollGap(ctx context.Context, destinationID string) error {
	t := time.NewTimer(v.opts.PollGap)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("lease: waiting for %s: %w", destinationID, ctx.Err())
	case <-t.C:
		return nil
	}
}

// Acquire takes destinationID's lease. While another process holds it, Acquire fails at
// once with a *lease.HeldError naming the holder, or with wait > 0 looks again every PollGap
// until wait has passed or ctx is done.
//
// With lease.GiveWay, a lease another process released last is left to it (see lease.GiveWay).
func (v *Lease) Acquire(ctx context.Context, destinationID string, wait time.Duration, opts ...lease.AcquireOption) (lease.Claim, error) {
	o := lease.ApplyOptions(opts)
	deadline := v.opts.Now().Add(wait)
	switch c, err := v.retake(ctx, destinationID); {
	case err != nil:
		return nil, err
	case c != nil:
		return c, nil
	}
	for {
		cur, version, found, err := v.read(ctx, destinationID)
		if errors.Is(err, errRace) {
			continue
		}
		if err != nil {
			return nil, err
		}
		now := v.opts.Now()
		if found && cur.held(now) {
			if wait <= 0 || !now.Before(deadline) {
				return nil, &lease.HeldError{DestinationID: destinationID, Holder: cur.describe(now), ExpiresAt: cur.ExpiresAt}
			}
			if err := v.pollGap(ctx, destinationID); err != nil {
				return nil, err
			}
			continue
		}
		if o.GiveWay && found && cur.Released && cur.InstanceID != v.instanceID {
			return nil, &lease.HeldError{DestinationID: destinationID, GivingWay: true, ExpiresAt: cur.ExpiresAt,
				Holder: fmt.Sprintf("pid %d on %s (%s, instance %s), which released it at %s", cur.PID, cur.Host, cur.Command, cur.InstanceID,
					cur.ExpiresAt.UTC().Format(time.RFC3339))}
		}
		// Free. A holder that never released it may have sent a rotate before it died.
		tookOver := found && !cur.Released
		c, err := v.take(ctx, destinationID, version, cur.Unsettled || tookOver, tookOver)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, errRace):
			continue // another process was faster: read again, and see who holds it
		default:
			return nil, err
		}
	}
}

// Shared reports that other hosts take turns through these leases.
func (v *Lease) Shared() bool { return true }

// take writes a new lease for this process with check-and-set against version.
func (v *Lease) take(ctx context.Context, destinationID string, version int, unsettled, tookOver bool) (*vaultClaim, error) {
	sent := v.opts.Now()
	rec := record{
		Host: v.host, PID: v.pid, Command: v.opts.Holder, InstanceID: v.instanceID, Fence: int64(version) + 1,
		AcquiredAt: sent, ExpiresAt: sent.Add(v.opts.TTL),
		// Until released, a rotate may be in flight: a holder that dies leaves it unsettled.
		Unsettled: true,
	}
	written, err := v.write(ctx, destinationID, rec, version)
	if err != nil {
		return nil, err
	}
	rec.Fence = int64(written)
	return &vaultClaim{v: v, id: destinationID, rec: rec, version: written, unsettled: unsettled, tookOver: tookOver}, nil
}

// Holder describes who holds destinationID's lease ("" when nobody does).
func (v *Lease) Holder(ctx context.Context, destinationID string) (string, error) {
	cur, _, found, err := v.read(ctx, destinationID)
	if errors.Is(err, errRace) {
		cur, _, found, err = v.read(ctx, destinationID)
	}
	if err != nil || !found {
		return "", err
	}
	now := v.opts.Now()
	if !cur.held(now) {
		return "", nil
	}
	return cur.describe(now), nil
}

// vaultClaim is a held Vault lease.
type vaultClaim struct {
	v         *Lease
	id        string
	rec       record
	version   int // the entry's version as last written by this claim
	unsettled bool
	tookOver  bool
	continues bool  // taken back from this process's own release, nobody between
	lost      error // set once the claim is known lost
}

func (c *vaultClaim) Continues() bool { return c.continues }

func (c *vaultClaim) Fence() int64    { return c.rec.Fence }
func (c *vaultClaim) Unsettled() bool { return c.unsettled }
func (c *vaultClaim) TookOver() bool  { return c.tookOver }

// Keep implements lease.Claim: a renewal when less than d (plus lease.MaxClockSkew) is left.
func (c *vaultClaim) Keep(ctx context.Context, d time.Duration) error {
	if c.lost != nil {
		return c.lost
	}
	if d+lease.MaxClockSkew >= c.v.opts.TTL {
		return fmt.Errorf("lease %s: cannot promise %s within a TTL of %s", c.v.Location(c.id), d, c.v.opts.TTL)
	}
	now := c.v.opts.Now()
	if now.Add(d + lease.MaxClockSkew).Before(c.rec.ExpiresAt) {
		return nil
	}
	next := c.rec
	next.ExpiresAt = now.Add(c.v.opts.TTL)
	written, err := c.v.write(ctx, c.id, next, c.version)
	switch {
	case errors.Is(err, errRace):
		c.lost = fmt.Errorf("lease %s (fence %d): another process wrote it: %w", c.v.Location(c.id), c.rec.Fence, lease.ErrLost)
		return c.lost
	case err != nil && !c.v.opts.Now().Before(c.rec.ExpiresAt):
		c.lost = fmt.Errorf("lease %s (fence %d) expired while its renewal failed: %w: %w", c.v.Location(c.id), c.rec.Fence, lease.ErrLost, err)
		return c.lost
	case err != nil:
		return fmt.Errorf("renew lease: %w", err)
	}
	c.rec, c.version = next, written
	return nil
}

// Release implements lease.Claim. A lost claim has nothing to release.
func (c *vaultClaim) Release(ctx context.Context, unsettled bool) error {
	if c.lost != nil {
		return nil
	}
	c.lost = fmt.Errorf("lease %s (fence %d) released: %w", c.v.Location(c.id), c.rec.Fence, lease.ErrLost)
	next := c.rec
	next.Released, next.Unsettled, next.ExpiresAt = true, unsettled, c.v.opts.Now()
	written, err := c.v.write(ctx, c.id, next, c.version)
	switch {
	case errors.Is(err, errRace):
		return fmt.Errorf("lease %s (fence %d): taken over by another process before release", c.v.Location(c.id), c.rec.Fence)
	case err != nil:
		return fmt.Errorf("release (it expires by itself at %s): %w", c.rec.ExpiresAt.UTC().Format(time.RFC3339), err)
	}
	c.v.mu.Lock()
	c.v.released[c.id] = releasedLease{version: written, unsettled: unsettled}
	c.v.mu.Unlock()
	return nil
}

// Preflight implements preflight.Checker: the lease mount is KV v2, and the rights the
// leases use (the policy grants the lease folder as a whole: one destination's entry
// stands for all).
func (v *Lease) Preflight(ctx context.Context, targets []preflight.Target) preflight.Readiness {
	var r preflight.Readiness
	if len(targets) == 0 {
		return r
	}
	if err := v.CheckMount(ctx); err != nil {
		if vault.IsUnreachable(err) {
			r.Unchecked = append(r.Unchecked, err)
			return r
		}
		r.Fatal = append(r.Fatal, err)
	}
	for _, n := range v.Needs(targets[0].ID) {
		r.Needs = append(r.Needs, preflight.Need{Need: n})
	}
	r.Ready = append(r.Ready, fmt.Sprintf("vault leases %s: ok, ttl %s", v.Location("*"), v.opts.TTL))
	return r
}
