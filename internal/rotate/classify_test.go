package rotate

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotatord/rotatord/internal/webhookco"
)

func TestClassify(t *testing.T) {
	sentTimeout := &webhookco.TransportError{Operation: "rotate", Sent: true, Err: context.DeadlineExceeded}
	sentReset := &webhookco.TransportError{Operation: "rotate", Sent: true, Err: errors.New("connection reset by peer")}
	unsent := &webhookco.TransportError{Operation: "rotate", Sent: false, Err: errors.New("connection refused")}
	api := func(status int) error { return &webhookco.APIError{Operation: "rotate", Status: status} }
	tests := []struct {
		name       string
		err        error
		class      Class
		reason     string
		retryAfter time.Duration
	}{
		{"nil", nil, Success, "", 0},
		{"400", api(400), Refused, ReasonBadRequest, 0},
		{"401", api(401), Refused, ReasonUnauthorized, 0},
		{"403", api(403), Refused, ReasonForbidden, 0},
		{"404", api(404), Refused, ReasonNotFound, 0},
		{"409", api(409), Refused, ReasonPaused, 0},
		{"405", api(405), Refused, ReasonRefused, 0},
		{"429", api(429), Retryable, ReasonRateLimited, 0},
		{"429 with Retry-After", &webhookco.APIError{Status: 429, RetryAfter: 2 * time.Second, HasRetryAfter: true}, Retryable, ReasonRateLimited, 2 * time.Second},
		{"500", api(500), Ambiguous, ReasonServerError, 0},
		{"502", api(502), Ambiguous, ReasonServerError, 0},
		{"503", api(503), Ambiguous, ReasonServerError, 0},
		{"302", api(302), Ambiguous, ReasonUnexpectedStatus, 0},
		{"201", api(201), Ambiguous, ReasonUnexpectedStatus, 0},
		{"unreadable 200", &webhookco.ResponseError{Operation: "rotate", Err: errors.New("body ends early")}, Ambiguous, ReasonInvalidResponse, 0},
		{"timeout after send", sentTimeout, Ambiguous, ReasonTimeout, 0},
		{"os timeout after send", &webhookco.TransportError{Sent: true, Err: os.ErrDeadlineExceeded}, Ambiguous, ReasonTimeout, 0},
		{"reset after send", sentReset, Ambiguous, ReasonConnectionLost, 0},
		{"never sent", unsent, Retryable, ReasonUnreachable, 0},
		{"wrapped 401", fmt.Errorf("outer: %w", api(401)), Refused, ReasonUnauthorized, 0},
		{"unknown error", errors.New("mystery"), Ambiguous, ReasonConnectionLost, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if got.Class != tt.class || got.Reason != tt.reason || got.RetryAfter != tt.retryAfter {
				t.Errorf("Classify(%v) = %v/%q/%s, want %v/%q/%s", tt.err, got.Class, got.Reason, got.RetryAfter, tt.class, tt.reason, tt.retryAfter)
			}
			// The outcomes without the handler's own answer: the provider may still commit.
			late := map[string]bool{"502": true, "503": true, "timeout after send": true, "os timeout after send": true,
				"reset after send": true, "unknown error": true}[tt.name]
			if got.MayCommitLate != late {
				t.Errorf("Classify(%v).MayCommitLate = %v, want %v", tt.err, got.MayCommitLate, late)
			}
		})
	}
}

// TestReasonsAreUnique: FailureReasons lists each reason once, and every Reason constant
// of the package (read from its source, so a new one cannot be forgotten) is in it.
func TestReasonsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range FailureReasons {
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
	}
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	found := 0
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok {
						continue
					}
					found++
					if v, _ := strconv.Unquote(lit.Value); !seen[v] {
						t.Errorf("%s (%s) is not in FailureReasons: its series would not exist from the start", name.Name, v)
					}
				}
			}
		}
	}
	if found != len(FailureReasons) {
		t.Errorf("%d Reason constants, %d in FailureReasons", found, len(FailureReasons))
	}
}
