# The project's commands. `make demo` and `make test` are the README's two.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
TESTBED := tests/testbed/testbed
WASM_TARGET := wasm32-wasip2
# Components shipped with the operator, and the test-only ones the end-to-end
# tests load next to them.
COMPONENTS := realm-component keycloak-component client-component
TEST_COMPONENTS := chaos-component realm-v2-component noop-component
COMPONENT_DIR := target/$(WASM_TARGET)/component

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: testbed-up testbed-down testbed-status testbed-clean
testbed-up: ## start the local test bed (real etcd, kube-apiserver, controller manager, PostgreSQL, Keycloak)
	@$(TESTBED) up
testbed-down: ## stop every process of the test bed
	@$(TESTBED) down
testbed-status: ## show what the test bed runs, where, with versions
	@$(TESTBED) status
testbed-clean: ## stop the test bed and delete its data (.testbed/); the cache stays
	@$(TESTBED) clean

.PHONY: components build
components: ## build the reconciler components for wasm32-wasip2
	$(CARGO) build --profile component --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS) $(TEST_COMPONENTS))
build: components ## build the host and the components
	$(CARGO) build --release --workspace

.PHONY: demo
demo: build testbed-up ## the quickstart: test bed, CRDs, operator, examples/quickstart/, Ready, the realm in Keycloak
	examples/quickstart/demo.sh

.PHONY: crds
crds: ## regenerate crds/ from the Rust types in api/
	$(CARGO) run --release -p keycloak-operator -- crds --out crds

.PHONY: bench
bench: build testbed-up ## benchmarks: host overhead per reconcile, 200 realms and 300 clients against the real Keycloak
	$(CARGO) bench -p keycloak-operator --bench overhead
	$(CARGO) bench -p keycloak-operator-e2e --bench realms
	$(CARGO) bench -p keycloak-operator-e2e --bench clients

.PHONY: test
test: build testbed-up ## run every test (unit and end-to-end, against the test bed)
	source .testbed/env && $(CARGO) test --release --workspace
	tests/testbed/selftest

.PHONY: lint fmt
lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --profile component --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS) $(TEST_COMPONENTS)) -- -D warnings
fmt: ## format the code
	$(CARGO) fmt --all
