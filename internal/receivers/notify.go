package receivers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rotatord/rotatord/internal/config"
	"github.com/rotatord/rotatord/internal/rotate"
	"github.com/rotatord/rotatord/internal/webhookco"
)

// Notification is the JSON body of an HTTP notification, and what an exec consumer reads
// in ROTATORD_NOTIFICATION. It never holds a secret.
type Notification struct {
	Type      string     `json:"type"` // rotatord.keys.stored
	Consumer  string     `json:"consumer"`
	Rotations []Rotation `json:"rotations"`
}

// Rotation is one stored key in a notification.
type Rotation struct {
	DestinationID string    `json:"destination_id"`
	Destination   string    `json:"destination"`
	KeyID         string    `json:"key_id"`
	Location      string    `json:"location"`
	Version       string    `json:"version,omitempty"`
	RotatedAt     time.Time `json:"rotated_at"`
}

func notification(c config.Consumer, events []rotate.Stored) Notification {
	n := Notification{Type: "rotatord.keys.stored", Consumer: c.Name}
	for _, e := range events {
		n.Rotations = append(n.Rotations, Rotation{DestinationID: e.DestinationID, Destination: e.Destination, KeyID: e.KeyID,
			Location: e.Location, Version: string(e.Version), RotatedAt: e.RotatedAt.UTC()})
	}
	return n
}

// execNotify runs the consumer's program (no shell). Its environment names what was
// stored; with secret_on_stdin it reads the stored records, secrets included, as JSON lines.
// Its output is not logged: a program may echo what it was given.
func (m *Manager) execNotify(ctx context.Context, c config.Consumer, events []rotate.Stored) error {
	ctx, cancel := context.WithTimeout(ctx, c.Notify.EffectiveTimeout())
	defer cancel()
	body, err := json.Marshal(notification(c, events))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, c.Notify.Exec[0], c.Notify.Exec[1:]...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "ROTATORD_CONSUMER=" + c.Name, "ROTATORD_NOTIFICATION=" + string(body),
		"ROTATORD_COUNT=" + strconv.Itoa(len(events))}
	var names []string
	for _, e := range events {
		names = append(names, e.Destination)
	}
	cmd.Env = append(cmd.Env, "ROTATORD_DESTINATIONS="+strings.Join(names, " "))
	if len(events) == 1 {
		e := events[0]
		cmd.Env = append(cmd.Env, "ROTATORD_DESTINATION_ID="+e.DestinationID, "ROTATORD_DESTINATION="+e.Destination,
			"ROTATORD_KEY_ID="+e.KeyID, "ROTATORD_LOCATION="+e.Location, "ROTATORD_VERSION="+string(e.Version))
		if d, ok := m.opts.Lookup(e.DestinationID); ok {
			cmd.Env = append(cmd.Env, "ROTATORD_VAULT_PATH="+d.VaultPath)
		}
	}
	if c.Notify.SecretOnStdin {
		in, err := m.secrets(ctx, events)
		if err != nil {
			return err
		}
		cmd.Stdin = bytes.NewReader(in)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: no exit within %s", c.Notify.Exec[0], c.Notify.EffectiveTimeout())
		}
		return fmt.Errorf("%s: %w", c.Notify.Exec[0], err)
	}
	return nil
}

// secrets are the stored records of events as JSON lines, for a consumer's stdin.
func (m *Manager) secrets(ctx context.Context, events []rotate.Stored) ([]byte, error) {
	var b bytes.Buffer
	for _, e := range events {
		d, ok := m.opts.Lookup(e.DestinationID)
		if !ok {
			continue
		}
		rec, err := m.opts.Sink.Get(ctx, d.VaultPath)
		if err != nil {
			return nil, fmt.Errorf("read %s's stored record for its consumer: %w", d.Name, err)
		}
		line, _ := json.Marshal(map[string]string{"destination_id": d.ID, "destination": d.Name, "key_id": rec.KeyID,
			"version": string(rec.Version), "signing_secret": rec.Secret.Reveal()})
		b.Write(append(line, '\n'))
	}
	return b.Bytes(), nil
}

// postNotify POSTs the notification, signed Standard Webhooks style (webhook-id,
// webhook-timestamp, webhook-signature v1) with the consumer's notify key.
func (m *Manager) postNotify(ctx context.Context, c config.Consumer, events []rotate.Stored) error {
	raw, err := m.opts.ReadKeyFile(c.Notify.KeyFile)
	if err != nil {
		return fmt.Errorf("notify.key_file: %w", err)
	}
	key, err := DecodeKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("notify.key_file %s: %w", c.Notify.KeyFile, err)
	}
	body, err := json.Marshal(notification(c, events))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Notify.EffectiveTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Notify.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	id, ts := "msg_"+hex.EncodeToString(idb[:]), strconv.FormatInt(m.opts.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+Sign(key, id, ts, body))
	req.Header.Set("User-Agent", "rotatord")
	resp, err := notifyClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", c.Notify.URL, webhookco.ScrubURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: HTTP %d", c.Notify.URL, resp.StatusCode)
	}
	return nil
}

// notifyClient follows no redirects: a notification goes where the config says.
var notifyClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// DecodeKey reads a Standard Webhooks key: whsec_ and the base64 of its bytes.
func DecodeKey(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("want a key of the form whsec_<base64>")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 {
		return nil, errors.New("want whsec_ and the base64 of at least 16 bytes")
	}
	return key, nil
}

// Sign is the Standard Webhooks v1 signature of a message: base64(HMAC-SHA256(key,
// "{id}.{timestamp}.{body}")).
func Sign(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
