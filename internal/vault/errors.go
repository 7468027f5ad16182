package vault

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"syscall"

	vaultapi "github.com/hashicorp/vault/api"
)

// IsPermissionDenied reports whether err is Vault's 403.
func IsPermissionDenied(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// IsUnreachable tells a Vault that could not be reached, or did not answer in time, from
// one that answered no: a start-up treats the first as degraded, the second as an error.
func IsUnreachable(err error) bool {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 // sealed, standby trouble, a proxy's 502
	}
	// A local file's error is never a network one, though syscall.Errno has the methods of
	// net.Error: an unreadable credential file must not read as "Vault unreachable".
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if _, bare := ne.(syscall.Errno); !bare {
			return true
		}
	}
	var oe *net.OpError
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &oe) ||
		strings.Contains(err.Error(), "connection refused")
}

// IsNotFound reports whether err is Vault's 404 (no such route: a mount or path that does not exist).
func IsNotFound(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// IsBadRequest reports whether err is Vault's 400 or 405 for another reason than a
// check-and-set mismatch: a request the path does not accept (e.g. a KV v1 path on KV v2).
func IsBadRequest(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusMethodNotAllowed) && !IsCASMismatch(err)
}

// IsCASMismatch recognises KV v2's answer to a check-and-set that did not match: HTTP 400
// saying "check-and-set parameter did not match the current version".
func IsCASMismatch(err error) bool {
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "check-and-set") {
			return true
		}
	}
	return false
}

// RetryAfterRecover runs op, and once more when Vault answered 403 and recover (when set)
// put a working token in place (Auth.Recover). Other errors are returned as they are.
func RetryAfterRecover(ctx context.Context, recover func(context.Context) error, op func() error) error {
	err := op()
	if err == nil || recover == nil || !IsPermissionDenied(err) {
		return err
	}
	if rerr := recover(ctx); rerr != nil {
		return err
	}
	return op()
}
