# hl7bus — run `make help` for the targets.

SHELL := /bin/bash
GO ?= go
# Every module of the workspace (go.work), as package patterns.
PKGS := $(shell $(GO) list -m -f '{{.Dir}}/...')
# staticcheck 2026.2.2 is module version v0.8.2.
STATICCHECK_VERSION := v0.8.2
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can
# fail a clean run with "context deadline exceeded" at the deadline
# (golang/go#75804, fixed in Go 1.27). 200000 runs is a few seconds per target.
FUZZTIME ?= 200000x
BENCHTIME ?= 2s

.PHONY: help build run test test-interop test-postgres loadtest test-short lint fmt fuzz bench generate check-generated ci

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/hl7bus and bin/hl7load
	$(GO) build -o bin/hl7bus ./services/hl7bus
	$(GO) build -o bin/hl7load ./loadtest/cmd/hl7load

run: build ## start the whole exchange in one process (deploy/standalone/hl7bus.yaml)
	bin/hl7bus standalone --config deploy/standalone/hl7bus.yaml

test: ## run every test with the race detector, in random order
	$(GO) test -race -shuffle=on -count=1 $(PKGS)

test-interop: ## run the suites against real peers (Apache Kafka, Apicurio Registry from Maven Central, PostgreSQL 15 from Debian)
	scripts/interop.sh

test-postgres: ## run only the PostgreSQL suites (the index) against a throwaway PostgreSQL 15
	scripts/postgres.sh

test-short: ## run the fast tests only
	$(GO) test -short -count=1 $(PKGS)

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l libs services); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags interop $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fmt: ## format the Go sources
	gofmt -w libs services

fuzz: ## run each fuzz target for FUZZTIME (default 200000x, i.e. 200,000 inputs)
	cd libs && for t in FuzzParse FuzzParseBatch FuzzUnescape FuzzPath FuzzSetRaw FuzzClearValue; do \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./hl7v2 || exit 1; done
	cd libs && $(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./mapping
	cd libs && $(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./mllp

SCENARIO ?= loadtest/scenarios/smoke.yaml
loadtest: build ## run a load scenario against hl7bus standalone (SCENARIO=loadtest/scenarios/steady.yaml)
	scripts/loadtest.sh $(SCENARIO)

bench: ## run the Go micro-benchmarks on one core (see docs/benchmarks.md)
	cd libs && GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./hl7v2 ./mllp

generate: ## regenerate libs/hl7v2/defs (defs.bin.gz, VERSIONS.md, CROSSCHECK.md) from PyPI and npm packages
	scripts/hl7defs.sh

check-generated: ## fail if libs/hl7v2/defs (data file and reports) is not what the generator makes
	scripts/hl7defs.sh --check

ci: lint test check-generated fuzz ## what .ci/run runs
