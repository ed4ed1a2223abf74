# million — run `make help` for the targets.
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run the shop on :8080 with the embedded database in ./data.
	$(GO) run ./cmd/million serve

.PHONY: build
build: ## Build bin/million.
	$(GO) build -trimpath -o bin/million ./cmd/million

.PHONY: test
test: ## Install what the tests need, then vet and run every test under the race detector.
	./scripts/test

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	./scripts/fuzz $(FUZZTIME)
