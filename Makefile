# Gatehouse. `make demo` runs the demo; `make test` runs every test.
GO ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/gatehouse/gatehouse/cli.Version=$(VERSION)

.PHONY: demo test test-quick build fuzz docker bench bench-scale

demo:
	$(GO) run . demo

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o gatehouse .

## test: install what the tests need, then lint, run the whole suite with the race detector,
## and run every fuzz target for TEST_FUZZTIME (default 3s) so the corpus keeps being exercised.
TEST_FUZZTIME ?= 3s
test:
	./scripts/install-deps.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	GO=$(GO) ./scripts/build-hydra.sh
	$(GO) test -race -count=1 -timeout 20m ./...
	GO=$(GO) FUZZTIME=$(TEST_FUZZTIME) ./scripts/fuzz.sh

## test-quick: the fast loop (needs redis-server on PATH).
test-quick:
	$(GO) test ./...

## fuzz: run every fuzz target of every package for FUZZTIME (default 30s), report each,
## fail at the end if any failed (scripts/fuzz.sh).
FUZZTIME ?= 30s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

IMAGE ?= ghcr.io/gatehouse/gatehouse
## docker: build the container image, version stamped from git.
docker:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

## bench: side-by-side load benchmark against oauth2-proxy v7.15.6 (bench/README.md, docs/performance.md); BENCH_* variables tune it.
bench:
	./bench/run.sh

## bench-scale: the capacity figures only (docs/performance.md, "Capacity"): Redis memory and commands per operation with BENCH_SESSIONS sessions, a 10k-session revocation, two replicas on a Cluster against a standalone Redis.
bench-scale:
	BENCH_SCALE=1 ./bench/run.sh
