package report

// A report carries the SHA-256 of its content, and optionally a signature of that digest
// by a Vault transit key: `rotatord report verify` checks both. Text, CSV and HTML end with
// one seal line in the format's comment syntax; JSON is {"report": …, "seal": {…}}. The
// digest covers every byte of the content before the seal (the report value, for JSON).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Seal is a report's integrity: its digest, and who signed it.
type Seal struct {
	SHA256 string `json:"sha256"`
	// SignedWith names the transit key (MOUNT/NAME); Signature is Vault's "vault:v1:…".
	SignedWith string `json:"signed_with,omitempty"`
	Signature  string `json:"signature,omitempty"`
}

// Signer signs a digest with a Vault transit key.
type Signer interface {
	Name() string // MOUNT/NAME
	Sign(ctx context.Context, digest []byte) (string, error)
}

const sealWord = "rotatord-report-seal"

func (s Seal) line() string {
	l := sealWord + " sha256=" + s.SHA256
	if s.Signature != "" {
		l += " signed_with=" + s.SignedWith + " signature=" + s.Signature
	}
	return l
}

// Write renders r in format to w and seals it (signed when signer is set). It returns the
// seal written.
func Write(ctx context.Context, w io.Writer, r Report, format string, signer Signer) (Seal, error) {
	h := sha256.New()
	if format == "json" {
		if _, err := io.WriteString(w, `{"report":`); err != nil {
			return Seal{}, err
		}
	}
	if err := render(io.MultiWriter(w, h), r, format); err != nil {
		return Seal{}, err
	}
	digest := h.Sum(nil)
	seal := Seal{SHA256: hex.EncodeToString(digest)}
	if signer != nil {
		sig, err := signer.Sign(ctx, digest)
		if err != nil {
			return Seal{}, fmt.Errorf("sign the report with transit key %s: %w", signer.Name(), err)
		}
		seal.SignedWith, seal.Signature = signer.Name(), sig
	}
	var tail string
	switch format {
	case "json":
		b, err := json.Marshal(seal)
		if err != nil {
			return Seal{}, err
		}
		tail = ",\n\"seal\":" + string(b) + "}\n"
	case "html":
		tail = "<!-- " + seal.line() + " -->\n"
	default:
		tail = "# " + seal.line() + "\n"
	}
	_, err := io.WriteString(w, tail)
	return seal, err
}

// Opened is a sealed report read back: its seal, and whether its content matches it.
type Opened struct {
	Seal   Seal
	Format string
	// Digest is the SHA-256 of the content as found; Intact when it equals the seal's.
	Digest []byte
	Intact bool
}

// ErrNoSeal is returned for a file that carries no seal rotatord could read.
var ErrNoSeal = errors.New("no rotatord report seal found")

// Open reads a sealed report and checks its digest (not its signature: see Opened.Seal).
func Open(b []byte) (Opened, error) {
	var body []byte
	var o Opened
	if bytes.HasPrefix(b, []byte(`{"report":`)) {
		var doc struct {
			Report json.RawMessage `json:"report"`
			Seal   *Seal           `json:"seal"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || doc.Seal == nil {
			return Opened{}, fmt.Errorf("%w: JSON without a readable report and seal", ErrNoSeal)
		}
		o.Seal, o.Format, body = *doc.Seal, "json", doc.Report
	} else {
		trimmed := bytes.TrimSuffix(b, []byte("\n"))
		i := bytes.LastIndexByte(trimmed, '\n')
		if i < 0 {
			return Opened{}, ErrNoSeal
		}
		last := string(trimmed[i+1:])
		body = b[:i+1]
		switch {
		case strings.HasPrefix(last, "<!-- "+sealWord+" ") && strings.HasSuffix(last, " -->"):
			o.Format, last = "html", strings.TrimSuffix(strings.TrimPrefix(last, "<!-- "), " -->")
		case strings.HasPrefix(last, "# "+sealWord+" "):
			o.Format, last = "text or csv", strings.TrimPrefix(last, "# ")
		default:
			return Opened{}, ErrNoSeal
		}
		for _, f := range strings.Fields(last)[1:] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "sha256":
				o.Seal.SHA256 = v
			case "signed_with":
				o.Seal.SignedWith = v
			case "signature":
				o.Seal.Signature = v
			default:
				return Opened{}, fmt.Errorf("%w: unknown seal field %q", ErrNoSeal, k)
			}
		}
	}
	sum := sha256.Sum256(body)
	o.Digest = sum[:]
	o.Intact = hex.EncodeToString(sum[:]) == strings.ToLower(o.Seal.SHA256)
	return o, nil
}
