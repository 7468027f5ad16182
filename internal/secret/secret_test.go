package secret_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rotatord/rotatord/internal/secret"
)

const plain = "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1sZWFr"

type holder struct {
	Name   string
	Secret secret.Value
}

func TestValueNeverPrintsPlaintext(t *testing.T) {
	v := secret.New(plain)
	h := holder{Name: "billing", Secret: v}
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := v.MarshalText()

	var logs bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel)
	log := zap.New(core)
	log.Info("x", zap.Any("holder", h), zap.Stringer("s", v), zap.Object("o", v), zap.Any("v", v), zap.Reflect("r", h))
	log.Info("y", zap.Error(fmt.Errorf("wrapped %v: %w", v, errors.New("boom"))))

	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", v),
		"%+v":  fmt.Sprintf("%+v", h),
		"%#v":  fmt.Sprintf("%#v", h),
		"%s":   fmt.Sprintf("%s", v),
		"%q":   fmt.Sprintf("%q", v),
		"%x":   fmt.Sprintf("%x", v),
		"json": string(js),
		"text": string(text),
		"zap":  logs.String(),
	}
	for name, got := range outputs {
		if strings.Contains(got, plain) || strings.Contains(got, "c2VjcmV0") {
			t.Errorf("%s leaked the secret: %s", name, got)
		}
		if !strings.Contains(got, secret.Redacted) {
			t.Errorf("%s = %q, want it to contain %q", name, got, secret.Redacted)
		}
	}
	if got := v.Reveal(); got != plain {
		t.Errorf("Reveal() = %q, want the plaintext", got)
	}
	if !v.Equal(secret.New(plain)) || v.Equal(secret.New("other")) {
		t.Error("Equal compares wrongly")
	}
}
