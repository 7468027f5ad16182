// Package loopback says whether an address stays on this machine: the one rule by which
// rotatord allows plain http and unverified TLS (the emulator, a local Vault or Vault Agent),
// shared by the config's validation and the Vault client's last check.
package loopback

import "net"

// IsHost reports whether host is localhost or a loopback IP.
func IsHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
