# rotatord's build. `make test` is the one test command (README, .ci/run).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
VAULTDEV := $(CURDIR)/bin/vaultdev

.PHONY: build test demo bench lint vaultdev test-tools container-context

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/rotatord ./cmd/rotatord

# The real Vault v1.14.1 test server, from its own module (tools/vaultdev). A cold build
# downloads a few hundred MB and compiles for several minutes; Go's build cache makes
# later builds take seconds.
vaultdev:
	cd tools/vaultdev && go build -o $(VAULTDEV) .

# Tools the deploy tests use: promtool (Debian's prometheus package) and systemd-analyze.
test-tools:
	@command -v promtool >/dev/null && command -v systemd-analyze >/dev/null || { \
	  echo "installing promtool and systemd-analyze (Debian packages prometheus, systemd)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus systemd >/dev/null; }

test: vaultdev test-tools
	go vet ./...
	ROTATORD_VAULTDEV=$(VAULTDEV) go test -race -count=1 -timeout 20m ./...

demo:
	go run ./cmd/rotatord demo

# What deploy/container/Dockerfile copies: the static binary and the host's CA bundle.
container-context: build
	cp /etc/ssl/certs/ca-certificates.crt bin/ca-certificates.crt

bench: vaultdev
	ROTATORD_VAULTDEV=$(VAULTDEV) go test -run '^$$' -bench . -benchmem -count 5 ./internal/rotate/ ./internal/scheduler/

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	# govulncheck needs vuln.go.dev, which this workplace cannot reach; run it where it can.
	-go run golang.org/x/vuln/cmd/govulncheck@v1.1.4 ./...
