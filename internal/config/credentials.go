package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SystemdCredentialsDir is where systemd hands a unit its credentials (LoadCredential=):
// /run/credentials/<unit>/<name>, present only while the unit runs.
const SystemdCredentialsDir = "/run/credentials/"

type credentialField struct {
	name string
	path *string
}

// credentialFiles are the settings that name a file holding one credential.
func (c *Config) credentialFiles() []credentialField {
	return []credentialField{
		{"api.token_file", &c.API.TokenFile},
		{"vault.token_file", &c.Vault.TokenFile},
		{"vault.auth.role_id_file", &c.Vault.Auth.RoleIDFile},
		{"vault.auth.secret_id_file", &c.Vault.Auth.SecretIDFile},
		{"spool.key_file", &c.Spool.KeyFile},
	}
}

// validateCredentialFiles refuses a credential pasted where its file's name belongs (the
// key itself as api.token_file): every later error would quote it as a path.
func (c *Config) validateCredentialFiles(p *problems) {
	for _, f := range c.credentialFiles() {
		if looksLikeCredential(*f.path) {
			p.add(fmt.Errorf("%s: holds what looks like a credential itself, not the name of a file; put it in a file only rotatord's user may read (chmod 600) and name that file here (the value is not repeated here)", f.name))
		}
	}
}

// looksLikeCredential reports whether a file setting's value looks like a key or token:
// a webhook.co key, a Vault token, or a long word with no path in it.
func looksLikeCredential(v string) bool {
	for _, prefix := range []string{"whk_", "hvs.", "hvb.", "hvr.", "s."} {
		if strings.HasPrefix(v, prefix) && len(v) > 20 && !strings.Contains(v, "/") {
			return true
		}
	}
	if len(v) < 40 || strings.ContainsAny(v, "/ ") {
		return false
	}
	return strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+=") == ""
}

// credentialName is name in /run/credentials/<unit>/<name>, or "" for another path.
func credentialName(path string) string {
	rest, ok := strings.CutPrefix(path, SystemdCredentialsDir)
	if !ok {
		return ""
	}
	_, name, _ := strings.Cut(rest, "/")
	return name
}

// MissingSystemdCredentials names the settings whose file is a systemd credential that does
// not exist here: the unit is not running, or this is not the unit.
func (c *Config) MissingSystemdCredentials() []string {
	var out []string
	for _, f := range c.credentialFiles() {
		if credentialName(*f.path) == "" {
			continue
		}
		if _, err := os.Stat(*f.path); err != nil {
			out = append(out, f.name)
		}
	}
	return out
}

// ReadCredentialsFrom makes every credential file the config takes from a systemd unit's
// credentials directory (/run/credentials/<unit>/<name>) be read from dir/<name> instead:
// the files the unit's LoadCredential= lines load, so `rotatord check --online` can run
// before the unit with exactly what it will get. It returns the settings it changed.
func (c *Config) ReadCredentialsFrom(dir string) []string {
	var changed []string
	for _, f := range c.credentialFiles() {
		if name := credentialName(*f.path); name != "" {
			*f.path = filepath.Join(dir, name)
			changed = append(changed, f.name)
		}
	}
	return changed
}
