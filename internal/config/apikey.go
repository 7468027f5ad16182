package config

import (
	"fmt"
	"strings"

	"github.com/rotatord/rotatord/internal/secret"
)

// LoadAPIKey reads the API key from api.token_file or the environment variable api.token_env.
// Errors name the source, never its content.
func (a API) LoadAPIKey(getenv func(string) string) (secret.Value, error) {
	var raw, source string
	switch {
	case a.TokenFile != "":
		source = "api.token_file " + a.TokenFile
		b, err := secret.ReadPrivateFile(a.TokenFile)
		if err != nil {
			return secret.Value{}, fmt.Errorf("read API key: %s: %w", source, err)
		}
		raw = string(b)
	case a.TokenEnv != "":
		source = "environment variable " + a.TokenEnv + " (api.token_env)"
		raw = getenv(a.TokenEnv)
	default:
		return secret.Value{}, fmt.Errorf("read API key: neither api.token_file nor api.token_env is set")
	}
	key := strings.TrimSpace(raw)
	if key == "" {
		return secret.Value{}, fmt.Errorf("read API key: %s is empty", source)
	}
	if strings.ContainsAny(key, " \t\r\n") {
		return secret.Value{}, fmt.Errorf("read API key: %s holds more than one line or word; want the key alone", source)
	}
	return secret.New(key), nil
}
