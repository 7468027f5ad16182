// Package secret holds the one type through which rotatord carries signing secrets and API
// keys. A Value prints as [REDACTED] through every formatting and encoding path Go and zap
// offer, so logging or wrapping a struct that holds one cannot leak it; the only way to the
// plaintext is the explicit Reveal call at the two places that need it (the HTTP
// Authorization header and the sink write).
package secret

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"go.uber.org/zap/zapcore"
)

// Redacted is what a Value prints as, everywhere.
const Redacted = "[REDACTED]"

// Value is a secret string. The zero Value is empty.
type Value struct {
	s string
}

// New wraps s.
func New(s string) Value { return Value{s: s} }

// Reveal returns the plaintext. Call it only where the plaintext leaves the process on purpose.
func (v Value) Reveal() string { return v.s }

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return v.s == "" }

// Equal compares two secrets without revealing either.
func (v Value) Equal(o Value) bool { return v.s == o.s }

// String implements fmt.Stringer.
func (Value) String() string { return Redacted }

// GoString implements fmt.GoStringer, used by %#v.
func (Value) GoString() string { return Redacted }

// Format implements fmt.Formatter so that every verb, %x and %q included, prints [REDACTED].
func (Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalText implements encoding.TextMarshaler (YAML, JSON map keys, text encoders).
func (Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalJSON implements json.Marshaler.
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalLogObject implements zapcore.ObjectMarshaler, for zap.Object.
func (Value) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("value", Redacted)
	return nil
}

// maxCredentialBytes bounds a credential file: a key or token is well under a KiB.
const maxCredentialBytes = 64 << 10

// ReadPrivateFile reads a file holding a credential, refusing one that others may read
// (like the spool key) and one larger than a credential can be. Errors name the reason,
// never the content.
func ReadPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("mode %#o lets others read it; chmod 600 it (or deliver it as a systemd credential)", perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialBytes+1))
	if err == nil && len(b) > maxCredentialBytes {
		err = fmt.Errorf("larger than %d bytes: not a credential file", maxCredentialBytes)
	}
	return b, err
}
