# rotatord's build. `make test` is the one test command (README, .ci/run).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
VAULTDEV := $(CURDIR)/bin/vaultdev
# go.mod names the toolchain (a release with the security fixes rotatord needs); this makes
# the go command fetch and use it even where the machine's Go defaults to GOTOOLCHAIN=local.
export GOTOOLCHAIN := auto
# The Go vulnerability database, built from the golang.org/x/vulndb module (a pinned
# snapshot, fetched like any module) for govulncheck on machines that cannot reach its server.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB := $(CURDIR)/bin/vulndb

.PHONY: build test test-quick demo bench bench-fleet bench-fleet-100k bench-ceiling ceiling lint vaultdev test-tools container-context vulncheck notices fuzz

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/rotatord ./cmd/rotatord

# The real Vault v1.14.1 test server, from its own module (tools/vaultdev). A cold build
# downloads a few hundred MB and compiles for several minutes; Go's build cache makes
# later builds take seconds.
vaultdev:
	cd tools/vaultdev && go build -o $(VAULTDEV) .

# Tools the deploy tests use: promtool (Debian's prometheus package), systemd-analyze and
# systemd-nspawn (booting the unit under real systemd), and a
# Docker engine (docker.io; the container test starts dockerd when none answers), and headless
# Chromium (chromium; the report HTML is rendered in it).
test-tools:
	@command -v promtool >/dev/null && command -v systemd-analyze >/dev/null && command -v dockerd >/dev/null && command -v systemd-nspawn >/dev/null && command -v chromium >/dev/null || { \
	  echo "installing promtool, systemd-analyze, systemd-nspawn, Docker and Chromium (Debian packages prometheus, systemd, systemd-container, docker.io, chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus systemd systemd-container docker.io chromium >/dev/null; }

# The gates run first: a change that is not formatted, tidy or vet- and staticcheck-clean
# does not get to the tests.
test: lint vaultdev test-tools
	ROTATORD_VAULTDEV=$(VAULTDEV) go test -race -count=1 -timeout 20m ./...
	cd deploy/kubernetes/kubecheck && go vet ./... && go test -count=1 ./...

# While working: every test but the long ones (soak, outages, replicas over several slots),
# without the race detector. `make test` is the full suite, and what CI runs.
test-quick: vaultdev
	ROTATORD_VAULTDEV=$(VAULTDEV) go test -short -count=1 ./...

demo:
	go run ./cmd/rotatord demo

# What deploy/container/Dockerfile copies: the static binary, the host's CA bundle and an
# empty state directory (the image gives it to rotatord's user; a new volume inherits that).
container-context: build
	cp /etc/ssl/certs/ca-certificates.crt bin/ca-certificates.crt
	mkdir -p bin/state && chmod 0700 bin/state
	cp LICENSE THIRD_PARTY_NOTICES bin/

# Each fuzz harness for FUZZTIME (their seed corpora run in `make test` as ordinary tests).
FUZZTIME ?= 60s
FUZZ_TARGETS := ./internal/config:FuzzParse ./internal/scheduler:FuzzParseSchedule \
  ./internal/webhookco:FuzzResponses ./internal/webhookco:FuzzDecodeDestinations ./internal/webhookco:FuzzIsUUID ./internal/spool:FuzzDecode ./internal/spool:FuzzParseRecord ./internal/lease/vaultlease:FuzzParseRecord
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
	  go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

# THIRD_PARTY_NOTICES from the module cache; `make test` fails when it is out of date.
notices:
	go run ./tools/notices > THIRD_PARTY_NOTICES

# govulncheck against a local copy of the Go vulnerability database (see VULNDB_VERSION).
vulncheck: $(VULNDB)/index/db.json
	go run golang.org/x/vuln/cmd/govulncheck@v1.1.4 -db file://$(VULNDB) ./...

$(VULNDB)/index/db.json:
	go mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	go run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) \
	  -vulns $$(go env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv -out $(VULNDB)

bench: vaultdev
	ROTATORD_VAULTDEV=$(VAULTDEV) go test -run '^$$' -bench . -benchmem -count 5 ./internal/rotate/ ./internal/scheduler/ ./internal/config/ ./internal/account/

# The real daemon at fleet scale against the emulator and the real Vault, beside a bare loop
# (tools/fleetbench; README "Benchmarks"). FLEET, BURST, CONCURRENCY and ROUNDS change the sizes.
FLEET ?= 10000
BURST ?= 400
CONCURRENCY ?= 1,8,32
ROUNDS ?= 3
bench-fleet: build vaultdev
	go run ./tools/fleetbench -rotatord bin/rotatord -vaultdev $(VAULTDEV) -fleet $(FLEET) -burst $(BURST) -concurrency $(CONCURRENCY) -rounds $(ROUNDS) -heap-profile bin/fleet-heap.pprof

# 100,000 destinations, each with a secret stored an hour earlier (the steady state), with
# metrics.destination_series: problems; and an account of 100,000 that one rule selects.
bench-fleet-100k: build vaultdev
	go run ./tools/fleetbench -rotatord bin/rotatord -vaultdev $(VAULTDEV) -fleet 100000 -fleet-stored -series problems -burst 0 -discover 100000

# The ceiling of the burst's ratio on this machine: rotatord with none of its promises (the
# rotate POST and one KV write with no check-and-set, as the bare loop does, inside rotatord's
# scheduler, audit line and metrics: tools/fleetbench/ceiling.patch, applied to a copy of the
# tree in bin/ceiling, never to the product), then the binary as built, each beside the bare
# loop: BURST due at once at concurrency 8, five rounds each. About 15 minutes.
# `make ceiling` builds it alone (bin/ceiling/rotatord; TestCeilingPatchBuilds runs it).
CEILING := bin/ceiling
bench-ceiling: build vaultdev ceiling
	go run ./tools/fleetbench -rotatord $(CEILING)/rotatord -vaultdev $(VAULTDEV) -fleet 0 -burst $(BURST) -concurrency 8 -flush group -rounds 5
	go run ./tools/fleetbench -rotatord bin/rotatord -vaultdev $(VAULTDEV) -fleet 0 -burst $(BURST) -concurrency 8 -flush group -rounds 5

ceiling:
	rm -rf $(CEILING) && mkdir -p $(CEILING) && cp -r go.mod go.sum cmd internal $(CEILING)/
	git apply --directory=$(CEILING) tools/fleetbench/ceiling.patch
	cd $(CEILING) && CGO_ENABLED=0 go build -trimpath -o rotatord ./cmd/rotatord

# gofmt, go mod tidy, go vet and staticcheck; `make test` runs it first. (govulncheck is
# `make vulncheck`: it needs the vulnerability database, a large module, so CI does not.)
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; test -z "$$unformatted" || { echo "gofmt would change: $$unformatted"; exit 1; }
	go mod tidy -diff
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
