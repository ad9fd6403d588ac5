# The project's commands. `make demo` and `make test` are the README's two.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
TESTBED := tests/testbed/testbed
# Components are built for wasm32-unknown-unknown, where std imports no WASI
# and each instance is cheaper (docs/writing-components.md); on a toolchain
# without that target, for wasm32-wasip2 (same behaviour, slower per call).
WASM_TARGET ?= $(shell test -d "$$(rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown/lib" && echo wasm32-unknown-unknown || echo wasm32-wasip2)
# Components shipped with the operator, and the test-only ones the end-to-end
# tests load next to them.
COMPONENTS := realm-component keycloak-component client-component
TEST_COMPONENTS := chaos-component realm-v2-component noop-component intruder-component template-component
# Where the built components are gathered, whatever the target: the tests,
# the benchmarks and the demo load them from here.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
COMPONENT_DIR := $(TARGET_DIR)/components
# Components written in JavaScript (componentize-js): the KeycloakUser
# extension and a hostile build for the sandbox tests. Each folder's `build`
# writes dist/<name>.wasm; they are rebuilt only when their sources change,
# because every build has a new digest (docs/extensions.md).
JS_COMPONENTS := extensions/keycloak-user tests/components/hostile-js
JS_WASM := $(COMPONENT_DIR)/keycloak_user.wasm $(COMPONENT_DIR)/hostile_js.wasm

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: testbed-up testbed-down testbed-status testbed-clean
testbed-up: setup ## start the local test bed (real etcd, kube-apiserver, controller manager, PostgreSQL, Keycloak)
	@$(TESTBED) up
testbed-down: ## stop every process of the test bed
	@$(TESTBED) down
testbed-status: ## show what the test bed runs, where, with versions
	@$(TESTBED) status
testbed-clean: ## stop the test bed and delete its data (.testbed/); the cache stays
	@$(TESTBED) clean

.PHONY: setup
setup: ## install what this machine lacks (Debian packages, Rust targets); quick when all is there
	@scripts/prerequisites --quiet

.PHONY: components extensions build image
components: setup ## build the reconciler components into target/components/
	$(CARGO) build --profile component --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS) $(TEST_COMPONENTS))
	@mkdir -p $(COMPONENT_DIR)
	@for c in $(subst -,_,$(COMPONENTS) $(TEST_COMPONENTS)); do cp -f $(TARGET_DIR)/$(WASM_TARGET)/component/$$c.wasm $(COMPONENT_DIR)/; done
	@echo "components ($(WASM_TARGET)) in $(COMPONENT_DIR)/"
extensions: setup $(JS_WASM) ## build the JavaScript components (componentize-js) into target/components/
$(COMPONENT_DIR)/keycloak_user.wasm: $(wildcard extensions/keycloak-user/src/*.js extensions/keycloak-user/scripts/*) extensions/keycloak-user/crd.yaml extensions/keycloak-user/package-lock.json extensions/keycloak-user/build $(wildcard wit/*.wit)
	extensions/keycloak-user/build
	@mkdir -p $(COMPONENT_DIR) && cp -f extensions/keycloak-user/dist/keycloak_user.wasm $@
$(COMPONENT_DIR)/hostile_js.wasm: $(wildcard tests/components/hostile-js/src/*.js tests/components/hostile-js/scripts/*) tests/components/hostile-js/crd.yaml tests/components/hostile-js/package-lock.json tests/components/hostile-js/build $(wildcard wit/*.wit)
	tests/components/hostile-js/build
	@mkdir -p $(COMPONENT_DIR) && cp -f tests/components/hostile-js/dist/hostile_js.wasm $@
build: components ## build the host and the components
	$(CARGO) build --release --workspace
image: build testbed-up ## the operator's image, built without a container runtime and pushed to the bed's registry
	source .testbed/env && CRANE=$$TESTBED_CRANE image/build $$OCI_REGISTRY/keycloak-operator:dev

.PHONY: demo
demo: build testbed-up ## the quickstart: test bed, CRDs, operator, examples/quickstart/, Ready, the realm in Keycloak
	examples/quickstart/demo.sh

.PHONY: crds
crds: ## regenerate crds/ (and the Helm chart's copy) from the Rust types in api/
	$(CARGO) run --release -p keycloak-operator -- crds --out crds --out charts/keycloak-operator/files/crds

.PHONY: bench
bench: build extensions testbed-up ## benchmarks: host overhead per reconcile, JavaScript beside Rust, component pull/compile/swap/start, 200 realms, 100 and 1,000 clients in ten realms beside a floor
	@# The noop built for wasm32-wasip2 too, when that target is installed: the
	@# overhead bench compares it with the components' own target.
	if [ "$(WASM_TARGET)" != wasm32-wasip2 ] && [ -d "$$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2/lib" ]; then \
	  $(CARGO) build --profile component --target wasm32-wasip2 -p noop-component && \
	  mkdir -p $(COMPONENT_DIR)/wasip2 && cp -f $(TARGET_DIR)/wasm32-wasip2/component/noop_component.wasm $(COMPONENT_DIR)/wasip2/; \
	fi
	$(CARGO) bench -p keycloak-operator --bench overhead
	$(CARGO) bench -p keycloak-operator --bench pull
	$(CARGO) bench -p keycloak-operator --bench extensions
	$(CARGO) bench -p keycloak-operator-e2e --bench delivery
	$(CARGO) bench -p keycloak-operator-e2e --bench realms
	$(CARGO) bench -p keycloak-operator-e2e --bench clients

.PHONY: test
test: build extensions testbed-up ## run every test (unit and end-to-end, against the test bed)
	@# The release the chart's upgrade test starts from (cached after the first run).
	source .testbed/env && tests/chart/previous-release
	cd extensions/keycloak-user && npm test
	source .testbed/env && $(CARGO) test --release --workspace
	tests/testbed/selftest

.PHONY: lint fmt
lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --profile component --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS) $(TEST_COMPONENTS)) -- -D warnings
fmt: ## format the code
	$(CARGO) fmt --all
